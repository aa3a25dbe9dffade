"""Workspaces end to end with the real client: two teams, members through roles made with AuthServiceClient,
each logging in its workspace with ``mlflow.set_workspace``; neither sees the other's anything."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from mlflow.exceptions import MlflowException

from tests.conftest import LiveServer, start_server
from tests.e2e.conftest import E2E_BACKENDS
from tests.services import fresh_postgres_database

pytestmark = pytest.mark.e2e
PASSWORD = "Unguessable-Pw-9c1e77aa31"


@pytest.fixture(scope="module", params=E2E_BACKENDS)
def ws_server(request, tmp_path_factory) -> Iterator[LiveServer]:
    """A real server with --enable-workspaces, on SQLite, then on PostgreSQL."""
    workdir = tmp_path_factory.mktemp(f"e2e-workspaces-{request.param}")
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


def _as(monkeypatch, server: LiveServer, username: str, password: str, workspace: str | None):
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


def _log_team(prefix: str) -> dict:
    """As the current user and workspace: an experiment, a run with an artifact, a model version, a prompt
    and a trace."""
    import mlflow
    from mlflow import MlflowClient

    experiment_id = mlflow.set_experiment(f"{prefix}-exp").experiment_id
    with mlflow.start_run() as run:
        mlflow.log_param("team", prefix)
        mlflow.log_metric("score", 1.0)
        mlflow.log_text(f"{prefix} secret", "notes.txt")
    client = MlflowClient()
    client.create_registered_model(f"{prefix}-model")
    client.create_model_version(f"{prefix}-model", f"runs:/{run.info.run_id}/notes.txt", run_id=run.info.run_id)
    mlflow.genai.register_prompt(f"{prefix}-prompt", template="Hello {{name}}")

    @mlflow.trace(name=f"{prefix}-traced")
    def traced(x):
        return x + 1

    assert traced(1) == 2
    mlflow.flush_trace_async_logging(terminate=False)
    trace_id = mlflow.get_last_active_trace_id()
    assert trace_id
    return {"exp": experiment_id, "run": run.info.run_id, "trace": trace_id, "model": f"{prefix}-model",
            "prompt": f"{prefix}-prompt"}


def _sees_only(mine: dict, theirs: dict, prefix: str) -> None:
    """The current user, in the current workspace, sees ``mine`` and nothing of ``theirs``."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    assert [e.name for e in mlflow.search_experiments()] == [f"{prefix}-exp"]
    assert [r.info.run_id for r in client.search_runs([mine["exp"], theirs["exp"]])] == [mine["run"]]
    assert [m.name for m in client.search_registered_models()] == [mine["model"]]
    assert [p.name for p in mlflow.genai.search_prompts()] == [mine["prompt"]]
    found = mlflow.search_traces(locations=[mine["exp"], theirs["exp"]], return_type="list")
    assert [t.info.trace_id for t in found] == [mine["trace"]]
    assert mlflow.get_run(mine["run"]).data.params == {"team": prefix}
    assert mlflow.artifacts.load_text(f"runs:/{mine['run']}/notes.txt") == f"{prefix} secret"
    # Every way to the other team's objects answers as for ids that do not exist.
    for call in (lambda: client.get_experiment(theirs["exp"]),
                 lambda: client.get_run(theirs["run"]),
                 lambda: client.log_metric(theirs["run"], "m", 1.0),
                 lambda: client.get_registered_model(theirs["model"]),
                 lambda: client.get_model_version(theirs["model"], "1"),
                 lambda: mlflow.genai.load_prompt(f"prompts:/{theirs['prompt']}/1"),
                 lambda: client.get_trace(theirs["trace"])):
        assert _code(call) == "RESOURCE_DOES_NOT_EXIST"
    assert mlflow.get_experiment_by_name(theirs["model"].replace("-model", "-exp")) is None
    with pytest.raises(Exception):
        mlflow.artifacts.load_text(f"runs:/{theirs['run']}/notes.txt")


