"""Kubernetes service-account tokens end to end: a real issuer (the test IdP, serving its discovery document and
JWKS over HTTP) mints projected tokens shaped as a cluster's, and the real MLflow client's ``kubernetes`` and
``kubernetes-namespaced`` providers send them, read from token and namespace files as in a pod.

The mapped service accounts are not administrators: they work only through their grants (and, in a workspace,
their role). Every refusal (audience, expiry, signature, unpublished key, unmapped namespace, a workspace the
mapping does not allow, an unreachable issuer) is checked over HTTP with its status and audited reason.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cli.conftest import Mlgate
from tests.conftest import LiveServer, start_server
from tests.idp import IdP, start_idp
from tests.services import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.oidc]
AUDIENCE = "mlgate"
TRAINER = "team-a-trainer"
TEAM_B = "team-b-jobs"

# Run in a fresh interpreter per call: the provider caches the files it read for a minute, per process.
# Its pod paths are module constants (mlflow/tracking/request_auth/kubernetes_request_auth_provider.py),
# pointed here at test files; KUBECONFIG names no file, so nothing falls back to a kubeconfig.
CLIENT = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from mlflow.tracking.request_auth import kubernetes_request_auth_provider as k8s

    k8s._SERVICE_ACCOUNT_TOKEN_PATH = Path(os.environ["TEST_SA_TOKEN"])
    k8s._SERVICE_ACCOUNT_NAMESPACE_PATH = Path(os.environ["TEST_SA_NAMESPACE"])
    args = json.loads(sys.argv[1])
    out = {}

    def code(call):
        try:
            call()
        except MlflowException as exc:
            return exc.error_code
        return "OK"

    client = MlflowClient()
    experiment_id = mlflow.set_experiment(args["experiment"]).experiment_id
    with mlflow.start_run() as run:
        mlflow.log_param("lr", "0.1")
        mlflow.log_metric("loss", 0.5)
    out["experiment_id"] = experiment_id
    out["runs"] = [r.info.run_id for r in client.search_runs([experiment_id])] == [run.info.run_id]
    out["visible"] = sorted(e.name for e in mlflow.search_experiments())
    out["other_by_name"] = client.get_experiment_by_name(args["other_name"]) is not None
    out["other_get"] = code(lambda: client.get_experiment(args["other_id"]))
    out["other_log"] = code(lambda: client.log_metric(args["other_run"], "m", 1.0))
    out["other_create"] = code(lambda: client.create_experiment(args["forbidden_name"]))
    print("RESULT " + json.dumps(out))
""")


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[tuple[LiveServer, IdP, dict]]:
    """The cluster's issuer (keys found through its discovery document) and an mlgate with workspaces on."""
    workdir = tmp_path_factory.mktemp("kubernetes")
    idp = start_idp(workdir / "idp", users={}, clients=[])
    policy = workdir / "policy.yaml"
    policy.write_text(f"""
version: 1
auth:
  kubernetes:
    issuer: {idp.issuer}
    audience: {AUDIENCE}
    mappings:
      - {{namespace: team-a, name: trainer, account: "{TRAINER}", workspaces: [default, "{{namespace}}"]}}
      - {{namespace: "team-b*", account: "{TEAM_B}"}}
access:
  grants:
    - {{principal: "service:{TRAINER}", resource: "experiment-name:team-a/*", permission: EDIT}}
    - {{principal: "service:{TEAM_B}", resource: "experiment-name:team-b/*", permission: EDIT}}
  create:
    experiments:
      - {{principal: "service:{TRAINER}", name: "team-a/*"}}
""")
    try:
        server = start_server(workdir / "server", f"sqlite:///{workdir / 'mlgate.db'}", "--dev", "--enable-workspaces",
                              "--policy", str(policy))
    except Exception:
        idp.stop()
        raise
    try:
        admin = httpx.Client(base_url=server.url, auth=server.admin_auth, timeout=30)
        other = admin.post("/api/2.0/mlflow/experiments/create", json={"name": "team-b/secret"}).json()
        run = admin.post("/api/2.0/mlflow/runs/create", json={"experiment_id": other["experiment_id"]}).json()
        for workspace in ("team-a", "team-b"):
            admin.post("/api/3.0/mlflow/workspaces", json={"name": workspace}).raise_for_status()
        yield server, idp, {"other_id": other["experiment_id"], "other_run": run["run"]["info"]["run_id"],
                            "admin": admin}
        admin.close()
    finally:
        server.stop()
        idp.stop()


def pod_files(tmp_path: Path, token: str, namespace: str) -> dict[str, str]:
    """The two files the kubelet projects into a pod."""
    (tmp_path / "token").write_text(token)
    (tmp_path / "namespace").write_text(namespace)
    return {"TEST_SA_TOKEN": str(tmp_path / "token"), "TEST_SA_NAMESPACE": str(tmp_path / "namespace")}


