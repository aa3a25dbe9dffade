"""The MLflow 3.18 client against mlgate's workspaces: one workload, run by the real 3.18 client in its own
virtualenv (the main environment stays on the pinned 3.17.2), built on first use under test-output/.

alice holds a role in team-a and in team-b, carol in team-a only (made by the administrator through the roles
API). With ``mlflow.set_workspace`` alice logs a run with a metric and an artifact in each workspace, and each
workspace's searches, names and artifacts show only its own; carol's client cannot enter team-b and finds
nothing of it by id. ``list_workspaces`` shows each only their own.

One small test: the 3.18 client's paths that differ from 3.17's are ``server-info``'s new fields and the
workspace calls; the whole real-client suite stays on the pinned client. Building the virtualenv takes about
40 s once (``mlflow-skinny`` only); outside CI the test runs only when asked (``MLGATE_TEST_MLFLOW_318=1``).
Not named ``test_client_*``: CI's extra real-client passes (token, S3, JWT) would run it again unchanged.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest

from tests.conftest import start_server
from tests.services import IN_CI, unavailable

pytestmark = pytest.mark.e2e
VERSION = "3.18.0"
VENV = Path(__file__).resolve().parents[2] / "test-output" / f".venv-mlflow-{VERSION}"
PASSWORD = "Unguessable-Pw-318c0d"
A, A3 = "/api/2.0/mlflow", "/api/3.0/mlflow"

WORKLOAD = r'''
import json, os, sys, tempfile
import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

assert mlflow.__version__ == sys.argv[1], mlflow.__version__
out = {"workspaces": [w.name for w in mlflow.list_workspaces()]}
client = MlflowClient()
for ws in sys.argv[2].split(","):
    mlflow.set_workspace(ws)
    mlflow.set_experiment("shared-name")  # the same name in each workspace: two experiments
    with mlflow.start_run(run_name=f"{ws}-run") as run:
        mlflow.log_metric("loss", 0.5)
        path = os.path.join(tempfile.mkdtemp(), "note.txt")
        open(path, "w").write(ws)
        mlflow.log_artifact(path)
    exp = mlflow.get_experiment_by_name("shared-name")
    text = open(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="note.txt")).read()
    out[ws] = {"experiment": exp.experiment_id, "run": run.info.run_id, "note": text,
               "experiments": sorted(e.name for e in client.search_experiments()),
               "runs": [r.info.run_name for r in client.search_runs([exp.experiment_id])]}
for probe in sys.argv[3].split(",") if sys.argv[3] else []:
    ws, run_id = probe.split(":")
    try:
        mlflow.set_workspace(ws)
        client.get_run(run_id)
        out.setdefault("probes", {})[probe] = "FOUND"
    except MlflowException as exc:
        out.setdefault("probes", {})[probe] = exc.error_code
print(json.dumps(out))
'''


def _python() -> Path:
    """The 3.18 client's interpreter, building its virtualenv on first use (one builder at a time)."""
    if not IN_CI and os.environ.get("MLGATE_TEST_MLFLOW_318") != "1":
        pytest.skip(f"the MLflow {VERSION} client check builds a virtualenv (about 40 s) "
                    "(to run: MLGATE_TEST_MLFLOW_318=1 python3 -m pytest tests/e2e/test_mlflow_318_workspaces.py)")
    python = VENV / "bin" / "python"
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(Path(tempfile.gettempdir()) / "mlgate-mlflow-318-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        probe = subprocess.run([str(python), "-c", "import mlflow; print(mlflow.__version__)"],
                               capture_output=True, text=True, check=False) if python.exists() else None
        if probe is None or probe.stdout.strip() != VERSION:
            made = subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], capture_output=True,
                                  text=True, check=False)
            installed = made.returncode == 0 and subprocess.run(
                [str(VENV / "bin" / "pip"), "install", "-q", f"mlflow-skinny=={VERSION}"], capture_output=True,
                text=True, timeout=600, check=False)
            if not installed or installed.returncode != 0:
                why = (installed.stderr if installed else made.stderr).strip()[-600:]
                unavailable(f"could not install mlflow-skinny=={VERSION} into {VENV}: {why}")
    return python


def _run(python: Path, url: str, user: str, workspaces: str, probes: str = "") -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(MLFLOW_TRACKING_URI=url, MLFLOW_TRACKING_USERNAME=user, MLFLOW_TRACKING_PASSWORD=PASSWORD)
    done = subprocess.run([str(python), "-c", WORKLOAD, VERSION, workspaces, probes], env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_318_client_works_in_workspaces_and_sees_only_its_own(tmp_path):
    python = _python()
    server = start_server(tmp_path, f"sqlite:///{tmp_path / 'mlgate.db'}", "--enable-workspaces")
    try:
        def admin(method: str, path: str, **kwargs) -> dict:
            answer = httpx.request(method, f"{server.url}{path}", auth=server.admin_auth, timeout=30, **kwargs)
            assert answer.status_code in (200, 201), answer.text
            return answer.json()

        info = admin("GET", f"{A3}/server-info")
        assert info["workspaces_enabled"] is True
        assert {"tracking_auth", "artifacts_presigned_only"} <= info.keys()
        for user in ("alice", "carol"):
            admin("POST", f"{A}/users/create", json={"username": user, "password": PASSWORD})
        for ws, members in (("team-a", ("alice", "carol")), ("team-b", ("alice",))):
            admin("POST", f"{A3}/workspaces", json={"name": ws})
            role = admin("POST", f"{A3}/roles/create", json={"workspace": ws, "name": "members"})["role"]["id"]
            admin("POST", f"{A3}/roles/permissions/add", json={"role_id": role, "resource_type": "experiment",
                                                              "resource_pattern": "*", "permission": "EDIT"})
            for user in members:
                admin("POST", f"{A3}/roles/assign", json={"role_id": role, "username": user})

        alice = _run(python, server.url, "alice", "team-a,team-b")
        assert alice["workspaces"] == ["default", "team-a", "team-b"]
        a, b = alice["team-a"], alice["team-b"]
        assert a["experiment"] != b["experiment"]
        assert (a["note"], b["note"]) == ("team-a", "team-b")
        assert a["experiments"] == b["experiments"] == ["shared-name"]
        assert (a["runs"], b["runs"]) == (["team-a-run"], ["team-b-run"])

        carol = _run(python, server.url, "carol", "team-a",
                     probes=f"team-b:{b['run']},team-a:{b['run']},team-a:{a['run']}")
        assert carol["workspaces"] == ["default", "team-a"]
        # team-a's 'shared-name' is alice's experiment; carol's run joins alice's there (the role's EDIT on '*').
        assert carol["team-a"]["experiment"] == a["experiment"]
        assert carol["team-a"]["runs"] == ["team-a-run", "team-a-run"]
        assert carol["probes"] == {f"team-b:{b['run']}": "RESOURCE_DOES_NOT_EXIST",
                                   f"team-a:{b['run']}": "RESOURCE_DOES_NOT_EXIST",
                                   f"team-a:{a['run']}": "FOUND"}
    finally:
        server.stop()
