"""The unmodified mlflow client against an authenticating mlgate: Basic, tokens, failures, user API, processes."""

from __future__ import annotations

import time

import httpx
import pytest
from mlflow.exceptions import MlflowException, RestException
from sqlalchemy import update

from auth.tables import access_tokens
from tests.conftest import start_server
from tests.e2e.conftest import admin_token
from tracking.db.engine import make_engine

pytestmark = pytest.mark.e2e
PASSWORD = "juniper-basalt-comet-6"


def _workflow(client, name: str) -> None:
    """A typical tracking session: experiment, run, params, metrics, tags, artifact, search."""
    experiment_id = client.create_experiment(name)
    run = client.create_run(experiment_id)
    run_id = run.info.run_id
    client.log_param(run_id, "lr", "0.1")
    for step in range(3):
        client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
    client.set_tag(run_id, "team", "vision")
    client.set_terminated(run_id)
    fetched = client.get_run(run_id)
    assert fetched.data.params == {"lr": "0.1"}
    assert fetched.data.metrics["loss"] == pytest.approx(1 / 3)
    assert [r.info.run_id for r in client.search_runs([experiment_id], "tags.team = 'vision'")] == [run_id]
    assert [m.value for m in client.get_metric_history(run_id, "loss")] == pytest.approx([1.0, 0.5, 1 / 3])


def _client(url: str, monkeypatch, *, username=None, password=None, token=None):
    from mlflow import MlflowClient

    for var in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    if username is not None:
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", username)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    if token is not None:
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    return MlflowClient(url)


def _admin_api(e2e_server):
    from mlflow.server import get_app_client

    return get_app_client("basic-auth", tracking_uri=e2e_server.url)


def _assert_unauthenticated(client) -> None:
    with pytest.raises(RestException) as info:
        client.search_experiments(max_results=1)
    assert info.value.error_code == "UNAUTHENTICATED"


@pytest.fixture
def user(e2e_server, mlflow_client, monkeypatch, unique_name) -> str:
    """A fresh non-admin user made through AuthServiceClient as the administrator."""
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", e2e_server.admin_username)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", e2e_server.admin_password)
    _admin_api(e2e_server).create_user(unique_name, PASSWORD)
    return unique_name


def _token_for(e2e_server, username: str, password: str, **fields) -> tuple[str, str]:
    response = httpx.post(f"{e2e_server.url}/api/2.0/mlflow/users/tokens/create", auth=(username, password),
                          json={"name": "e2e", "expires_in_days": 2, **fields}, timeout=30)
    response.raise_for_status()
    body = response.json()
    return body["token"], body["token_info"]["id"]


def test_basic_auth_runs_a_tracking_workflow(e2e_server, user, monkeypatch, unique_name):
    _workflow(_client(e2e_server.url, monkeypatch, username=user, password=PASSWORD), unique_name)


def test_a_token_runs_a_tracking_workflow(e2e_server, user, monkeypatch, unique_name):
    token, _ = _token_for(e2e_server, user, PASSWORD)
    _workflow(_client(e2e_server.url, monkeypatch, token=token), unique_name)


def test_a_token_as_the_basic_password_works(e2e_server, user, monkeypatch, unique_name):
    token, _ = _token_for(e2e_server, user, PASSWORD)
    _workflow(_client(e2e_server.url, monkeypatch, username="ci", password=token), unique_name)


def test_the_fluent_api_with_the_admin_token(e2e_server, monkeypatch, unique_name):
    import mlflow

    _client(e2e_server.url, monkeypatch, token=admin_token(e2e_server))
    mlflow.set_tracking_uri(e2e_server.url)
    mlflow.set_experiment(unique_name)
    with mlflow.start_run() as run:
        mlflow.log_params({"a": 1, "b": "two"})
        mlflow.log_metric("m", 3.0)
    assert mlflow.get_run(run.info.run_id).data.params == {"a": "1", "b": "two"}


def test_wrong_password_fails_with_401(e2e_server, user, monkeypatch):
    _assert_unauthenticated(_client(e2e_server.url, monkeypatch, username=user, password="not-the-password-9"))
    _assert_unauthenticated(_client(e2e_server.url, monkeypatch, username=user + "-nobody", password=PASSWORD))


