"""First start: the administrator bootstrap and the session secret."""

from __future__ import annotations

import io
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from gateway.identity import ADMIN_PASSWORD_FILE, SECRET_FILE, bootstrap_admin, identity_problems, session_secret
from gateway.settings import Settings, SettingsError
from tests.gateway.authn_support import USER_PASSWORD, basic, make_client


@pytest.fixture
def empty_app(app_factory, tmp_path):
    """An app over a database without the test administrator."""
    with make_client(app_factory, tmp_path) as client:
        store = client.app.state.identity.store
        store.delete_user(store.user_by_name("admin").id)
        yield client


def test_admin_from_the_environment(empty_app):
    identity = empty_app.app.state.identity
    out = io.StringIO()
    env = {"MLGATE_ADMIN_USERNAME": "root", "MLGATE_ADMIN_PASSWORD": USER_PASSWORD}
    assert bootstrap_admin(identity, "/nonexistent", env, out) == "root"
    assert USER_PASSWORD not in out.getvalue()
    assert empty_app.get("/api/2.0/mlflow/users/current", headers=basic("root", USER_PASSWORD)).json()["user"] == {
        "id": identity.store.user_by_name("root").id, "username": "root", "is_admin": True}
    # Later starts leave the existing administrator alone.
    assert bootstrap_admin(identity, "/nonexistent", {"MLGATE_ADMIN_PASSWORD": "another-strong-value-1"}, out) is None


@pytest.mark.parametrize("password", ["admin", "password1234", "short-one"])
def test_weak_admin_passwords_are_refused(empty_app, password):
    identity = empty_app.app.state.identity
    with pytest.raises(ValueError, match="MLGATE_ADMIN_PASSWORD"):
        bootstrap_admin(identity, "/nonexistent", {"MLGATE_ADMIN_PASSWORD": password}, io.StringIO())
    assert not identity.store.has_admin()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "log"])
def test_generated_admin_password_is_printed_once_and_written_0600(empty_app, tmp_path, terminal):
    identity = empty_app.app.state.identity
    out = _Terminal() if terminal else io.StringIO()
    assert bootstrap_admin(identity, str(tmp_path / "data"), {}, out) == "admin"
    path = tmp_path / "data" / ADMIN_PASSWORD_FILE
    password = path.read_text().strip()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # On a terminal the password is shown once; into a log (not a terminal) only the file's path goes.
    assert out.getvalue().count(password) == (1 if terminal else 0)
    assert str(path) in out.getvalue() or ADMIN_PASSWORD_FILE in out.getvalue()
    assert len(password) >= 20
    assert empty_app.get("/api/2.0/mlflow/users/current", headers=basic("admin", password)).status_code == 200


def test_short_secret_key_is_refused(app_factory):
    with pytest.raises(SettingsError) as info:
        app_factory(secret_key="too-short")
    assert any(p.startswith("MLGATE_SECRET_KEY: must be at least 32 characters") for p in info.value.problems)


def test_postgresql_needs_an_explicit_secret_key():
    settings = Settings(backend_store_uri="postgresql://db.example/mlgate")
    assert identity_problems(settings, None) == [
        "MLGATE_SECRET_KEY: required with a PostgreSQL database, where several servers may share users and "
        "sessions; a key is generated only for a local SQLite node"]


def test_local_node_generates_and_keeps_a_private_secret(tmp_path: Path, settings):
    local = replace(settings, secret_key=None, data_dir=str(tmp_path / "state"))
    first = session_secret(local)
    path = tmp_path / "state" / SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 32
    assert session_secret(local) == first  # a restart keeps sessions valid


def test_bootstrap_never_overwrites_an_existing_account(empty_app):
    identity = empty_app.app.state.identity
    identity.store.create_user("admin", identity.hasher.hash(USER_PASSWORD))
    out = io.StringIO()
    assert bootstrap_admin(identity, "/nonexistent", {"MLGATE_ADMIN_PASSWORD": "another-strong-value-1"}, out) is None
    assert "warning: no enabled administrator" in out.getvalue()
    assert identity.store.user_by_name("admin").is_admin is False
    assert empty_app.get("/api/2.0/mlflow/users/current", headers=basic("admin", USER_PASSWORD)).status_code == 200
