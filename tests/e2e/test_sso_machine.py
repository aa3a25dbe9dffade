"""The real mlflow client authenticates with a client-credentials JWT from a real IdP (MLFLOW_TRACKING_TOKEN)
and works under its service account's grants; forged JWTs are refused and mlgate's own tokens keep working."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import LiveServer, start_server
from tests.idp import IdP, start_idp

pytestmark = [pytest.mark.e2e, pytest.mark.oidc]
BOT_SECRET = "ci-bot-secret-0123456789-abcdef"


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[tuple[LiveServer, IdP]]:
    """One IdP with a client-credentials client, one mlgate accepting its JWTs for the ci-bot service account."""
    workdir = tmp_path_factory.mktemp("sso-machine")
    idp = start_idp(workdir / "idp", users={}, clients=[
        {"client_id": "ci-bot", "client_secret": BOT_SECRET, "grant_types": ["client_credentials"],
         "response_types": [], "redirect_uris": [], "x-groups": ["ml-ci"]},
        {"client_id": "stranger", "client_secret": BOT_SECRET, "grant_types": ["client_credentials"],
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
        audience: {idp.api_audience}
        service_accounts: {{ci-bot: ci-bot}}
access:
  grants:
    - {{principal: "group:ml-ci", resource: "experiment-name:ci/*", permission: EDIT}}
  create:
    experiments:
      - {{principal: "group:ml-ci", name: "ci/*"}}
""")
    try:
        server = start_server(workdir / "server", f"sqlite:///{workdir / 'mlgate.db'}", "--policy", str(policy))
    except Exception:
        idp.stop()
        raise
    httpx.post(f"{server.url}/api/2.0/mlflow/experiments/create", json={"name": "other/exp"},
               auth=server.admin_auth, timeout=30).raise_for_status()
    yield server, idp
    server.stop()
    idp.stop()


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