def test_no_credentials_fail_with_401(e2e_server, monkeypatch):
    _assert_unauthenticated(_client(e2e_server.url, monkeypatch))


def test_revoked_token_fails_with_401(e2e_server, user, monkeypatch):
    token, token_id = _token_for(e2e_server, user, PASSWORD)
    client = _client(e2e_server.url, monkeypatch, token=token)
    client.search_experiments(max_results=1)
    httpx.post(f"{e2e_server.url}/api/2.0/mlflow/users/tokens/revoke", auth=(user, PASSWORD),
               json={"token_id": token_id}, timeout=30).raise_for_status()
    _assert_unauthenticated(client)


def test_expired_token_fails_with_401(e2e_server, user, monkeypatch):
    token, token_id = _token_for(e2e_server, user, PASSWORD)
    client = _client(e2e_server.url, monkeypatch, token=token)
    client.search_experiments(max_results=1)
    engine = make_engine(e2e_server.backend_store_uri)
    try:
        with engine.begin() as conn:
            conn.execute(update(access_tokens).where(access_tokens.c.id == token_id)
                         .values(expires_at=int(time.time() * 1000) - 1))
    finally:
        engine.dispose()
    time.sleep(1.2)  # tokens are trusted for at most a second without a lookup
    _assert_unauthenticated(client)


def test_disabled_user_fails_with_401(e2e_server, user, monkeypatch):
    client = _client(e2e_server.url, monkeypatch, username=user, password=PASSWORD)
    client.search_experiments(max_results=1)
    httpx.patch(f"{e2e_server.url}/api/2.0/mlflow/users/update-disabled", auth=e2e_server.admin_auth,
                json={"username": user, "disabled": True}, timeout=30).raise_for_status()
    _assert_unauthenticated(client)


def test_auth_service_client_manages_users(e2e_server, mlflow_client, monkeypatch, unique_name):
    _client(e2e_server.url, monkeypatch, username=e2e_server.admin_username, password=e2e_server.admin_password)
    api = _admin_api(e2e_server)
    created = api.create_user(unique_name, PASSWORD)
    assert created.username == unique_name
    assert created.is_admin is False
    assert api.get_user(unique_name).id == created.id
    api.update_user_password(unique_name, "admin-set-value-12")
    api.update_user_admin(unique_name, True)
    assert api.get_user(unique_name).is_admin is True

    # The user changes their own password, proving the current one.
    _client(e2e_server.url, monkeypatch, username=unique_name, password="admin-set-value-12")
    _admin_api(e2e_server).update_user_password(unique_name, "self-chosen-value-34",
                                                current_password="admin-set-value-12")
    _assert_unauthenticated(_client(e2e_server.url, monkeypatch, username=unique_name,
                                    password="admin-set-value-12"))
    client = _client(e2e_server.url, monkeypatch, username=unique_name, password="self-chosen-value-34")
    client.search_experiments(max_results=1)

    _client(e2e_server.url, monkeypatch, username=e2e_server.admin_username, password=e2e_server.admin_password)
    with pytest.raises(MlflowException, match="already exists"):
        api.create_user(unique_name, PASSWORD)
    api.delete_user(unique_name)
    with pytest.raises(MlflowException, match="not found"):
        api.get_user(unique_name)


def test_a_second_process_sees_a_password_change_immediately(e2e_server, user, tmp_path, monkeypatch):
    second = start_server(tmp_path / "second", e2e_server.backend_store_uri)
    try:
        on_second = _client(second.url, monkeypatch, username=user, password=PASSWORD)
        on_second.search_experiments(max_results=1)  # verified and cached by the second process
        httpx.patch(f"{e2e_server.url}/api/2.0/mlflow/users/update-password", auth=e2e_server.admin_auth,
                    json={"username": user, "password": "changed-elsewhere-56"}, timeout=30).raise_for_status()
        _assert_unauthenticated(on_second)  # no sleep: the very next request
        _client(second.url, monkeypatch, username=user, password="changed-elsewhere-56").search_experiments(
            max_results=1)
    finally:
        second.stop()
