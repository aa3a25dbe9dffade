"""The real mlflow client authenticates with a client-credentials JWT from a real IdP (MLFLOW_TRACKING_TOKEN)
and works under its service account's grants; forged JWTs are refused and mlgate's own tokens keep working."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.auth.idp_login import sign_in_at_idp
from tests.conftest import LiveServer, start_server
from tests.idp import IdP, start_idp
from tests.services import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.oidc]
BOT_SECRET = "ci-bot-secret-0123456789-abcdef"


APP_SECRET = "mlgate-app-secret-0123456789-abcdef"
BOT_CALLBACK = "http://127.0.0.1:9/ci-bot/callback"  # never reached: the test reads the code from the redirect
API_APP_CALLBACK = "http://127.0.0.1:9/api-app/callback"
USERS = {
    "alice": {"email": "alice@example.com", "email_verified": True, "groups": ["staff", "team-a"]},
    "mallory": {"email": "mallory@example.com", "email_verified": True, "groups": ["staff"]},
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[tuple[LiveServer, IdP]]:
    """One IdP with a client-credentials client, one mlgate accepting its JWTs for the ci-bot service account.

    The IdP also serves mlgate's browser sign-in (so users get linked), and two clients a person can sign
    in through: ci-bot itself (authorization code) and an app whose client id is the API's audience.
    """
    workdir = tmp_path_factory.mktemp("sso-machine")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    idp = start_idp(workdir / "idp", users=USERS, clients=[
        {"client_id": "ci-bot", "client_secret": BOT_SECRET, "response_types": ["code"],
         "grant_types": ["client_credentials", "authorization_code"], "redirect_uris": [BOT_CALLBACK],
         "x-groups": ["ml-ci"]},
        {"client_id": "stranger", "client_secret": BOT_SECRET, "grant_types": ["client_credentials"],
         "response_types": [], "redirect_uris": []},
        {"client_id": "mlgate", "client_secret": APP_SECRET, "grant_types": ["authorization_code"],
         "response_types": ["code"], "redirect_uris": [f"{base}/sso/corp/callback"]},
        # An app registered under the API's audience as its client id (as Entra ID apps often are): its ID
        # tokens carry that audience.
        {"client_id": "http://mlgate-api", "client_secret": BOT_SECRET, "grant_types": ["authorization_code"],
         "response_types": ["code"], "redirect_uris": [API_APP_CALLBACK]},
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
        service_accounts: {{ci-bot: ci-bot}}
access:
  grants:
    - {{principal: "group:ml-ci", resource: "experiment-name:ci/*", permission: EDIT}}
    - {{principal: "group:team-a", resource: "experiment-name:team-a/*", permission: EDIT}}
  create:
    experiments:
      - {{principal: "group:ml-ci", name: "ci/*"}}
""")
    try:
        server = start_server(workdir / "server", f"sqlite:///{workdir / 'mlgate.db'}", "--dev", "--policy",
                              str(policy), port=port, env={"CORP_SECRET": APP_SECRET})
    except Exception:
        idp.stop()
        raise
    for name in ("other/exp", "team-a/exp", "ci/shared"):
        httpx.post(f"{server.url}/api/2.0/mlflow/experiments/create", json={"name": name},
                   auth=server.admin_auth, timeout=30).raise_for_status()
    yield server, idp
    server.stop()
    idp.stop()


def sign_in_to_mlgate(server: LiveServer, login: str) -> None:
    """``login`` signs in to mlgate through the provider once (over HTTP), which links the account."""
    with httpx.Client(base_url=server.url, timeout=30) as browser:
        start = browser.get("/sso/corp/login")
        assert start.status_code == 303
        with httpx.Client(timeout=30) as at_idp:
            callback = sign_in_at_idp(at_idp, start.headers["location"], login, f"{server.url}/sso/corp/callback")
        assert browser.get(callback).status_code == 303, login


def call_as(server: LiveServer, token: str, path: str = "users/current", **body) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    if body:
        return httpx.post(f"{server.url}/api/2.0/mlflow/{path}", json=body, headers=headers, timeout=30)
    return httpx.get(f"{server.url}/api/2.0/mlflow/{path}", headers=headers, timeout=30)


def api_token(idp: IdP, login: str, client_id: str = "ci-bot", redirect_uri: str = BOT_CALLBACK) -> str:
    """A person's JWT access token for the API, obtained through ``client_id``'s authorization-code flow."""
    return idp.user_tokens(client_id, login, redirect_uri, resource=idp.api_audience,
                           scope="openid api:read api:write")["access_token"]


def cli_token(server: LiveServer, idp: IdP, login: str) -> str:
    """A person's JWT access token for the API through mlgate's own client (as a CLI helper would get it)."""
    return api_token(idp, login, "mlgate", f"{server.url}/sso/corp/callback")


def visible(server: LiveServer, token: str) -> list[str]:
    found = call_as(server, token, "experiments/search", max_results=100)
    assert found.status_code == 200, found.text
    return sorted(e["name"] for e in found.json().get("experiments", []))


def audit_reasons(server: LiveServer) -> str:
    events = httpx.get(f"{server.url}/api/2.0/mlgate/audit/list", params={"action": "token.use", "limit": 500},
                       auth=server.admin_auth, timeout=30)
    events.raise_for_status()
    return events.text


