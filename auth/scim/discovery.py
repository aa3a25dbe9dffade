"""The SCIM discovery documents (RFC 7644 section 4): what this server supports, stated exactly."""

from __future__ import annotations

from auth.scim.protocol import GROUP_SCHEMA, LIST_SCHEMA, USER_SCHEMA

SPC_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
RESOURCE_TYPE_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SCHEMA_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"
DOCS = "https://github.com/mlgate/mlgate/blob/main/docs/scim.md"


def service_provider_config(base: str, max_results: int) -> dict:
    """RFC 7643 section 5: PATCH and filter (eq, joined by and) yes; bulk, sort, etags, password change no."""
    return {
        "schemas": [SPC_SCHEMA],
        "documentationUri": DOCS,
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": max_results},
        "changePassword": {"supported": False},
        "sort": {"supported": False},
        "etag": {"supported": False},
        "authenticationSchemes": [{
            "type": "oauthbearertoken", "name": "Bearer token",
            "description": "The provisioning token set in the policy file (auth.scim.token).", "primary": True,
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": f"{base}/ServiceProviderConfig"},
    }


def _attribute(name: str, type_: str = "string", *, multi: bool = False, required: bool = False,
               case_exact: bool = False, mutability: str = "readWrite", returned: str = "default",
               uniqueness: str = "none", sub: list[dict] | None = None) -> dict:
    out = {"name": name, "type": type_, "multiValued": multi, "description": name, "required": required,
           "caseExact": case_exact, "mutability": mutability, "returned": returned, "uniqueness": uniqueness}
    if sub is not None:
        out["subAttributes"] = sub
    return out


def _user_schema() -> dict:
    name_parts = [_attribute(n) for n in ("formatted", "familyName", "givenName", "middleName", "honorificPrefix",
                                          "honorificSuffix")]
    email_parts = [_attribute("value"), _attribute("type"), _attribute("primary", "boolean")]
    group_parts = [_attribute("value", mutability="readOnly"), _attribute("display", mutability="readOnly"),
                   _attribute("$ref", "reference", mutability="readOnly"), _attribute("type", mutability="readOnly")]
    return {"schemas": [SCHEMA_SCHEMA], "id": USER_SCHEMA, "name": "User", "description": "User Account",
            "attributes": [
                # userName is immutable here: grants name accounts by it (docs/scim.md).
                _attribute("userName", required=True, mutability="immutable", uniqueness="server"),
                _attribute("displayName"),
                _attribute("name", "complex", sub=name_parts),
                _attribute("emails", "complex", multi=True, sub=email_parts),
                _attribute("active", "boolean"),
                _attribute("groups", "complex", multi=True, mutability="readOnly", sub=group_parts),
            ],
            "meta": {"resourceType": "Schema", "location": f"/Schemas/{USER_SCHEMA}"}}


def _group_schema() -> dict:
    member_parts = [_attribute("value", mutability="immutable"), _attribute("display", mutability="readOnly"),
                    _attribute("$ref", "reference", mutability="immutable"), _attribute("type", mutability="immutable")]
    return {"schemas": [SCHEMA_SCHEMA], "id": GROUP_SCHEMA, "name": "Group", "description": "Group",
            "attributes": [
                _attribute("displayName", required=True, mutability="immutable", uniqueness="server"),
                _attribute("members", "complex", multi=True, sub=member_parts),
            ],
            "meta": {"resourceType": "Schema", "location": f"/Schemas/{GROUP_SCHEMA}"}}


def schemas(base: str) -> dict[str, dict]:
    """Every schema by id, with absolute locations."""
    out = {}
    for schema in (_user_schema(), _group_schema()):
        schema["meta"]["location"] = base + schema["meta"]["location"]
        out[schema["id"]] = schema
    return out


def resource_types(base: str) -> dict[str, dict]:
    """The User and Group resource types by name (RFC 7643 section 6)."""
    return {
        name: {"schemas": [RESOURCE_TYPE_SCHEMA], "id": name, "name": name, "endpoint": f"/{name}s",
               "description": name, "schema": schema, "schemaExtensions": [],
               "meta": {"resourceType": "ResourceType", "location": f"{base}/ResourceTypes/{name}"}}
        for name, schema in (("User", USER_SCHEMA), ("Group", GROUP_SCHEMA))
    }


def list_response(resources: list[dict], total: int | None = None, start: int = 1) -> dict:
    """A ListResponse (RFC 7644 section 3.4.2)."""
    return {"schemas": [LIST_SCHEMA], "totalResults": len(resources) if total is None else total,
            "startIndex": start, "itemsPerPage": len(resources), "Resources": resources}
