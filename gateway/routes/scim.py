"""SCIM 2.0 endpoints under /scim/v2 (RFC 7644): Users, Groups and the discovery documents.

Every operation is ``Access.SCIM`` in the route table: the authorizer admits the provisioning token and
nothing else before a handler runs. Handlers parse, call :class:`auth.scim.ScimProvisioning`
and answer ``application/scim+json``; errors are SCIM error bodies (gateway/errors.py).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from auth.scim.discovery import list_response, resource_types, schemas, service_provider_config
from auth.scim.protocol import ScimError, decode_json, not_found, paging
from auth.scim.provisioning import ScimProvisioning
from auth.scim.token import PREFIX

router = APIRouter(prefix=PREFIX, include_in_schema=False)
MEDIA_TYPE = "application/scim+json"
# Top-level attributes always returned (RFC 7643 section 7: returned "always").
ALWAYS = frozenset({"id", "schemas", "meta"})


def scim_json(body: dict, status: int = 200, headers: dict | None = None) -> JSONResponse:
    """A SCIM response body (RFC 7644 section 3.1: application/scim+json)."""
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def provisioning_of(request: Request) -> ScimProvisioning:
    """The app's SCIM service (built in create_app; the authorizer refuses SCIM when it is off)."""
    service = request.app.state.scim
    if service is None:
        raise ScimError(404, "SCIM provisioning is not enabled on this server (auth.scim.token).")
    return service


Provisioning = Annotated[ScimProvisioning, Depends(provisioning_of)]


async def json_body(request: Request) -> dict:
    """The request's JSON object (size-limited by the network ring before it gets here)."""
    return decode_json(await request.body())


Body = Annotated[dict, Depends(json_body)]


def base_url(request: Request) -> str:
    """The absolute /scim/v2 URL the caller reached (its Host was checked by the network ring)."""
    return str(request.base_url).rstrip("/") + PREFIX


def _client(request: Request) -> str | None:
    return getattr(request.state, "client_ip", None) or (request.client.host if request.client else None)


def _project(resource: dict, request: Request) -> dict:
    """``attributes`` / ``excludedAttributes`` (RFC 7644 section 3.9), on top-level attribute names."""
    def names(param: str) -> set[str]:
        value = request.query_params.get(param) or ""
        return {n.strip().rsplit(":", 1)[-1].lower() for n in value.split(",") if n.strip()}
    wanted, excluded = names("attributes"), names("excludedAttributes")
    if wanted:
        return {k: v for k, v in resource.items() if k in ALWAYS or k.lower() in wanted}
    return {k: v for k, v in resource.items() if k in ALWAYS or k.lower() not in excluded}


def _members_wanted(request: Request) -> bool:
    excluded = (request.query_params.get("excludedAttributes") or "").lower()
    return "members" not in {n.strip().rsplit(":", 1)[-1] for n in excluded.split(",")}


# --- discovery ------------------------------------------------------------------------------------
@router.get("/ServiceProviderConfig", operation_id="scim.service_provider_config")
def get_service_provider_config(request: Request, scim: Provisioning) -> Response:
    """What this server supports (RFC 7643 section 5)."""
    return scim_json(service_provider_config(base_url(request), scim.max_results))


@router.get("/ResourceTypes", operation_id="scim.resource_types.list")
def list_resource_types(request: Request, scim: Provisioning) -> Response:
    """User and Group."""
    return scim_json(list_response(list(resource_types(base_url(request)).values())))


@router.get("/ResourceTypes/{name}", operation_id="scim.resource_types.get")
def get_resource_type(request: Request, name: str, scim: Provisioning) -> Response:
    """One resource type."""
    found = resource_types(base_url(request)).get(name)
    if found is None:
        raise not_found("ResourceType", name)
    return scim_json(found)


@router.get("/Schemas", operation_id="scim.schemas.list")
def list_schemas(request: Request, scim: Provisioning) -> Response:
    """The User and Group schemas, with the attributes this server keeps."""
    return scim_json(list_response(list(schemas(base_url(request)).values())))


@router.get("/Schemas/{schema_id}", operation_id="scim.schemas.get")
def get_schema(request: Request, schema_id: str, scim: Provisioning) -> Response:
    """One schema by its URN."""
    found = schemas(base_url(request)).get(schema_id)
    if found is None:
        raise not_found("Schema", schema_id)
    return scim_json(found)