def run_client(server: LiveServer, auth: str, files: dict[str, str], **args) -> dict:
    """The real mlflow client with ``MLFLOW_TRACKING_AUTH=auth`` and no other credential."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLGATE_"))}
    env.update(files, MLFLOW_TRACKING_URI=server.url, MLFLOW_TRACKING_AUTH=auth,
               KUBECONFIG=str(Path(files["TEST_SA_TOKEN"]).parent / "no-kubeconfig"))
    done = subprocess.run([sys.executable, "-c", CLIENT, json.dumps(args)], capture_output=True, text=True,
                          env=env, timeout=120, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0, done.stdout + done.stderr
    assert lines, done.stdout + done.stderr
    return json.loads(lines[-1].removeprefix("RESULT "))


def call(server: LiveServer, token: str, path: str = "experiments/search", workspace: str | None = None,
         **body) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", **({"X-MLFLOW-WORKSPACE": workspace} if workspace else {})}
    return httpx.post(f"{server.url}/api/2.0/mlflow/{path}", json=body or {"max_results": 10}, headers=headers,
                      timeout=30)


def audit(server: LiveServer, action: str, outcome: str) -> str:
    found = httpx.get(f"{server.url}/api/2.0/mlgate/audit/list",
                      params={"action": action, "outcome": outcome, "limit": 500},
                      auth=server.admin_auth, timeout=30)
    found.raise_for_status()
    return found.text


def audit_records(server: LiveServer, action: str, outcome: str) -> list[dict]:
    found = httpx.get(f"{server.url}/api/2.0/mlgate/audit/list",
                      params={"action": action, "outcome": outcome, "limit": 500},
                      auth=server.admin_auth, timeout=30)
    found.raise_for_status()
    return found.json()["records"]


def test_the_mlflow_client_in_a_pod_works_as_its_service_account_and_only_through_its_grants(stack, tmp_path):
    server, idp, made = stack
    files = pod_files(tmp_path, idp.kubernetes_token("team-a", "trainer"), "team-a")
    name = f"team-a/train-{uuid.uuid4().hex[:6]}"
    out = run_client(server, "kubernetes", files, experiment=name, other_name="team-b/secret",
                     other_id=made["other_id"], other_run=made["other_run"], forbidden_name="team-b/mine")
    assert out["runs"] is True
    assert out["visible"] == [name]  # its own experiment only: not team-b's, not default's
    assert out["other_by_name"] is False
    # Another team's experiment and run answer as missing (no grant: hidden == missing), its names cannot be taken.
    assert out["other_get"] == "RESOURCE_DOES_NOT_EXIST"
    assert out["other_log"] == "RESOURCE_DOES_NOT_EXIST"
    assert out["other_create"] == "PERMISSION_DENIED"
    # The account was made by the first token, as a non-admin service account managed by the cluster mapping.
    users = made["admin"].get("/api/2.0/mlgate/users/list", params={"kind": "service"}).json()["users"]
    account = next(u for u in users if u["username"] == TRAINER)
    assert (account["kind"], account["is_admin"], account["source"]) == ("service", False, "kubernetes")
    # What an operator sees: mlgate users list (offline, on the server's database) names the source.
    cli = Mlgate(tmp_path / "cli.toml")
    listed = cli("users", "list", "--kind", "all", "--db", server.backend_store_uri)
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith(TRAINER))
    assert row.split()[1] == "service"
    assert row.split()[-1] == "kubernetes"


def test_the_namespaced_client_works_in_its_namespace_workspace_where_the_mapping_allows_it(stack, tmp_path):
    server, idp, made = stack
    token = idp.kubernetes_token("team-a", "trainer")
    assert call(server, token).status_code == 200  # provisions the account, so the role can name it
    admin = made["admin"]
    role = admin.post("/api/3.0/mlflow/roles/create", json={"workspace": "team-a", "name": "jobs"})
    role.raise_for_status()
    role_id = role.json()["role"]["id"]
    admin.post("/api/3.0/mlflow/roles/permissions/add", json={
        "role_id": role_id, "resource_type": "experiment", "resource_pattern": "*", "permission": "EDIT"},
    ).raise_for_status()
    admin.post("/api/3.0/mlflow/roles/assign", json={"role_id": role_id, "username": TRAINER}).raise_for_status()
    files = pod_files(tmp_path, token, "team-a")
    name = f"team-a/nightly-{uuid.uuid4().hex[:6]}"  # access.create.experiments holds in every workspace
    out = run_client(server, "kubernetes-namespaced", files, experiment=name, other_name="team-b/secret",
                     other_id=made["other_id"], other_run=made["other_run"], forbidden_name="x")
    assert out["runs"] is True
    assert out["visible"] == [name]  # in workspace team-a: only what is there
    assert out["other_get"] == "RESOURCE_DOES_NOT_EXIST"  # default's experiment is missing from team-a
    assert out["other_log"] == "RESOURCE_DOES_NOT_EXIST"
    listed = call(server, token, workspace="team-a").json()["experiments"]
    assert [e["name"] for e in listed] == [name]


def test_a_namespace_workspace_the_mapping_does_not_allow_is_refused_even_for_a_member(stack, tmp_path):
    server, idp, made = stack
    token = idp.kubernetes_token("team-b", "etl")
    assert call(server, token).status_code == 200
    admin = made["admin"]
    role = admin.post("/api/3.0/mlflow/roles/create", json={"workspace": "team-b", "name": "jobs"})
    role.raise_for_status()
    admin.post("/api/3.0/mlflow/roles/assign", json={"role_id": role.json()["role"]["id"], "username": TEAM_B}
               ).raise_for_status()
    refused = call(server, token, workspace="team-b")
    assert refused.status_code == 403, refused.text
    assert refused.json()["error_code"] == "PERMISSION_DENIED"
    assert "limited to workspace(s) default" in audit(server, "authorize", "denied")
    # And with the real namespaced client: the same refusal, from the header it derives from the namespace.
    files = pod_files(tmp_path, token, "team-b")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLGATE_"))}
    env.update(files, MLFLOW_TRACKING_URI=server.url, MLFLOW_TRACKING_AUTH="kubernetes-namespaced",
               KUBECONFIG=str(tmp_path / "no-kubeconfig"))
    done = subprocess.run([sys.executable, "-c", CLIENT, json.dumps({"experiment": "team-b/x"})], capture_output=True,
                          text=True, env=env, timeout=120, check=False)
    assert done.returncode != 0
    assert "PERMISSION_DENIED" in done.stderr


def _tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "system:serviceaccount:team-a:trainer"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def test_every_bad_token_is_refused_with_its_reason_audited(stack):
    server, idp, _ = stack
    cases = {
        "another audience": (idp.kubernetes_token("team-a", "trainer", audience="https://kubernetes.default.svc"),
                             401, "meant for another audience"),
        "expired": (idp.kubernetes_token("team-a", "trainer", ttl_seconds=-120), 401, "has expired"),
        "bad signature": (_tampered(idp.kubernetes_token("team-b", "etl")), 401, "signature is invalid"),
        "unpublished key": (idp.kubernetes_token("team-a", "trainer", unpublished_key=True), 401, "unknown key"),
        "unmapped namespace": (idp.kubernetes_token("team-c", "trainer"), 403, "team-c/trainer is not mapped"),
        "unmapped name": (idp.kubernetes_token("team-a", "intruder"), 403, "team-a/intruder is not mapped"),
    }
    for label, (token, status, reason) in cases.items():
        refused = call(server, token)
        assert refused.status_code == status, (label, refused.text)
        assert reason in refused.json()["message"], label
        reasons = [r["reason"] for r in audit_records(server, "token.use", "failure")]
        assert any(r.startswith("kubernetes: ") and reason in r for r in reasons), (label, reasons[-3:])


def test_a_disabled_service_account_is_refused_at_once(stack):
    server, idp, made = stack
    token = idp.kubernetes_token("team-b", "reporter")
    assert call(server, token).status_code == 200
    disable = "/api/2.0/mlflow/users/update-disabled"
    made["admin"].patch(disable, json={"username": TEAM_B, "disabled": True}).raise_for_status()
    try:
        refused = call(server, token)
        assert refused.status_code == 401
        assert "disabled" in refused.json()["message"]
    finally:
        made["admin"].patch(disable, json={"username": TEAM_B, "disabled": False}).raise_for_status()


def test_an_unreachable_issuer_answers_503_and_never_allows(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"""
version: 1
auth:
  kubernetes:
    issuer: {dead}
    audience: {AUDIENCE}
    mappings: [{{namespace: team-a, account: "{TRAINER}"}}]
""")
    server = start_server(tmp_path / "server", f"sqlite:///{tmp_path / 'mlgate.db'}", "--dev", "--policy", str(policy))
    try:
        claims = {"iss": dead, "aud": [AUDIENCE], "sub": "system:serviceaccount:team-a:trainer", "exp": 4_000_000_000}
        part = lambda data: base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()  # noqa: E731
        token = f"{part({'alg': 'RS256', 'kid': 'k1'})}.{part(claims)}.{part({'sig': 'x'})}"
        for _ in range(2):  # the second is refused without asking the issuer again (backoff), still 503
            refused = call(server, token)
            assert refused.status_code == 503, refused.text
            assert refused.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
            assert "could not be reached" in refused.json()["message"]
        assert "kubernetes: The cluster's service-account issuer could not be reached" in \
            audit(server, "token.use", "failure")
    finally:
        server.stop()