@pytest.fixture
def as_bot(stack, monkeypatch):
    """The mlflow client configured only with MLFLOW_TRACKING_TOKEN = the bot's JWT."""
    import mlflow

    server, idp = stack
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", idp.client_credentials_token("ci-bot"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    mlflow.set_tracking_uri(server.url)
    yield mlflow
    if mlflow.active_run() is not None:
        mlflow.end_run()


def test_the_mlflow_client_runs_a_workflow_as_the_service_account(as_bot, tmp_path):
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    mlflow = as_bot
    name = f"ci/train-{uuid.uuid4().hex[:8]}"
    experiment = mlflow.set_experiment(name)
    with mlflow.start_run() as run:
        mlflow.log_param("lr", "0.1")
        for step in range(3):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_text("weights", "model/weights.txt")
    client = MlflowClient()
    found = client.search_runs([experiment.experiment_id])
    assert [r.info.run_id for r in found] == [run.info.run_id]
    assert [m.value for m in client.get_metric_history(run.info.run_id, "loss")] == [1.0, 0.5, 1.0 / 3]
    assert [a.path for a in client.list_artifacts(run.info.run_id, "model")] == ["model/weights.txt"]
    local = client.download_artifacts(run.info.run_id, "model/weights.txt", str(tmp_path))
    assert open(local).read() == "weights"
    # Outside its grants the bot sees nothing and may create nothing.
    assert client.get_experiment_by_name("other/exp") is None
    with pytest.raises(MlflowException) as denied:
        client.create_experiment(f"other/{uuid.uuid4().hex[:8]}")
    assert denied.value.error_code == "PERMISSION_DENIED"


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_forged_and_unmapped_jwts_are_refused_and_personal_tokens_still_work(stack):
    server, idp = stack
    url = f"{server.url}/api/2.0/mlflow/experiments/search"
    real = idp.client_credentials_token("ci-bot")
    header, payload, _ = real.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged = {
        "alg none": f"{_b64({'alg': 'none'})}.{_b64({**claims, 'client_id': 'ci-bot'})}.",
        "tampered claims": f"{header}.{_b64({**claims, 'groups': ['admins']})}.{real.split('.')[2]}",
        "unmapped client": idp.client_credentials_token("stranger"),
    }
    for label, token in forged.items():
        response = httpx.post(url, json={"max_results": 1}, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert response.status_code == 401, label
        assert response.json()["error_code"] == "UNAUTHENTICATED", label
    assert httpx.post(url, json={"max_results": 1}, headers={"Authorization": f"Bearer {real}"},
                      timeout=30).status_code == 200
    minted = httpx.post(f"{server.url}/api/2.0/mlflow/users/tokens/create", auth=server.admin_auth,
                        json={"name": "pat", "expires_in_days": 1}, timeout=30).json()["token"]
    assert httpx.post(url, json={"max_results": 1}, headers={"Authorization": f"Bearer {minted}"},
                      timeout=30).status_code == 200


def test_a_persons_token_from_the_bots_client_is_the_person_not_the_service_account(stack):
    # RFC 9068 access tokens carry client_id whoever holds them: mallory signing in through ci-bot's
    # authorization-code flow gets client_id=ci-bot, sub=mallory. She must not become ci-bot.
    server, idp = stack
    token = api_token(idp, "mallory")
    refused = call_as(server, token)
    assert refused.status_code == 401
    assert "not mapped to a service account or user" in refused.json()["message"]
    sign_in_to_mlgate(server, "mallory")
    me = call_as(server, token)
    assert me.status_code == 200
    assert me.json()["user"]["username"] == "mallory"
    assert visible(server, token) == []  # ci-bot's ci/* grant is not hers
    # The bot's own client-credentials token (sub == client_id) is still the service account.
    assert call_as(server, idp.client_credentials_token("ci-bot")).json()["user"]["username"] == "ci-bot"


def test_a_linked_users_jwt_carries_the_providers_current_groups_and_is_refused_outside_allowed_groups(stack):
    server, idp = stack
    sign_in_to_mlgate(server, "alice")
    assert visible(server, cli_token(server, idp, "alice")) == ["team-a/exp"]
    try:
        # Removed from team-a at the provider: her next JWT no longer grants team-a, without a browser login.
        idp.change_account("alice", groups=["staff"])
        assert visible(server, cli_token(server, idp, "alice")) == []
        # Out of the allowed groups altogether: refused, and the refusal audited with its reason.
        idp.change_account("alice", groups=["outsiders"])
        refused = call_as(server, cli_token(server, idp, "alice"))
        assert refused.status_code == 403
        assert "not in a group that may use mlgate" in refused.json()["message"]
        assert "not in a group that may use mlgate" in audit_reasons(server)
    finally:
        idp.change_account("alice", groups=["staff", "team-a"])


def test_an_id_token_is_not_accepted_as_an_api_access_token(stack):
    # An app whose client id is the API audience gets ID tokens with that audience; alice is linked, so
    # only the ID-token check stands between her ID token (seen by browsers) and the API.
    server, idp = stack
    sign_in_to_mlgate(server, "alice")
    id_token = idp.user_tokens("http://mlgate-api", "alice", API_APP_CALLBACK)["id_token"]
    refused = call_as(server, id_token)
    assert refused.status_code == 401
    assert "An ID token is not an access token" in refused.json()["message"]
