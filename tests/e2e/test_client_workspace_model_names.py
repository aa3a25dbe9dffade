"""Registered model and prompt names are per workspace, end to end with the real client: two teams, each in
its workspace as ordinary members, create a model ``churn`` with a version and an alias, a prompt ``greeting``,
and one name the other team uses for the other kind. Neither name stands in the other team's way, nothing of
one team is found (or told to exist) from the other's workspace, grants made on a name in one workspace never
reach the other's model of that name, and rename, delete and re-create keep grants on the model they named."""

from __future__ import annotations

import uuid

import pytest
from mlflow.exceptions import MlflowException

from tests.e2e.test_client_workspaces import PASSWORD, _as, _code, ws_server  # noqa: F401 - the fixture

pytestmark = pytest.mark.e2e


def _missing_text(call, name: str) -> str:
    """The error of ``call`` with the name it asked about blanked, to compare with a name that never existed."""
    with pytest.raises(MlflowException) as info:
        call()
    assert info.value.error_code == "RESOURCE_DOES_NOT_EXIST", info.value
    return str(info.value).replace(name, "<name>")


def _registry(team: str) -> str:
    """As the current member, in the current workspace: a run, the model ``churn`` (version 1 from the run, alias
    ``champion``) and the prompt ``greeting``; returns the run id."""
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_experiment("registry")  # experiment names are per workspace too
    with mlflow.start_run() as run:
        mlflow.log_text(team, "model/notes.txt")
    client = MlflowClient()
    assert client.create_registered_model("churn", description=f"churn of {team}").name == "churn"
    version = client.create_model_version("churn", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    assert version.version == "1"
    client.set_registered_model_alias("churn", "champion", "1")
    assert mlflow.genai.register_prompt("greeting", template=f"Hello from {team}").version == 1
    return run.info.run_id


def _own(team: str, run_id: str) -> None:
    """The current member finds their own team's churn and greeting by name (prompts are loaded with the
    client's cache off: it keys prompts by name alone, across workspaces and users)."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    assert client.get_registered_model("churn").description == f"churn of {team}"
    assert client.get_model_version_by_alias("churn", "champion").run_id == run_id
    assert client.get_model_version("churn", "1").run_id == run_id
    assert mlflow.genai.load_prompt("prompts:/greeting/1", cache_ttl_seconds=0).template == f"Hello from {team}"


def test_two_teams_use_the_same_model_and_prompt_names(ws_server, monkeypatch):  # noqa: F811 - the fixture
    import mlflow
    from mlflow import MlflowClient
    from mlflow.server import get_app_client

    suffix = uuid.uuid4().hex[:6]
    team_a, team_b = f"names-a-{suffix}", f"names-b-{suffix}"
    alice, bob, carol, dana = (f"{n}-{suffix}" for n in ("alice", "bob", "carol", "dana"))
    _as(monkeypatch, ws_server, ws_server.admin_username, ws_server.admin_password, None)
    mlflow.create_workspace(team_a)
    mlflow.create_workspace(team_b)
    auth = get_app_client("basic-auth", tracking_uri=ws_server.url)
    for user in (alice, bob, carol, dana):
        auth.create_user(user, PASSWORD)
    viewers = {}
    for workspace, member in ((team_a, alice), (team_b, bob)):
        role = auth.create_role(workspace, "members")
        for resource_type in ("experiment", "registered_model"):
            auth.add_role_permission(role.id, resource_type, "*", "EDIT")
        auth.assign_role(member, role.id)
        # carol and dana are members of both workspaces, with no permission on anything by their roles.
        viewers[workspace] = auth.create_role(workspace, "viewers")
        auth.add_role_permission(viewers[workspace].id, "workspace", "*", "USE")
        auth.assign_role(carol, viewers[workspace].id)
        auth.assign_role(dana, viewers[workspace].id)
    # dana may read team-a's models named churn, by a role permission on a name pattern (a grant by name, in
    # team-a; "chur?" matches churn, not churn-old).
    churn_readers = auth.create_role(team_a, "churn-readers")
    auth.add_role_permission(churn_readers.id, "registered_model", "chur?", "READ")
    auth.assign_role(dana, churn_readers.id)

    # Both teams take the same names; a name only the other workspace holds is free (no RESOURCE_ALREADY_EXISTS).
    _as(monkeypatch, ws_server, alice, PASSWORD, team_a)
    run_a = _registry("a")
    mlflow.genai.register_prompt("summary", template="A's summary prompt")
    MlflowClient().create_registered_model(f"a-only-{suffix}")
    mlflow.genai.register_prompt(f"a-prompt-{suffix}", template="only in team-a")
    _as(monkeypatch, ws_server, bob, PASSWORD, team_b)
    run_b = _registry("b")
    client = MlflowClient()
    client.create_registered_model("summary")  # a model here, a prompt in team-a: each workspace decides alone

    # Each team finds its own objects by the shared names, and lists only its own (team-a's prompt 'summary'
    # does not hide team-b's model 'summary').
    _own("b", run_b)
    assert sorted(m.name for m in client.search_registered_models()) == ["churn", "summary"]
    assert [p.name for p in mlflow.genai.search_prompts()] == ["greeting"]
    assert [v.run_id for v in client.search_model_versions("name = 'churn'")] == [run_b]
    # Probing team-a's names from team-b tells nothing: the same answer as a name that never existed.
    a_only, never = f"a-only-{suffix}", f"never-{suffix}"
    assert _missing_text(lambda: client.get_registered_model(a_only), a_only) == \
        _missing_text(lambda: client.get_registered_model(never), never)
    assert _missing_text(lambda: client.get_model_version(a_only, "1"), a_only) == \
        _missing_text(lambda: client.get_model_version(never, "1"), never)
    a_prompt = f"a-prompt-{suffix}"
    assert _missing_text(lambda: mlflow.genai.load_prompt(f"prompts:/{a_prompt}/1", cache_ttl_seconds=0), a_prompt) == \
        _missing_text(lambda: mlflow.genai.load_prompt(f"prompts:/{never}/1", cache_ttl_seconds=0), never)
    assert _code(lambda: client.get_model_version("churn", "2")) == "RESOURCE_DOES_NOT_EXIST"
    # ... and the name can be taken here, by a rename too.
    client.rename_registered_model("summary", a_only)
    assert client.get_registered_model(a_only).name == a_only

    _as(monkeypatch, ws_server, alice, PASSWORD, team_a)
    client = MlflowClient()
    _own("a", run_a)
    assert sorted(m.name for m in client.search_registered_models()) == sorted(["churn", a_only])
    assert sorted(p.name for p in mlflow.genai.search_prompts()) == [f"a-prompt-{suffix}", "greeting", "summary"]
    assert [v.run_id for v in client.search_model_versions("name = 'churn'")] == [run_a]

    # A grant made in team-a on 'churn' is on team-a's churn only.
    _as(monkeypatch, ws_server, ws_server.admin_username, ws_server.admin_password, team_a)
    get_app_client("basic-auth", tracking_uri=ws_server.url).grant_user_permission(carol, "registered_model",
                                                                                   "churn", "READ")
    for reader in (carol, dana):
        _as(monkeypatch, ws_server, reader, PASSWORD, team_a)
        assert MlflowClient().get_registered_model("churn").description == "churn of a"
        assert MlflowClient().get_model_version_by_alias("churn", "champion").run_id == run_a
        greeting = "prompts:/greeting/1"
        assert _code(lambda: mlflow.genai.load_prompt(greeting, cache_ttl_seconds=0)) == "RESOURCE_DOES_NOT_EXIST"
        _as(monkeypatch, ws_server, reader, PASSWORD, team_b)
        client = MlflowClient()
        assert _code(lambda: client.get_registered_model("churn")) == "RESOURCE_DOES_NOT_EXIST"
        assert _code(lambda: client.get_model_version_by_alias("churn", "champion")) == "RESOURCE_DOES_NOT_EXIST"
        assert client.search_registered_models() == []
        assert client.search_model_versions("name = 'churn'") == []
    # carol's grant is on team-a's churn: asked from team-b, the permission API finds none on team-b's.
    for workspace, expected in ((team_b, False), (team_a, True)):
        _as(monkeypatch, ws_server, ws_server.admin_username, ws_server.admin_password, workspace)
        held = get_app_client("basic-auth", tracking_uri=ws_server.url).get_user_permission(
            carol, "registered_model", "churn")
        assert (held.allowed, held.permission == "READ") == (expected, expected), (workspace, held.permission)

    # Rename, delete and re-create in team-a: carol's grant stays with the model it was made on.
    _as(monkeypatch, ws_server, alice, PASSWORD, team_a)
    client = MlflowClient()
    client.rename_registered_model("churn", "churn-old")
    client.create_registered_model("churn", description="the second churn of a")
    _as(monkeypatch, ws_server, carol, PASSWORD, team_a)
    assert MlflowClient().get_model_version_by_alias("churn-old", "champion").run_id == run_a
    assert _code(lambda: MlflowClient().get_registered_model("churn")) == "RESOURCE_DOES_NOT_EXIST"
    # dana's role grants by name: it covers whichever team-a model is named churn now, and nothing else.
    _as(monkeypatch, ws_server, dana, PASSWORD, team_a)
    assert MlflowClient().get_registered_model("churn").description == "the second churn of a"
    assert _code(lambda: MlflowClient().get_registered_model("churn-old")) == "RESOURCE_DOES_NOT_EXIST"
    _as(monkeypatch, ws_server, alice, PASSWORD, team_a)
    client = MlflowClient()
    client.delete_registered_model("churn-old")
    client.create_registered_model("churn-old")
    _as(monkeypatch, ws_server, carol, PASSWORD, team_a)
    assert _code(lambda: MlflowClient().get_registered_model("churn-old")) == "RESOURCE_DOES_NOT_EXIST"

    # team-b's churn went through none of that; deleting and re-creating it leaves team-a's alone.
    _as(monkeypatch, ws_server, bob, PASSWORD, team_b)
    client = MlflowClient()
    _own("b", run_b)
    client.delete_registered_model("churn")
    assert _code(lambda: client.get_registered_model("churn")) == "RESOURCE_DOES_NOT_EXIST"
    client.create_registered_model("churn", description="the second churn of b")
    assert client.create_model_version("churn", f"runs:/{run_b}/model", run_id=run_b).version == "1"
    assert _code(lambda: client.get_model_version_by_alias("churn", "champion")) == "INVALID_PARAMETER_VALUE"
    _as(monkeypatch, ws_server, alice, PASSWORD, team_a)
    client = MlflowClient()
    assert client.get_registered_model("churn").description == "the second churn of a"
    assert mlflow.genai.load_prompt("prompts:/greeting/1", cache_ttl_seconds=0).template == "Hello from a"
    # bob, not a member of team-a, finds neither the workspace nor its names.
    _as(monkeypatch, ws_server, bob, PASSWORD, team_a)
    assert _code(lambda: MlflowClient().get_registered_model("churn")) == "RESOURCE_DOES_NOT_EXIST"
