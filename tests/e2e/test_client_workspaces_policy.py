"""Workspaces declared in the policy file, end to end: ``mlgate policy apply`` stores two teams' workspaces,
roles and members (a user directly, a group, a workspace administrator); the real MLflow client, in each
workspace, sees only its own; the declared workspace administrator manages roles there and nothing else."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import yaml
from mlflow.exceptions import MlflowException

from tests.cli.conftest import Mlgate
from tests.conftest import LiveServer, start_server
from tests.e2e.conftest import E2E_BACKENDS
from tests.services import fresh_postgres_database

pytestmark = pytest.mark.e2e
PASSWORD = "Unguessable-Pw-5d2f81bb90"


@pytest.fixture(scope="module", params=E2E_BACKENDS)
def ws_server(request, tmp_path_factory) -> Iterator[LiveServer]:
    """A real server with --enable-workspaces, on SQLite, then on PostgreSQL."""
    workdir = tmp_path_factory.mktemp(f"e2e-ws-policy-{request.param}")
    if request.param == "postgresql":
        with fresh_postgres_database() as uri:
            server = start_server(workdir, uri, "--enable-workspaces")
            yield server
            server.stop()
    else:
        server = start_server(workdir, f"sqlite:///{workdir / 'mlgate.db'}", "--enable-workspaces")
        yield server
        server.stop()


@pytest.fixture(autouse=True)
def _no_workspace_left_behind():
    """mlflow.set_workspace is process-wide: later tests in this worker must not inherit a workspace."""
    import mlflow

    yield
    mlflow.set_workspace(None)


def _as(monkeypatch, server: LiveServer, username: str, workspace: str | None, password: str = PASSWORD):
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", username)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    mlflow.set_tracking_uri(server.url)
    mlflow.set_workspace(workspace)


def _code(call) -> str:
    with pytest.raises(MlflowException) as info:
        call()
    return info.value.error_code


def _log(prefix: str) -> dict:
    import mlflow
    from mlflow import MlflowClient

    experiment_id = mlflow.set_experiment(f"{prefix}-exp").experiment_id
    with mlflow.start_run() as run:
        mlflow.log_metric("score", 1.0)
        mlflow.log_text(f"{prefix} secret", "notes.txt")
    MlflowClient().create_registered_model(f"{prefix}-model")
    return {"exp": experiment_id, "run": run.info.run_id, "model": f"{prefix}-model"}


def _sees_only(mine: dict, theirs: dict, prefix: str) -> None:
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    assert [e.name for e in mlflow.search_experiments()] == [f"{prefix}-exp"]
    assert [r.info.run_id for r in client.search_runs([mine["exp"], theirs["exp"]])] == [mine["run"]]
    assert [m.name for m in client.search_registered_models()] == [mine["model"]]
    assert mlflow.artifacts.load_text(f"runs:/{mine['run']}/notes.txt") == f"{prefix} secret"
    for call in (lambda: client.get_experiment(theirs["exp"]), lambda: client.get_run(theirs["run"]),
                 lambda: client.get_registered_model(theirs["model"])):
        assert _code(call) == "RESOURCE_DOES_NOT_EXIST"


def test_teams_declared_in_the_policy_file_see_only_their_workspace(ws_server, monkeypatch, tmp_path):
    import mlflow
    from mlflow.server import get_app_client

    s = uuid.uuid4().hex[:6]
    team_a, team_b = f"pa-{s}", f"pb-{s}"
    alice, bob, carol, wendy = (f"{n}-{s}" for n in ("alice", "bob", "carol", "wendy"))
    cli = Mlgate(tmp_path / "config.json")
    signed_in = cli("login", "--server", ws_server.url, "--username", ws_server.admin_username, "--password-stdin",
                    input=ws_server.admin_password + "\n")
    assert signed_in.returncode == 0, signed_in.stderr
    for user in (alice, bob, carol, wendy):
        cli.json("users", "create", user, "--password-stdin", input=PASSWORD + "\n")
    def edit_all() -> list[dict]:
        return [{"resource_type": t, "resource_pattern": "*", "permission": "EDIT"}
                for t in ("experiment", "registered_model")]

    document = {
        "version": 1,
        "access": {"groups": {f"team-{s}": [alice]}},
        "workspaces": {
            team_a: {"description": "Team A", "roles": {
                "members": {"permissions": edit_all(), "members": [f"group:team-{s}"]},
                "admins": {"permissions": [{"resource_type": "workspace", "resource_pattern": "*",
                                            "permission": "MANAGE"}], "members": [wendy]}}},
            team_b: {"roles": {"members": {"permissions": edit_all(), "members": [bob]}}},
        },
    }
    path = tmp_path / "teams.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    assert cli("policy", "validate", str(path)).returncode == 0
    applied = cli.json("policy", "apply", str(path), "--yes")
    assert applied["applied"] is True
    assert {(c["kind"], c.get("workspace")) for c in applied["changes"]} >= {("workspace", team_a),
                                                                              ("workspace", team_b)}
    assert cli.json("policy", "plan", str(path)) == {"changes": []}
    assert {w["name"] for w in cli.json("workspaces", "list")["workspaces"]} == {"default", team_a, team_b}
    assert sorted(r["name"] for r in cli.json("roles", "list", "--workspace", team_a)["roles"]) == ["admins", "members"]
    assert cli.json("roles", "members", "admins", "--workspace", team_a)["members"] == [wendy]

    # Each team logs in its own workspace and sees only its own; alice is a member through her group.
    _as(monkeypatch, ws_server, alice, team_a)
    a = _log(f"a{s}")
    _as(monkeypatch, ws_server, bob, team_b)
    b = _log(f"b{s}")
    _as(monkeypatch, ws_server, alice, team_a)
    _sees_only(a, b, f"a{s}")
    assert sorted(w.name for w in mlflow.list_workspaces()) == ["default", team_a]
    _as(monkeypatch, ws_server, bob, team_b)
    _sees_only(b, a, f"b{s}")
    _as(monkeypatch, ws_server, bob, team_a)  # a spoofed workspace: bob is no member of team-a
    assert _code(lambda: mlflow.search_experiments()) == "RESOURCE_DOES_NOT_EXIST"

    # The declared workspace administrator manages roles in team-a, and nothing else.
    _as(monkeypatch, ws_server, wendy, team_a)
    wendy_auth = get_app_client("basic-auth", tracking_uri=ws_server.url)
    readers = wendy_auth.create_role(team_a, "readers")
    wendy_auth.add_role_permission(readers.id, "experiment", "*", "READ")
    wendy_auth.assign_role(carol, readers.id)
    assert _code(lambda: mlflow.get_experiment(a["exp"])) == "RESOURCE_DOES_NOT_EXIST"  # roles, not data
    assert _code(lambda: wendy_auth.create_role(team_b, "mine-now")) == "RESOURCE_DOES_NOT_EXIST"
    team_b_role = next(r for r in cli.json("roles", "list", "--workspace", team_b)["roles"])
    assert _code(lambda: wendy_auth.assign_role(wendy, team_b_role["id"])) == "RESOURCE_DOES_NOT_EXIST"
    assert _code(lambda: mlflow.create_workspace(f"x-{s}")) == "PERMISSION_DENIED"
    assert _code(lambda: wendy_auth.create_user(f"y-{s}", PASSWORD)) == "PERMISSION_DENIED"
    _as(monkeypatch, ws_server, carol, team_a)
    assert [e.name for e in mlflow.search_experiments()] == [f"a{s}-exp"]
    _as(monkeypatch, ws_server, carol, team_b)
    assert _code(lambda: mlflow.search_experiments()) == "RESOURCE_DOES_NOT_EXIST"

    # The file declares team-a's roles: the next plan would take back the role wendy made.
    planned = cli("policy", "plan", str(path))
    assert f"- role readers in workspace {team_a}" in planned.stdout
    # The audit log knows each event's workspace.
    in_b = cli.json("audit", "list", "--workspace", team_b, "--limit", "1000")["records"]
    assert in_b
    assert {r["workspace"] for r in in_b} == {team_b}
    assert any(r["actor"] == bob and r["outcome"] == "denied" for r in
               cli.json("audit", "list", "--workspace", team_a, "--limit", "1000")["records"])
