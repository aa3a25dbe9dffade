"""The OpenAPI document: FastAPI's routes, completed with what the hand-parsing handlers read and answer.

Handlers parse their requests strictly by hand (``tracking.api.body``), so FastAPI sees neither their
query parameters nor their JSON bodies. :func:`describe` adds them from the contracts (tracking's and
the gateway's own, keyed by operation id), the success answers (:data:`RESULTS`, built from the component
schemas in :data:`SCHEMAS`), the documented error answers (MLflow's ``{"error_code", "message"}``), and
the security schemes; public operations need none. Parsing is
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
    "tokens.create": Contract("name:str! expires_in_days:int! username:str read_only:bool scope:[str] cidrs:[str]"),
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
    # MLflow 3 workspaces and roles (gateway/routes/workspaces.py)
    "workspaces.list": Contract(),
    "workspaces.get": Contract(),
    "workspaces.create": Contract("name:str! description:str default_artifact_root:str trace_archival_config:obj"),
    "workspaces.update": Contract("description:str default_artifact_root:str trace_archival_config:obj"),
    "workspaces.delete": Contract(success="none"),
    "roles.create": Contract("workspace:str! name:str! description:str"),
    "roles.get": Contract("role_id:int!"),
    "roles.list": Contract("workspace:str"),
    "roles.update": Contract("role_id:int! name:str description:str"),
    "roles.delete": Contract("role_id:int!"),
    "roles.permissions.add": Contract("role_id:int! resource_type:str! resource_pattern:str! permission:str!"),
    "roles.permissions.remove": Contract("role_permission_id:int!"),
    "roles.permissions.update": Contract("role_permission_id:int! permission:str!"),
    "roles.permissions.list": Contract("role_id:int!"),
    "roles.assign": Contract("username:str! role_id:int!"),
    "roles.unassign": Contract("username:str! role_id:int!"),
    "roles.users.list": Contract("role_id:int!"),
    "roles.users.roles": Contract("username:str!"),
    # mlgate's admin API (what the `mlgate` CLI calls)
    "admin.users.list": Contract("kind:str"),
    "admin.users.get": Contract(_SELF),
    "admin.groups.list": Contract(),
    "admin.groups.create": Contract("name:str!"),
    "admin.groups.delete": Contract("name:str!"),
    "admin.groups.add_member": Contract("group:str! username:str!"),
    "admin.groups.remove_member": Contract("group:str! username:str!"),
    "admin.grants.list": Contract("subject:str resource:str"),
    "admin.grants.put": Contract("subject:str! resource:str! permission:str! expires_at:int expires_in_seconds:int "
                                 "break_glass:bool"),
    "admin.grants.revoke": Contract("subject:str! resource:str!"),
    "admin.perms.explain": Contract("username:str! action:str! experiment_id:str experiment_name:str model:str "
                                    "alias:str"),
    "admin.audit.list": Contract("limit:int actor:str action:str outcome:str since:int until:int after_id:int"),
    "admin.audit.verify": Contract(),
    "admin.audit.checkpoint": Contract(),
    "admin.audit.checkpoints": Contract("after_id:int limit:int"),
    "admin.audit.prune": Contract("older_than_days:int"),
    "admin.policy.export": Contract("owner_grants:bool"),
    "admin.policy.apply": Contract("access:obj! dry_run:bool owner_grants:bool"),
})

CONTRACTS: Mapping[str, Contract] = MappingProxyType({**TRACKING_CONTRACTS, **GATEWAY_CONTRACTS})

# --- Success answers -------------------------------------------------------------------------------------
# The JSON objects MLflow's REST API answers with (field names and types from MLflow's service.proto and
# model_registry.proto, as protobuf JSON writes them: int64 timestamps as numbers, doubles that may be
# "NaN"/"Infinity"), and mlgate's own. Fields are listed so that their types are checked; ``required``
# names only what mlgate always sends. Extra fields are allowed (MLflow adds fields between releases).


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(properties: dict, required: tuple[str, ...] = ()) -> dict:
    schema: dict = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


def _list(item: dict) -> dict:
    return {"type": "array", "items": item}


_S, _I, _B = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
_NULLABLE_I = {"type": ["integer", "null"]}
_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_KEY_VALUE = _obj({"key": _S, "value": _S}, ("key",))

SCHEMAS: Mapping[str, dict] = MappingProxyType({
    "Double": {"anyOf": [{"type": "number"}, {"enum": ["NaN", "Infinity", "-Infinity"]}]},
    "Tag": _KEY_VALUE,
    "Param": _KEY_VALUE,
    "Metric": _obj({"key": _S, "value": _ref("Double"), "timestamp": _I, "step": _I, "run_id": _S,
                    "model_id": _S, "dataset_name": _S, "dataset_digest": _S}, ("key", "value")),
    "Experiment": _obj({"experiment_id": _S, "name": _S, "artifact_location": _S, "lifecycle_stage": _S,
                        "last_update_time": _I, "creation_time": _I, "tags": _list(_ref("Tag"))},
                       ("experiment_id", "name")),
    "RunInfo": _obj({"run_id": _S, "run_uuid": _S, "run_name": _S, "experiment_id": _S, "user_id": _S,
                     "status": {"enum": ["RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"]},
                     "start_time": _I, "end_time": _I, "artifact_uri": _S, "lifecycle_stage": _S},
                    ("run_id", "experiment_id", "status")),
    "RunData": _obj({"metrics": _list(_ref("Metric")), "params": _list(_ref("Param")), "tags": _list(_ref("Tag"))}),
    "Dataset": _obj({"name": _S, "digest": _S, "source_type": _S, "source": _S, "schema": _S, "profile": _S},
                    ("name", "digest")),
    "DatasetInput": _obj({"tags": _list(_ref("Tag")), "dataset": _ref("Dataset")}, ("dataset",)),
    "RunInputs": _obj({"dataset_inputs": _list(_ref("DatasetInput")),
                       "model_inputs": _list(_obj({"model_id": _S}, ("model_id",)))}),
    "RunOutputs": _obj({"model_outputs": _list(_obj({"model_id": _S, "step": _I}, ("model_id",)))}),
    "Run": _obj({"info": _ref("RunInfo"), "data": _ref("RunData"), "inputs": _ref("RunInputs"),
                 "outputs": _ref("RunOutputs")}, ("info", "data")),
    "FileInfo": _obj({"path": _S, "is_dir": _B, "file_size": _I}, ("path",)),
    "ModelVersion": _obj({"name": _S, "version": _S, "creation_timestamp": _I, "last_updated_timestamp": _I,
                          "user_id": _S, "current_stage": _S, "description": _S, "source": _S, "run_id": _S,
                          "run_link": _S, "status": {"enum": ["PENDING_REGISTRATION", "FAILED_REGISTRATION",
                                                              "READY"]},
                          "status_message": _S, "tags": _list(_ref("Tag")), "aliases": _list(_S), "model_id": _S},
                         ("name", "version")),
    "RegisteredModel": _obj({"name": _S, "creation_timestamp": _I, "last_updated_timestamp": _I, "user_id": _S,
                             "description": _S, "latest_versions": _list(_ref("ModelVersion")),
                             "tags": _list(_ref("Tag")),
                             "aliases": _list(_obj({"alias": _S, "version": _S}, ("alias", "version")))},
                            ("name",)),
    "LoggedModelInfo": _obj({"model_id": _S, "experiment_id": _S, "name": _S, "creation_timestamp_ms": _I,
                             "last_updated_timestamp_ms": _I, "artifact_uri": _S, "status": _S, "creator_id": _S,
                             "model_type": _S, "source_run_id": _S, "status_message": _S,
                             "tags": _list(_ref("Tag")), "registrations": _list({"type": "object"})},
                            ("model_id", "experiment_id")),
    "LoggedModel": _obj({"info": _ref("LoggedModelInfo"),
                         "data": _obj({"params": _list(_ref("Param")), "metrics": _list(_ref("Metric"))})},
                        ("info",)),
    "Assessment": _obj({"assessment_id": _S, "assessment_name": _S, "trace_id": _S, "span_id": _S,
                        "source": _obj({"source_type": _S, "source_id": _S}), "create_time": _S,
                        "last_update_time": _S, "feedback": {"type": "object"}, "expectation": {"type": "object"},
                        "rationale": _S, "metadata": _STR_MAP, "overrides": _S, "valid": _B, "run_id": _S},
                       ("assessment_id", "trace_id")),
    "TraceInfo": _obj({"trace_id": _S, "client_request_id": _S,
                       "trace_location": _obj({"type": _S, "mlflow_experiment": _obj({"experiment_id": _S})}),
                       "request_time": _S, "execution_duration": _S, "state": _S, "request_preview": _S,
                       "response_preview": _S, "trace_metadata": _STR_MAP, "tags": _STR_MAP,
                       "assessments": _list(_ref("Assessment"))}, ("trace_id", "trace_location")),
    "Trace": _obj({"trace_info": _ref("TraceInfo"), "spans": _list({"type": "object"})}, ("trace_info",)),
    # mlgate's own
    "User": _obj({"id": _I, "username": _S, "is_admin": _B}, ("id", "username", "is_admin")),
    "TokenInfo": _obj({"id": _S, "name": _S, "read_only": _B, "created_at": _I, "expires_at": _NULLABLE_I,
                       "last_used_at": _NULLABLE_I, "revoked": _B, "scope": _list(_S), "cidrs": _list(_S)},
                      ("id", "name", "read_only", "revoked")),
    "Account": _obj({"id": _I, "username": _S, "kind": {"enum": ["user", "service"]}, "is_admin": _B,
                     "disabled": _B, "groups": _list(_S), "created_at": _I,
                     "source": {"enum": ["local", "oidc", "scim"]}}, ("id", "username", "kind")),
    "Group": _obj({"name": _S, "members": _list(_S), "created_at": _I}, ("name",)),
    "Grant": _obj({"id": _I, "subject": _S, "resource": _S, "resource_name": {"type": ["string", "null"]},
                   "permission": _S, "source": _S,
                   "created_by": {"type": ["string", "null"]}, "created_at": _I, "expires_at": _NULLABLE_I,
                   "break_glass": _B},
                  ("id", "subject", "resource", "permission")),
    "Workspace": _obj({"name": _S, "description": _S}, ("name",)),
    "RolePermission": _obj({"id": _I, "role_id": _I, "resource_type": _S, "resource_pattern": _S, "permission": _S},
                           ("id", "role_id", "resource_type", "resource_pattern", "permission")),
    "Role": _obj({"id": _I, "name": _S, "workspace": _S, "description": {"type": ["string", "null"]},
                  "permissions": _list(_ref("RolePermission"))}, ("id", "name", "workspace")),
    "RoleAssignment": _obj({"id": _I, "user_id": _I, "role_id": _I}, ("id", "user_id", "role_id")),
    "AuditEvent": _obj({"id": _I, "at": _I, "actor": {"type": ["string", "null"]}, "action": _S,
                        "target": {"type": ["string", "null"]}, "client_address": {"type": ["string", "null"]},
                        "outcome": _S, "reason": {"type": ["string", "null"]}}, ("id", "at", "action", "outcome")),
})

_EMPTY = {"type": "object", "maxProperties": 0}
_PAGE = {"next_page_token": _S}


def _one(key: str, schema: str) -> dict:
    return _obj({key: _ref(schema)}, (key,))


def _many(key: str, schema: str, paged: bool = True) -> dict:
    return _obj({key: _list(_ref(schema)), **(_PAGE if paged else {})})


_EXPERIMENT_PERMISSION = _obj({"experiment_permission": _obj(
    {"experiment_id": _S, "user_id": _I, "permission": _S}, ("experiment_id", "permission"))},
    ("experiment_permission",))
_MODEL_PERMISSION = _obj({"registered_model_permission": _obj(
    {"name": _S, "user_id": _I, "permission": _S}, ("name", "permission"))}, ("registered_model_permission",))
_LISTING = _obj({"root_uri": _S, "files": _list(_ref("FileInfo")), **_PAGE})

# The success body of each JSON operation. An operation answering JSON that is not here gets the bare
# {"type": "object"}; tests/fuzz/test_openapi.py keeps the list of those from growing.
RESULTS: Mapping[str, dict] = MappingProxyType({
    "experiments.create": _obj({"experiment_id": _S}, ("experiment_id",)),
    "experiments.get": _one("experiment", "Experiment"),
    "experiments.get_by_name": _one("experiment", "Experiment"),
    **{f"experiments.{op}": _EMPTY for op in ("update", "delete", "restore", "set_tag", "delete_tag")},
    "experiments.search": _many("experiments", "Experiment"),
    "experiments.search_via_get": _many("experiments", "Experiment"),
    "runs.create": _one("run", "Run"),
    "runs.get": _one("run", "Run"),
    "runs.update": _one("run_info", "RunInfo"),
    **{f"runs.{op}": _EMPTY for op in ("delete", "restore", "set_tag", "delete_tag", "log_metric", "log_param",
                                       "log_batch", "log_inputs", "log_outputs")},
    "runs.search": _many("runs", "Run"),
    "runs.search_via_get": _many("runs", "Run"),
    "metrics.get_history": _many("metrics", "Metric"),
    "metrics.get_history_bulk_interval": _many("metrics", "Metric", paged=False),
    "artifacts.list": _obj({"files": _list(_ref("FileInfo")), **_PAGE}),
    "artifacts.list_for_run": _LISTING,
    "logged_models.list_artifacts": _LISTING,
    "registered_models.create": _one("registered_model", "RegisteredModel"),
    "registered_models.get": _one("registered_model", "RegisteredModel"),
    "registered_models.rename": _one("registered_model", "RegisteredModel"),
    "registered_models.update": _one("registered_model", "RegisteredModel"),
    **{f"registered_models.{op}": _EMPTY for op in ("delete", "set_tag", "delete_tag", "set_alias",
                                                    "delete_alias")},
    "registered_models.search": _many("registered_models", "RegisteredModel"),
    "registered_models.search_via_post": _many("registered_models", "RegisteredModel"),
    "registered_models.get_latest_versions": _many("model_versions", "ModelVersion", paged=False),
    "registered_models.get_latest_versions_via_get": _many("model_versions", "ModelVersion", paged=False),
    "registered_models.get_version_by_alias": _one("model_version", "ModelVersion"),
    "model_versions.create": _one("model_version", "ModelVersion"),
    "model_versions.get": _one("model_version", "ModelVersion"),
    "model_versions.update": _one("model_version", "ModelVersion"),
    "model_versions.transition_stage": _one("model_version", "ModelVersion"),
    **{f"model_versions.{op}": _EMPTY for op in ("delete", "set_tag", "delete_tag")},
    "model_versions.search": _many("model_versions", "ModelVersion"),
    "model_versions.search_via_post": _many("model_versions", "ModelVersion"),
    "model_versions.get_download_uri": _obj({"artifact_uri": _S}, ("artifact_uri",)),
    "logged_models.create": _one("model", "LoggedModel"),
    "logged_models.get": _one("model", "LoggedModel"),
    "logged_models.finalize": _one("model", "LoggedModel"),
    "logged_models.search": _many("models", "LoggedModel"),
    "traces.start": _obj({"trace": _obj({"trace_info": _ref("TraceInfo")}, ("trace_info",))}, ("trace",)),
    "traces.get_info": _obj({"trace": _obj({"trace_info": _ref("TraceInfo")}, ("trace_info",))}, ("trace",)),
    "traces.get": _one("trace", "Trace"),
    "traces.batch_get": _many("traces", "Trace", paged=False),
    "traces.search": _many("traces", "TraceInfo"),
    "assessments.create": _one("assessment", "Assessment"),
    "assessments.get": _one("assessment", "Assessment"),
    "assessments.update": _one("assessment", "Assessment"),
    # mlgate's user, token, permission and admin APIs
    "users.create": _one("user", "User"),
    "users.get": _one("user", "User"),
    "users.list": _many("users", "User", paged=False),
    "users.current": _obj({"user": _ref("User"), "kind": _S, "groups": _list(_S), "auth_method": _S,
                           "read_only": _B}, ("user",)),
    **{f"users.{op}": _EMPTY for op in ("update_password", "update_admin", "update_disabled", "delete")},
    "tokens.create": _obj({"token": _S, "token_info": _ref("TokenInfo")}, ("token", "token_info")),
    "tokens.list": _many("tokens", "TokenInfo", paged=False),
    "tokens.revoke": _EMPTY,
    **{f"permissions.experiments.{op}": _EXPERIMENT_PERMISSION
       for op in ("create", "get", "update", "update_via_post")},
    **{f"permissions.registered_models.{op}": _MODEL_PERMISSION
       for op in ("create", "get", "update", "update_via_post")},
    **{f"permissions.{kind}.{op}": _EMPTY for kind in ("experiments", "registered_models")
       for op in ("delete", "delete_via_post")},
    "permissions.users.grant": _EMPTY,
    "permissions.users.revoke": _EMPTY,
    "permissions.users.get": _obj({"allowed": _B, "permission": {"enum": ["NO_PERMISSIONS", "READ", "EDIT",
                                                                          "MANAGE"]}},
                                  ("allowed", "permission")),
    "workspaces.list": _many("workspaces", "Workspace", paged=False),
    **{f"workspaces.{op}": _one("workspace", "Workspace") for op in ("get", "create", "update")},
    **{f"roles.{op}": _one("role", "Role") for op in ("create", "get", "update")},
    "roles.list": _many("roles", "Role", paged=False),
    "roles.users.roles": _many("roles", "Role", paged=False),
    **{f"roles.{op}": _EMPTY for op in ("delete", "permissions.remove", "unassign")},
    **{f"roles.permissions.{op}": _one("role_permission", "RolePermission") for op in ("add", "update")},
    "roles.permissions.list": _many("role_permissions", "RolePermission", paged=False),
    "roles.assign": _one("assignment", "RoleAssignment"),
    "roles.users.list": _many("assignments", "RoleAssignment", paged=False),
    "admin.users.list": _many("users", "Account", paged=False),
    "admin.users.get": _one("user", "Account"),
    "admin.groups.list": _many("groups", "Group", paged=False),
    "admin.groups.create": _one("group", "Group"),
    **{f"admin.groups.{op}": _EMPTY for op in ("delete", "add_member", "remove_member")},
    "admin.grants.list": _many("grants", "Grant", paged=False),
    "admin.grants.put": _one("grant", "Grant"),
    "admin.grants.revoke": _EMPTY,
    "admin.audit.list": _many("records", "AuditEvent", paged=False),
    "admin.audit.verify": _obj({"verification": _obj({
        "ok": _B, "checked": _I, "unchained": _I, "first_bad_id": _NULLABLE_I,
        "problem": {"type": ["string", "null"]}, "head_hash": {"type": ["string", "null"]},
        "anchor_id": _I, "signatures_checked": _B, "checkpoints_matched": _I, "last_checkpoint_id": _NULLABLE_I,
        "notes": _list(_S)},
        ("ok", "checked", "unchained"))}, ("verification",)),
    "admin.audit.checkpoint": _obj({"checkpoint": {"type": ["object", "null"]}}, ("checkpoint",)),
    "admin.audit.checkpoints": _obj({"checkpoints": _list(_obj(
        {"id": _I, "seq": _I, "count": _I, "hash": _S, "at": _I, "kind": _S, "key_id": _S, "signature": _S},
        ("id", "seq", "count", "hash", "at", "kind", "key_id", "signature")))}, ("checkpoints",)),
    "admin.audit.prune": _obj({"pruned": _I, "first_id": _I, "last_id": _I, "anchor": {"type": "object"}},
                              ("pruned",)),
    "ops.ready": _obj({"status": _S, "checks": _STR_MAP}, ("status", "checks")),
    "server.info": _obj({"store_type": _S, "workspaces_enabled": _B, "trace_archival_enabled": _B,
                         "multipart_uploads_enabled": _B, "multipart_downloads_enabled": _B,
                         "presigned_upload_run_id_supported": _B, "presigned_upload_model_id_supported": _B,
                         "features_enabled": {"type": "object", "additionalProperties": _B}}, ("store_type",)),
    **{op: _EMPTY for op in ("artifacts.put", "artifacts.delete", "logged_models.delete", "logged_models.set_tags",
                             "logged_models.delete_tag", "logged_models.log_params", "traces.set_tag",
                             "traces.delete_tag", "assessments.delete")},
    "traces.delete": _obj({"traces_deleted": _I}, ("traces_deleted",)),
    "traces.link_to_run": _EMPTY,
    "admin.perms.explain": _obj({"allowed": _B, "reason": _S, "rule": _S, "subject": _S,
                                 "action": {"enum": ["READ", "EDIT", "MANAGE"]},
                                 "resource": _obj({"type": {"enum": ["experiment", "registered_model"]},
                                                   "id": {"type": ["string", "null"]},
                                                   "name": {"type": ["string", "null"]}}, ("type",))},
                                ("allowed", "reason", "rule", "subject", "action", "resource")),
    "admin.policy.export": _obj({"access": _obj({
        "groups": {"type": "object", "additionalProperties": _list(_S)},
        "grants": _list(_obj({"principal": _S, "resource": _S, "permission": _S},
                             ("principal", "resource", "permission")))}, ("groups", "grants")),
        "names": {"type": "object", "additionalProperties": _S}}, ("access",)),
    "admin.policy.apply": _obj({"applied": _B, "changes": _list(_obj(
        {"op": {"enum": ["add", "remove", "change"]}, "kind": {"enum": ["group", "member", "grant"]},
         "group": _S, "member": _S, "subject": _S, "resource": _S, "permission": _S, "old_permission": _S,
         "source": {"enum": ["owner"]}},
        ("op", "kind")))}, ("applied", "changes")),
    "permissions.users.list": _obj({"is_admin": _B, "permissions": _list(_obj(
        {"role_id": _I, "role_name": _S, "workspace": _S, "resource_type": {"enum": ["experiment", "registered_model"]},
         "resource_pattern": _S, "permission": _S}, ("resource_type", "resource_pattern", "permission")))},
        ("is_admin", "permissions")),
})


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
    "none": {},
}
# Successes answered with another status than 200, as MLflow's server answers them.
_SUCCESS_STATUS = {"workspaces.create": "201", "workspaces.delete": "204"}
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
    schemas = components.setdefault("schemas", {})
    schemas.update(copy.deepcopy(dict(SCHEMAS)))
    schemas["Error"] = {
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
            if contract.success == "json" and op_id in RESULTS:
                success = {"application/json": {"schema": RESULTS[op_id]}}
            if op_id == "otlp.ingest":
                success = {"application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
                           "application/json": {"schema": {"type": "object"}}}
            answered = {"description": "Success", "content": copy.deepcopy(success)} if success else \
                {"description": "Success, no body"}
            responses = {_SUCCESS_STATUS.get(op_id, "200"): answered}
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
