"""A person's IdP access token works for the API before any browser sign-in, where the provider allows it
(``provision_from_api_tokens``): the first valid JWT creates the account (source oidc) with its groups from the
token's claims, under the same rules as a browser sign-in. Real IdP (oidc-provider), real mlflow client.

The default (off) is tested in test_sso_machine.py: a person who never signed in through the browser is refused.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import LiveServer, start_server
from tests.idp import IdP, start_idp
from tests.services import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.oidc]
SECRET = "mlgate-app-secret-0123456789-abcdef"
USERS = {
    "alice": {"email": "alice@example.com", "email_verified": True, "groups": ["staff", "team-a"]},
    "mallory": {"email": "mallory@example.com", "email_verified": True, "groups": ["outsiders"]},
    "eve": {"email": "eve@example.com", "email_verified": True, "groups": ["staff"]},
    "dave": {"email": "dave@example.com", "email_verified": True, "groups": ["staff"]},
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[tuple[LiveServer, IdP]]:
    workdir = tmp_path_factory.mktemp("sso-provision")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    idp = start_idp(workdir / "idp", users=USERS, profile_in_access_tokens=True, clients=[
        {"client_id": "mlgate", "client_secret": SECRET, "grant_types": ["authorization_code"],
         "response_types": ["code"], "redirect_uris": [f"{base}/sso/corp/callback"]},
        {"client_id": "stranger", "client_secret": SECRET, "grant_types": ["client_credentials"],
         "response_types": [], "redirect_uris": []},
    ])
    policy = workdir / "policy.yaml"
    policy.write_text(f"""
version: 1
auth:
  oidc:
    providers:
      - name: corp
        issuer: {idp.issuer}
        client_id: mlgate
        client_secret: ${{CORP_SECRET}}
        allowed_groups: [staff]
        audience: {idp.api_audience}
        provision_from_api_tokens: true
access:
  grants:
    - {{principal: "group:team-a", resource: "experiment-name:team-a/*", permission: EDIT}}