def test_two_teams_in_their_workspaces_see_only_their_own(ws_server, monkeypatch):
    import mlflow
    from mlflow.server import get_app_client

    suffix = uuid.uuid4().hex[:6]
    team_a, team_b = f"team-a-{suffix}", f"team-b-{suffix}"
    alice, bob, carol = f"alice-{suffix}", f"bob-{suffix}", f"carol-{suffix}"
    _as(monkeypatch, ws_server, ws_server.admin_username, ws_server.admin_password, None)
    assert mlflow.create_workspace(team_a, description="Team A").name == team_a
    mlflow.create_workspace(team_b)
    auth = get_app_client("basic-auth", tracking_uri=ws_server.url)
    for user in (alice, bob, carol):
        auth.create_user(user, PASSWORD)
    for workspace, members in ((team_a, (alice, carol)), (team_b, (bob, carol))):
        role = auth.create_role(workspace, "members")
        for resource_type in ("experiment", "registered_model"):
            auth.add_role_permission(role.id, resource_type, "*", "EDIT")
        for user in members:
            auth.assign_role(user, role.id)
    assert {r.workspace for r in auth.list_user_roles(carol)} == {team_a, team_b}

    _as(monkeypatch, ws_server, alice, PASSWORD, team_a)
    a = _log_team(f"a{suffix}")
    _as(monkeypatch, ws_server, bob, PASSWORD, team_b)
    b = _log_team(f"b{suffix}")

    _as(monkeypatch, ws_server, alice, PASSWORD, team_a)
    _sees_only(a, b, f"a{suffix}")
    assert sorted(w.name for w in mlflow.list_workspaces()) == ["default", team_a]
    _as(monkeypatch, ws_server, bob, PASSWORD, team_b)
    _sees_only(b, a, f"b{suffix}")
    # A spoofed workspace: bob is not a member of team-a, which then does not exist for him.
    _as(monkeypatch, ws_server, bob, PASSWORD, team_a)
    assert _code(lambda: mlflow.search_experiments()) == "RESOURCE_DOES_NOT_EXIST"
    assert _code(lambda: mlflow.get_workspace(team_a)) == "RESOURCE_DOES_NOT_EXIST"
    # carol, in both, switches.
    _as(monkeypatch, ws_server, carol, PASSWORD, team_a)
    _sees_only(a, b, f"a{suffix}")
    _as(monkeypatch, ws_server, carol, PASSWORD, team_b)
    _sees_only(b, a, f"b{suffix}")
    # A client that never names a workspace keeps working, in 'default', which holds neither team's objects.
    _as(monkeypatch, ws_server, ws_server.admin_username, ws_server.admin_password, None)
    names = [e.name for e in mlflow.search_experiments()]
    assert f"a{suffix}-exp" not in names
    assert f"b{suffix}-exp" not in names
    with mlflow.start_run(experiment_id="0") as run:
        mlflow.log_metric("m", 2.0)
    assert mlflow.get_run(run.info.run_id).data.metrics == {"m": 2.0}


def test_a_workspace_administrator_manages_roles_only_there(ws_server, monkeypatch):
    import mlflow
    from mlflow.server import get_app_client

    suffix = uuid.uuid4().hex[:6]
    mine, other, lead, newcomer = f"mine-{suffix}", f"other-{suffix}", f"lead-{suffix}", f"new-{suffix}"
    _as(monkeypatch, ws_server, ws_server.admin_username, ws_server.admin_password, None)
    mlflow.create_workspace(mine)
    mlflow.create_workspace(other)
    auth = get_app_client("basic-auth", tracking_uri=ws_server.url)
    auth.create_user(lead, PASSWORD)
    auth.create_user(newcomer, PASSWORD)
    admins = auth.create_role(mine, "admins")
    auth.add_role_permission(admins.id, "workspace", "*", "MANAGE")
    auth.assign_role(lead, admins.id)
    other_role = auth.create_role(other, "members")

    _as(monkeypatch, ws_server, lead, PASSWORD, mine)
    lead_auth = get_app_client("basic-auth", tracking_uri=ws_server.url)
    readers = lead_auth.create_role(mine, "readers")
    permission = lead_auth.add_role_permission(readers.id, "experiment", "*", "READ")
    lead_auth.assign_role(newcomer, readers.id)
    assert [r.name for r in lead_auth.list_roles(mine)] == ["admins", "readers"]
    assert lead_auth.update_role_permission(permission.id, "EDIT").permission == "EDIT"
    assert [a.role_id for a in lead_auth.list_role_users(readers.id)] == [readers.id]
    # The other workspace and server-wide settings are out of reach.
    for call in (lambda: lead_auth.assign_role(lead, other_role.id),
                 lambda: lead_auth.create_role(other, "mine-now"),
                 lambda: lead_auth.delete_role(other_role.id)):
        assert _code(call) == "RESOURCE_DOES_NOT_EXIST"
    assert _code(lambda: mlflow.create_workspace(f"x-{suffix}")) == "PERMISSION_DENIED"
    assert _code(lambda: lead_auth.create_user(f"y-{suffix}", PASSWORD)) == "PERMISSION_DENIED"
    lead_auth.unassign_role(newcomer, readers.id)
    lead_auth.delete_role(readers.id)
    assert [r.name for r in lead_auth.list_roles(mine)] == ["admins"]
