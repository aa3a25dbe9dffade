"""The OpenAPI document: FastAPI's routes, completed with what the hand-parsing handlers read and answer.

Handlers parse their requests strictly by hand (``tracking.api.body``), so FastAPI sees neither their
query parameters nor their JSON bodies. :func:`describe` adds them from the contracts (tracking's and
the gateway's own, keyed by operation id), the documented error answers (MLflow's
``{"error_code", "message"}``), and the security schemes; public operations need none. Parsing is
unchanged: this only describes it. Every operation in the document must have a contract
(``tests/fuzz/test_openapi.py``), so a new route cannot silently go undocumented.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from types import MappingProxyType

from fastapi import FastAPI

from policies.routes import Access, requirement_for
from tracking.api.contract import OBJECTS, TRACKING_CONTRACTS, Contract

_SELF = "username:str!"
GATEWAY_CONTRACTS: Mapping[str, Contract] = MappingProxyType({
    "ops.health": Contract(success="text"),
    "ops.version": Contract(success="text"),
    "ops.ready": Contract(),
    "ops.metrics": Contract(success="text"),
    # The basic-auth app's user API, and personal access tokens
    "users.create": Contract("username:str! password:str is_admin:bool service_account:bool"),
    "users.get": Contract(_SELF),
    "users.list": Contract(),
    "users.current": Contract(),
    "users.update_password": Contract("username:str! password:str! current_password:str"),
    "users.update_admin": Contract("username:str! is_admin:bool!"),
    "users.update_disabled": Contract("username:str! disabled:bool!"),
    "users.delete": Contract(_SELF),
    "tokens.create": Contract("name:str! expires_in_days:int! username:str read_only:bool"),
    "tokens.list": Contract("username:str"),
    "tokens.revoke": Contract("token_id:str!"),
    # MLflow 2.x permission API (experiments by id, registered models by name) and 3.x user permissions
    **{f"permissions.experiments.{op}": Contract(f"experiment_id:str! username:str!{body}")
       for op, body in (("create", " permission:str!"), ("get", ""), ("update", " permission:str!"),
                        ("update_via_post", " permission:str!"), ("delete", ""), ("delete_via_post", ""))},
    **{f"permissions.registered_models.{op}": Contract(f"name:str! username:str!{body}")
       for op, body in (("create", " permission:str!"), ("get", ""), ("update", " permission:str!"),
                        ("update_via_post", " permission:str!"), ("delete", ""), ("delete_via_post", ""))},
    "permissions.users.grant": Contract("username:str! resource_type:str! resource_id:str! permission:str!"),
    "permissions.users.revoke": Contract("username:str! resource_type:str! resource_id:str!"),
    "permissions.users.get": Contract("username:str! resource_type:str! resource_id:str!"),
    "permissions.users.list": Contract(_SELF),
    # mlgate's admin API (what the `mlgate` CLI calls)
    "admin.users.list": Contract("kind:str"),
    "admin.users.get": Contract(_SELF),
    "admin.groups.list": Contract(),
    "admin.groups.create": Contract("name:str!"),
    "admin.groups.delete": Contract("name:str!"),
    "admin.groups.add_member": Contract("group:str! username:str!"),
    "admin.groups.remove_member": Contract("group:str! username:str!"),
    "admin.grants.list": Contract("subject:str resource:str"),
    "admin.grants.put": Contract("subject:str! resource:str! permission:str!"),
    "admin.grants.revoke": Contract("subject:str! resource:str!"),
    "admin.perms.explain": Contract("username:str! action:str! experiment_id:str experiment_name:str model:str"),
    "admin.audit.list": Contract("limit:int actor:str action:str outcome:str since:int until:int after_id:int"),
    "admin.policy.export": Contract(),
    "admin.policy.apply": Contract("access:obj! dry_run:bool"),
})

CONTRACTS: Mapping[str, Contract] = MappingProxyType({**TRACKING_CONTRACTS, **GATEWAY_CONTRACTS})

ERROR = {"$ref": "#/components/schemas/Error"}
_ERROR_TEXT = {
    "400": "Invalid request: a malformed body or field (INVALID_PARAMETER_VALUE, MALFORMED_REQUEST, BAD_REQUEST)",
    "401": "No valid credentials (UNAUTHENTICATED)",
    "403": "Signed in but not permitted (PERMISSION_DENIED)",
    "404": "No such resource, or one the caller may not read (RESOURCE_DOES_NOT_EXIST)",
    "409": "A concurrent change conflicted; retry (RESOURCE_CONFLICT)",
    "413": "Request body over its limit (RESOURCE_EXHAUSTED)",
    "429": "Rate limit or login lockout (REQUEST_LIMIT_EXCEEDED); see Retry-After",
    "501": "Not supported by this server (NOT_IMPLEMENTED)",
    "503": "A backing service is unavailable (TEMPORARILY_UNAVAILABLE); see Retry-After",
}
_SUCCESS = {
    "json": {"application/json": {"schema": {"type": "object"}}},
    "text": {"text/plain": {"schema": {"type": "string"}}},
    "file": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
}
_SCALARS = {"str": {"type": "string"}, "int": {"type": "integer"}, "num": {"type": "number"},
            "bool": {"type": "boolean"}, "obj": {"type": "object"}, "any": {}}


def field_schema(kind: str) -> dict:
    """The JSON schema of one contract type (``str``, ``[tag]``, ...)."""
    if kind.startswith("[") and kind.endswith("]"):
        return {"type": "array", "items": field_schema(kind[1:-1])}
    if kind in _SCALARS:
        return dict(_SCALARS[kind])
    if kind in OBJECTS:
        return copy.deepcopy(OBJECTS[kind])
    raise ValueError(f"unknown contract type {kind!r}")


def parse_fields(spec: str) -> list[tuple[str, dict, bool]]:
    """``"name:str! tags:[tag]"`` -> [(name, schema, required), ...]."""
    out = []
    for item in spec.split():
        name, _, kind = item.partition(":")
        required = kind.endswith("!")
        schema = field_schema(kind.rstrip("!"))
        if required and schema.get("type") in ("string", "array"):
            # MLflow's rule: a required field that is empty counts as missing.
            schema["minLength" if schema["type"] == "string" else "minItems"] = 1
        elif not required and "type" in schema:
            schema["type"] = [schema["type"], "null"]  # protobuf JSON: null is the same as absent
        out.append((name, schema, required))
    return out


def _query_parameters(fields) -> list[dict]:
    params = []
    for name, schema, required in fields:
        if isinstance(schema.get("type"), list):
            schema = {**schema, "type": schema["type"][0]}
        if schema.get("type") == "array":
            params.append({"name": name, "in": "query", "required": required, "schema": schema,
                           "style": "form", "explode": True})
        elif schema.get("type") == "object" or not schema:
            params.append({"name": name, "in": "query", "required": required,
                           "content": {"application/json": {"schema": schema}}})
        else:
            params.append({"name": name, "in": "query", "required": required, "schema": schema})
    return params


def _body(fields) -> dict:
    schema = {"type": "object", "properties": {name: s for name, s, _ in fields}}
    required = [name for name, _, req in fields if req]
    if required:
        schema["required"] = required
    return {"required": bool(required), "content": {"application/json": {"schema": schema}}}


def _error_statuses(method: str, operation_id: str, public: bool) -> list[str]:
    statuses = ["400", "404", "413", "429", "503"]
    if not public:
        statuses += ["401", "403"]
    if method != "get":
        statuses.append("409")
    if operation_id.startswith("artifacts."):
        statuses.append("501")
    return sorted(statuses)


def describe(doc: dict, contracts: Mapping[str, Contract] = CONTRACTS) -> dict:
    """Complete FastAPI's document in place with parameters, bodies, answers and security; returns it."""
    components = doc.setdefault("components", {})
    components.setdefault("schemas", {})["Error"] = {
        "type": "object", "required": ["error_code", "message"],
        "properties": {"error_code": {"type": "string"}, "message": {"type": "string"}},
    }
    components["securitySchemes"] = {
        "basic": {"type": "http", "scheme": "basic"},
        "bearer": {"type": "http", "scheme": "bearer",
                   "description": "An mlgate personal access token (mlg_...) or an identity provider's JWT"},
        "session": {"type": "apiKey", "in": "cookie", "name": "mlgate_session"},
    }
    doc["security"] = [{"basic": []}, {"bearer": []}, {"session": []}]
    for operations in doc.get("paths", {}).values():
        for method, operation in operations.items():
            op_id = operation.get("operationId")
            contract = contracts.get(op_id)
            if contract is None:
                continue  # reported by the test that every operation has a contract
            requirement = requirement_for(op_id)
            public = requirement is not None and requirement.access is Access.PUBLIC
            fields = parse_fields(contract.fields)
            path_params = [p for p in operation.get("parameters", []) if p.get("in") == "path"]
            if method == "get":
                operation["parameters"] = path_params + _query_parameters(fields)
            else:
                operation["parameters"] = path_params
                if op_id == "artifacts.put":
                    operation["requestBody"] = {"content": {"application/octet-stream": {
                        "schema": {"type": "string", "format": "binary"}}}}
                elif op_id == "otlp.ingest":
                    operation["requestBody"] = {"required": True, "content": {
                        "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
                        "application/json": {"schema": {"type": "object"}}}}
                    operation["parameters"].append({"name": "x-mlflow-experiment-id", "in": "header",
                                                    "required": True, "schema": {"type": "string"}})
                elif fields:
                    operation["requestBody"] = _body(fields)
            if not operation["parameters"]:
                del operation["parameters"]
            success = _SUCCESS[contract.success]
            if op_id == "otlp.ingest":
                success = {"application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
                           "application/json": {"schema": {"type": "object"}}}
            responses = {"200": {"description": "Success", "content": copy.deepcopy(success)}}
            for status in _error_statuses(method, op_id, public):
                responses[status] = {"description": _ERROR_TEXT[status],
                                     "content": {"application/json": {"schema": ERROR}}}
            if op_id == "ops.ready":  # not ready: the same report as when ready, with status "unavailable"
                responses["503"] = {"description": "A dependency is not ready", "content": copy.deepcopy(success)}
            operation["responses"] = responses
            if public:
                operation["security"] = []
    doc.get("components", {}).get("schemas", {}).pop("HTTPValidationError", None)
    doc.get("components", {}).get("schemas", {}).pop("ValidationError", None)
    return doc


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the completed document (built once, then cached by FastAPI)."""

    def openapi() -> dict:
        if app.openapi_schema is None:
            describe(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