""")
    try:
        server = start_server(workdir / "server", f"sqlite:///{workdir / 'mlgate.db'}", "--dev", "--policy",
                              str(policy), port=port, env={"CORP_SECRET": SECRET})
    except Exception:
        idp.stop()
        raise
    for name in ("team-a/exp", "other/exp"):
        httpx.post(f"{server.url}/api/2.0/mlflow/experiments/create", json={"name": name},
                   auth=server.admin_auth, timeout=30).raise_for_status()
    yield server, idp
    server.stop()
    idp.stop()


def api_token(server: LiveServer, idp: IdP, login: str) -> str:
    """``login``'s JWT access token for the API through mlgate's client (as a CLI helper would get it)."""
    return idp.user_tokens("mlgate", login, f"{server.url}/sso/corp/callback", resource=idp.api_audience,
                           scope="openid api:read api:write")["access_token"]


def call_as(server: LiveServer, token: str, path: str = "users/current") -> httpx.Response:
    return httpx.get(f"{server.url}/api/2.0/mlflow/{path}", headers={"Authorization": f"Bearer {token}"},
                     timeout=30)


def account(server: LiveServer, username: str) -> dict | None:
    found = httpx.get(f"{server.url}/api/2.0/mlgate/users/list", auth=server.admin_auth, timeout=30)
    found.raise_for_status()
    return next((u for u in found.json()["users"] if u["username"] == username), None)


def audit_text(server: LiveServer, action: str) -> str:
    found = httpx.get(f"{server.url}/api/2.0/mlgate/audit/list", params={"action": action, "limit": 500},
                      auth=server.admin_auth, timeout=30)
    found.raise_for_status()
    return found.text


def test_a_persons_first_api_token_provisions_them_with_the_tokens_groups(stack, monkeypatch):
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    server, idp = stack
    assert account(server, "alice") is None
    token = api_token(server, idp, "alice")
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    mlflow.set_tracking_uri(server.url)
    name = f"team-a/run-{uuid.uuid4().hex[:6]}"
    experiment_id = mlflow.set_experiment(name).experiment_id
    with mlflow.start_run() as run:
        mlflow.log_metric("loss", 0.25)
    client = MlflowClient()
    assert [r.info.run_id for r in client.search_runs([experiment_id])] == [run.info.run_id]
    assert sorted(e.name for e in mlflow.search_experiments()) == sorted(["team-a/exp", name])
    assert client.get_experiment_by_name("other/exp") is None
    other = httpx.get(f"{server.url}/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": "other/exp"},
                      auth=server.admin_auth, timeout=30).json()["experiment"]["experiment_id"]
    with pytest.raises(MlflowException) as denied:
        client.get_experiment(other)
    assert denied.value.error_code == "RESOURCE_DOES_NOT_EXIST"  # no grant: hidden == missing
    made = account(server, "alice")
    assert (made["kind"], made["source"], made["is_admin"]) == ("user", "oidc", False)
    assert {"staff", "team-a"} <= set(made["groups"])
    assert "account provisioned from an API access token" in audit_text(server, "login")
    # The same person signing in through the browser later is the same account, not a second one.
    assert call_as(server, api_token(server, idp, "alice")).json()["user"]["username"] == "alice"


def test_a_person_outside_the_allowed_groups_gets_no_account(stack):
    server, idp = stack
    refused = call_as(server, api_token(server, idp, "mallory"))
    assert refused.status_code == 403
    assert "not in a group that may use mlgate" in refused.json()["message"]
    assert account(server, "mallory") is None
    assert "not in a group that may use mlgate" in audit_text(server, "token.use")


def test_a_same_named_local_account_is_not_taken_over(stack):
    server, idp = stack
    httpx.post(f"{server.url}/api/2.0/mlflow/users/create", json={"username": "eve", "password": "Local-Pw-7f3a91c2d"},
               auth=server.admin_auth, timeout=30).raise_for_status()
    refused = call_as(server, api_token(server, idp, "eve"))
    assert refused.status_code == 403
    assert "already exists and is not linked" in refused.json()["message"]
    assert account(server, "eve")["source"] == "local"


def test_a_client_credentials_token_never_becomes_a_person(stack):
    server, idp = stack
    refused = call_as(server, idp.client_credentials_token("stranger"))
    assert refused.status_code == 401
    assert "not mapped to a service account or user" in refused.json()["message"]
    assert account(server, "stranger") is None


# Client-credentials tokens of providers whose ``sub`` is not the client id (docs/sso.md): each shape carries a
# user-name claim and an allowed group, so only recognising it as a machine's token keeps it from becoming a
# person. Keycloak: the service-account user's id, preferred_username "service-account-<client>"; Auth0:
# "<client>@clients" with gty; Entra ID: the service principal's object id with idtyp "app".
FOREIGN_CLIENT_TOKENS = {
    "keycloak": {"sub": "5d1c3a8e-7f0b-4c55-9a51-0d3e6f1b2a90", "azp": "reporter", "client_id": "reporter",
                 "preferred_username": "service-account-reporter", "groups": ["staff"]},
    "keycloak-before-24": {"sub": "0b6f2c1e-3d4a-4f8b-9c2d-7e5a1b3c4d6f", "azp": "exporter", "clientId": "exporter",
                           "preferred_username": "service-account-exporter", "groups": ["staff"]},
    "auth0": {"sub": "batcher@clients", "azp": "batcher", "gty": "client-credentials",
              "preferred_username": "batcher", "groups": ["staff"]},
    "entra": {"sub": "9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d", "oid": "9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d",
              "azp": "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9", "idtyp": "app", "preferred_username": "nightly",
              "groups": ["staff"]},
}


@pytest.mark.parametrize("shape", sorted(FOREIGN_CLIENT_TOKENS))
def test_other_providers_client_credentials_tokens_never_become_people(stack, shape):
    server, idp = stack
    claims = FOREIGN_CLIENT_TOKENS[shape]
    refused = call_as(server, idp.access_token(claims))
    assert refused.status_code == 401, refused.text
    assert "not mapped to a service account or user" in refused.json()["message"]
    assert account(server, claims["preferred_username"]) is None


def test_a_person_whose_token_names_a_client_is_still_provisioned(stack):
    # RFC 9068: a person's token carries the client's id too (client_id, azp); only the machine shapes above
    # are refused, so a Keycloak-style person token (sub a user id, azp the client) still provisions.
    server, idp = stack
    token = idp.access_token({"sub": "b3f1e2d4-0000-4a1b-8c2d-3e4f5a6b7c8d", "azp": "mlgate", "client_id": "mlgate",
                              "preferred_username": "carol", "groups": ["staff"]})
    assert call_as(server, token).status_code == 200
    assert account(server, "carol")["source"] == "oidc"


def test_an_account_an_admin_disabled_is_not_re_enabled_by_a_later_token(stack):
    server, idp = stack
    assert call_as(server, api_token(server, idp, "dave")).status_code == 200
    disable = f"{server.url}/api/2.0/mlflow/users/update-disabled"
    httpx.patch(disable, json={"username": "dave", "disabled": True}, auth=server.admin_auth,
                timeout=30).raise_for_status()
    # The token already seen and a fresh one: both refused, and the account stays disabled.
    for token in (api_token(server, idp, "dave"), api_token(server, idp, "dave")):
        refused = call_as(server, token)
        assert refused.status_code == 401
        assert "disabled" in refused.json()["message"]
    assert account(server, "dave")["disabled"] is True


@pytest.fixture(scope="module")
def passwordless_stack(tmp_path_factory) -> Iterator[tuple[LiveServer, IdP]]:
    """A provider that links same-named passwordless accounts (link_existing_users: passwordless)."""
    workdir = tmp_path_factory.mktemp("sso-provision-link")
    port = free_port()
    idp = start_idp(workdir / "idp", users=USERS, profile_in_access_tokens=True, clients=[
        {"client_id": "mlgate", "client_secret": SECRET, "grant_types": ["authorization_code"],
         "response_types": ["code"], "redirect_uris": [f"http://127.0.0.1:{port}/sso/corp/callback"]}])
    policy = workdir / "policy.yaml"
    policy.write_text(f"""
