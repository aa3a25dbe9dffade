"""The admin CLI in offline mode (``--db``): bootstrap and recovery on the database, audited as offline."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.commands.output import EXIT_NOT_FOUND
from gateway.settings import Settings
from tests.cli.conftest import Mlgate
from tests.conftest import TEST_SECRET_KEY
from tests.services import fresh_postgres_database, require_postgres


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> tuple[Mlgate, str, object]:
    """A migrated, empty SQLite database (no users at all) and a runner with no server configured."""
    workdir = tmp_path_factory.mktemp("offline")
    uri = f"sqlite:///{workdir / 'mlgate.db'}"
    cli = Mlgate(workdir / "config.json")
    upgraded = cli("db", "upgrade", "--backend-store-uri", uri)
    assert upgraded.returncode == 0, upgraded.stderr
    return cli, uri, workdir


def _app(uri: str, workdir) -> TestClient:
    settings = Settings(backend_store_uri=uri, artifacts_destination=str(workdir / "artifacts"),
                        data_dir=str(workdir), dev_mode=True, secret_key=TEST_SECRET_KEY)
    return TestClient(create_app(settings), base_url="http://127.0.0.1:5000")


def test_bootstrap_first_admin_then_recover_its_password(db):
    cli, uri, workdir = db
    made = cli.json("users", "create", "root", "--admin", "--password-stdin", "--db", uri,
                    input="first-Boot-pass-1\n")["user"]
    assert (made["username"], made["is_admin"], made["kind"]) == ("root", True, "user")
    cli.json("users", "set-password", "root", "--password-stdin", "--db", uri, input="second-Boot-pass-2\n")

    with _app(uri, workdir) as client:
        assert client.get("/api/2.0/mlflow/users/current", auth=("root", "first-Boot-pass-1")).status_code == 401
        me = client.get("/api/2.0/mlflow/users/current", auth=("root", "second-Boot-pass-2"))
        assert me.status_code == 200
        assert me.json()["user"]["is_admin"] is True

    records = cli.json("audit", "list", "--db", uri)["records"]
    changes = [(r["action"], r["target"]) for r in records if r["actor"] and r["actor"].startswith("offline-cli:")]
    assert ("user.create", "root") in changes
    assert ("user.password", "root") in changes


def test_grants_groups_and_explain_offline(db):
    cli, uri, workdir = db
    cli.json("users", "create", "dora", "--password-stdin", "--db", uri, input="explorer-Pass-99\n")
    cli.json("groups", "create", "team-b", "--db", uri)
    cli.json("groups", "add-member", "team-b", "dora", "--db", uri)
    grant = cli.json("perms", "grant", "--group", "team-b", "--experiment-name", "Def*", "READ", "--db", uri)["grant"]
    assert grant["created_by"].startswith("offline-cli:")

    # The Default experiment (id 0) matches the pattern: READ allowed, EDIT not, both citing the grant.
    read = cli.json("perms", "explain", "--user", "dora", "--experiment", "0", "--action", "READ", "--db", uri)
    assert read["allowed"] is True
    assert read["rule"] == f"api-grant:{grant['id']}"
    edit = cli.json("perms", "explain", "--user", "dora", "--experiment", "0", "--action", "EDIT", "--db", uri)
    assert edit["allowed"] is False
    denied_by_file = cli.json("perms", "explain", "--user", "dora", "--experiment", "0", "--action", "READ",
                              "--db", uri, "--policy", str(_deny_file(workdir)))
    assert denied_by_file["allowed"] is False
    assert denied_by_file["rule"] == "access.denies[0]"
    # --workspace: as a request naming it. Experiment 0 lives in 'default'; from another workspace it is missing.
    in_default = cli.json("perms", "explain", "--user", "dora", "--experiment", "0", "--action", "READ",
                          "--workspace", "default", "--db", uri)
    assert in_default["allowed"] is True
    assert in_default["workspace"] == "default"
    elsewhere = cli("perms", "explain", "--user", "dora", "--experiment", "0", "--action", "READ",
                    "--workspace", "team-x", "--db", uri)
    assert elsewhere.returncode == EXIT_NOT_FOUND, elsewhere.stderr
    assert "in workspace 'team-x'" in elsewhere.stderr

    # A running server sees the offline change (the grant generation was bumped).
    with _app(uri, workdir) as client:
        found = client.get("/api/2.0/mlflow/experiments/get", params={"experiment_id": "0"},
                           auth=("dora", "explorer-Pass-99"))
        assert found.status_code == 200
    token = cli("tokens", "create", "nightly", "--for", "dora", "--days", "1", "--db", uri)
    assert token.returncode == 0, token.stderr
    with _app(uri, workdir) as client:
        me = client.get("/api/2.0/mlflow/users/current", headers={"Authorization": f"Bearer {token.stdout.strip()}"})
        assert me.json()["user"]["username"] == "dora"

    assert cli("perms", "explain", "--user", "nobody", "--experiment", "0", "--action", "READ",
               "--db", uri).returncode == 3
    assert cli("users", "disable", "nobody", "--db", uri).returncode == 3
    assert cli("tokens", "list", "--db", uri).returncode == 2  # offline has no "me": --for is needed


def _deny_file(workdir):
    path = workdir / "deny.yaml"
    path.write_text("version: 1\naccess:\n  denies:\n    - {principal: 'user:dora', resource: 'experiment:0'}\n")
    return path


def test_an_unmigrated_database_is_refused_with_the_next_step(tmp_path):
    cli = Mlgate(tmp_path / "config.json")
    result = cli("users", "list", "--db", f"sqlite:///{tmp_path / 'empty.db'}")
    assert result.returncode == 1
    assert "mlgate db upgrade" in result.stderr
    both = cli("users", "list", "--db", "sqlite:///x.db", "--server", "http://127.0.0.1:9")
    assert both.returncode == 2




def test_offline_bootstrap_on_postgresql(tmp_path):
    require_postgres()
    cli = Mlgate(tmp_path / "config.json")
    with fresh_postgres_database() as uri:
        assert cli("db", "upgrade", "--backend-store-uri", uri).returncode == 0
        cli.json("users", "create", "pgroot", "--admin", "--password-stdin", "--db", uri, input="Postgres-boot-1x\n")
        cli.json("groups", "create", "ops", "--db", uri)
        cli.json("groups", "add-member", "ops", "pgroot", "--db", uri)
        assert cli.json("users", "show", "pgroot", "--db", uri)["user"]["groups"] == ["ops"]
        actions = [r["action"] for r in cli.json("audit", "list", "--db", uri)["records"]]
        assert actions == ["user.create", "group.create", "group.add_member"]
