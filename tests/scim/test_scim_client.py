"""SCIM driven by a real SCIM client library (scim2-client over its ASGI engine): it discovers the service,
validates every response against the RFC 7643 models, and raises on any error body it does not expect."""

from __future__ import annotations

import asyncio

from scim2_client.engines.asgi import ASGISCIMClient
from scim2_models import Email, Group, GroupMember, Name, PatchOp, PatchOperation, ScimProvider, User

from tests.gateway.authn_support import BASE_URL
from tests.scim.conftest import SCIM


def _run(app, token: str, scenario):
    async def main():
        client = ASGISCIMClient(app, base_url=f"{BASE_URL}{SCIM}", headers={"Authorization": f"Bearer {token}"})
        await client.discover()
        return await scenario(client)
    return asyncio.run(main())


def test_a_real_scim_client_provisions_updates_and_deprovisions(app_client, scim_token):
    async def scenario(scim):
        user = await scim.create(User(user_name="bjensen", external_id="okta-1", display_name="Barbara",
                                      name=Name(given_name="Barbara", family_name="Jensen"),
                                      emails=[Email(value="bjensen@example.com", type="work", primary=True)]))
        assert user.id
        assert user.active is True
        assert user.meta.location.endswith(f"/Users/{user.id}")
        found = await scim.query(User, query_parameters={"filter": 'userName eq "BJensen"'})
        assert found.total_results == 1
        assert found.resources[0].id == user.id
        found = await scim.query(User, query_parameters={"filter": 'externalId eq "okta-1"'})
        assert [u.user_name for u in found.resources] == ["bjensen"]

        group = await scim.create(Group(display_name="ml-team", members=[GroupMember(value=user.id)]))
        assert [m.value for m in group.members] == [user.id]
        fetched = await scim.query(User, user.id)
        assert [g.display for g in fetched.groups] == ["ml-team"]

        deactivate = PatchOp[User](operations=[PatchOperation(op="replace", path="active", value=False)])
        patched = await scim.modify(User, user.id, deactivate)
        assert patched.active is False

        replaced = await scim.replace(User(id=user.id, user_name="bjensen", active=True, display_name="Babs"))
        assert replaced.active is True
        assert replaced.display_name == "Babs"
        assert replaced.emails is None

        await scim.delete(Group, group.id)
        await scim.delete(User, user.id)
        missing = await scim.query(User, user.id, raise_scim_errors=False, expected_status_codes=None)
        assert str(missing.status) == "404"

    _run(app_client.app, scim_token, scenario)
    identity = app_client.app.state.identity
    assert identity.store.user_by_name("bjensen") is None


def test_a_real_scim_client_with_a_wrong_token_is_refused(app_client, scim_token):
    async def main():
        client = ASGISCIMClient(app_client.app, base_url=f"{BASE_URL}{SCIM}", provider=ScimProvider(models=[User]),
                                headers={"Authorization": "Bearer " + "w" * 43})
        return await client.query(User, raise_scim_errors=False, expected_status_codes=None)

    error = asyncio.run(main())
    assert str(error.status) == "401"