version: 1
auth:
  oidc:
    providers:
      - {{name: corp, issuer: "{idp.issuer}", client_id: mlgate, client_secret: "${{CORP_SECRET}}",
          audience: "{idp.api_audience}", provision_from_api_tokens: true, link_existing_users: passwordless}}
""")
    try:
        server = start_server(workdir / "server", f"sqlite:///{workdir / 'mlgate.db'}", "--dev", "--policy",
                              str(policy), port=port, env={"CORP_SECRET": SECRET})
    except Exception:
        idp.stop()
        raise
    yield server, idp
    server.stop()
    idp.stop()


def test_a_second_subject_with_the_same_name_never_takes_over_a_linked_account(passwordless_stack):
    server, idp = passwordless_stack
    # An account an administrator made for a person (no password) is linked by the first token naming it ...
    httpx.post(f"{server.url}/api/2.0/mlflow/users/create", json={"username": "frank"}, auth=server.admin_auth,
               timeout=30)
    first = idp.access_token({"sub": "frank-original", "preferred_username": "frank"})
    assert call_as(server, first).json()["user"]["username"] == "frank"
    # ... but once it is someone's, another subject whose name claim says "frank" is refused.
    second = idp.access_token({"sub": "frank-newcomer", "preferred_username": "frank"})
    refused = call_as(server, second)
    assert refused.status_code == 403, refused.text
    assert "already exists and is not linked" in refused.json()["message"]
    assert call_as(server, first).json()["user"]["username"] == "frank"
