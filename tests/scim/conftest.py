"""Apps with SCIM provisioning on: a provisioning token from the environment, as an operator sets it."""

from __future__ import annotations

import secrets

import pytest

from tests.gateway.authn_support import make_client

SCIM = "/scim/v2"
SCIM_MEDIA = "application/scim+json"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
# A policy where the SCIM group ml-team reads every experiment under shared/.
ACCESS = {"grants": [{"principal": "group:ml-team", "resource": "experiment-name:shared/*", "permission": "READ"}]}


@pytest.fixture
def scim_token(monkeypatch) -> str:
    token = secrets.token_urlsafe(32)
    monkeypatch.setenv("MLGATE_TEST_SCIM_TOKEN", token)
    return token


@pytest.fixture
def scim_auth(scim_token) -> dict[str, str]:
    return {"Authorization": f"Bearer {scim_token}"}


@pytest.fixture
def app_client(app_factory, tmp_path, scim_token):
    """A TestClient over an app with SCIM on and the ACCESS policy; no credentials by default."""
    import yaml

    path = tmp_path / "scim-policy.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "access": ACCESS, "auth": {
        "passwords": {"hash_rounds": 10}, "scim": {"token": "${MLGATE_TEST_SCIM_TOKEN}"}}}))
    from starlette.testclient import TestClient

    from tests.gateway.authn_support import BASE_URL

    with TestClient(app_factory(policy_file=str(path)), base_url=BASE_URL, follow_redirects=False) as client:
        yield client


@pytest.fixture
def plain_client(app_factory, tmp_path):
    """An app without an auth.scim section."""
    with make_client(app_factory, tmp_path) as client:
        yield client


def patch(*operations: dict) -> dict:
    """A PatchOp body."""
    return {"schemas": [PATCH_OP], "Operations": list(operations)}