# --- users ----------------------------------------------------------------------------------------
@router.get("/Users", operation_id="scim.users.list")
def list_users(request: Request, scim: Provisioning) -> Response:
    """Provisioned accounts, filtered (``userName eq "..."``) and paged (startIndex, count)."""
    start, count = paging(request.query_params.get("startIndex"), request.query_params.get("count"),
                          scim.max_results)
    total, page = scim.list_users(request.query_params.get("filter"), start, count, base_url(request))
    return scim_json(list_response([_project(r, request) for r in page], total, start))


@router.post("/Users", operation_id="scim.users.create")
def create_user(request: Request, body: Body, scim: Provisioning) -> Response:
    """Provision an account (201 with its Location)."""
    resource = scim.create_user(body, base_url(request), _client(request))
    return scim_json(resource, 201, {"Location": resource["meta"]["location"]})


@router.get("/Users/{user_id}", operation_id="scim.users.get")
def get_user(request: Request, user_id: str, scim: Provisioning) -> Response:
    """One provisioned account."""
    return scim_json(_project(scim.get_user(user_id, base_url(request)), request))


@router.put("/Users/{user_id}", operation_id="scim.users.replace")
def replace_user(request: Request, user_id: str, body: Body, scim: Provisioning) -> Response:
    """Replace an account's attributes; ``active: false`` deprovisions it at once."""
    return scim_json(scim.replace_user(user_id, body, base_url(request), _client(request)))


@router.patch("/Users/{user_id}", operation_id="scim.users.patch")
def patch_user(request: Request, user_id: str, body: Body, scim: Provisioning) -> Response:
    """Change some attributes; ``active: false`` deprovisions the account at once."""
    return scim_json(scim.patch_user(user_id, body, base_url(request), _client(request)))


@router.delete("/Users/{user_id}", operation_id="scim.users.delete")
def delete_user(request: Request, user_id: str, scim: Provisioning) -> Response:
    """Delete the account with everything naming it (204)."""
    scim.delete_user(user_id, _client(request))
    return Response(status_code=204)


# --- groups ---------------------------------------------------------------------------------------
@router.get("/Groups", operation_id="scim.groups.list")
def list_groups(request: Request, scim: Provisioning) -> Response:
    """Provisioned groups, filtered (``displayName eq "..."``) and paged."""
    start, count = paging(request.query_params.get("startIndex"), request.query_params.get("count"),
                          scim.max_results)
    total, page = scim.list_groups(request.query_params.get("filter"), start, count, base_url(request),
                                                with_members=_members_wanted(request))
    return scim_json(list_response([_project(r, request) for r in page], total, start))


@router.post("/Groups", operation_id="scim.groups.create")
def create_group(request: Request, body: Body, scim: Provisioning) -> Response:
    """Create an mlgate group (201 with its Location)."""
    resource = scim.create_group(body, base_url(request), _client(request))
    return scim_json(resource, 201, {"Location": resource["meta"]["location"]})


@router.get("/Groups/{group_id}", operation_id="scim.groups.get")
def get_group(request: Request, group_id: str, scim: Provisioning) -> Response:
    """One provisioned group."""
    resource = scim.get_group(group_id, base_url(request), with_members=_members_wanted(request))
    return scim_json(_project(resource, request))


@router.put("/Groups/{group_id}", operation_id="scim.groups.replace")
def replace_group(request: Request, group_id: str, body: Body, scim: Provisioning) -> Response:
    """Replace a group's members and externalId."""
    return scim_json(scim.replace_group(group_id, body, base_url(request), _client(request)))


@router.patch("/Groups/{group_id}", operation_id="scim.groups.patch")
def patch_group(request: Request, group_id: str, body: Body, scim: Provisioning) -> Response:
    """Add, remove or replace members (members[value eq "..."] paths included)."""
    return scim_json(scim.patch_group(group_id, body, base_url(request), _client(request)))


@router.delete("/Groups/{group_id}", operation_id="scim.groups.delete")
def delete_group(request: Request, group_id: str, scim: Provisioning) -> Response:
    """Delete the group with its memberships, grants and roles (204)."""
    scim.delete_group(group_id, _client(request))
    return Response(status_code=204)
