"""``mlgate import-mlflow`` against a real MLflow 3.17.2 basic-auth server.

MLflow's own server and clients fill an MLflow database (experiments, runs with metric histories,
params, tags, a dataset input, artifacts, registered models with versions, stages, tags and an alias;
users, per-user permissions and a role). The import is then read back through mlgate with the real
MLflow client and compared with what MLflow itself answered; the imported users sign in with their
MLflow passwords and their permissions hold. MLflow runs from its own virtualenv (bench/.venv-mlflow,
built on first use by bench.servers.ensure_mlflow_venv); without network to build it the tests skip,
and in CI they fail.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import BACKENDS, start_server
from tests.services import free_port, fresh_postgres_database, require_postgres, unavailable

HERE = Path(__file__).resolve().parent
MLFLOW_ADMIN_PASSWORD = "Mlflow-admin-" + secrets.token_hex(8)
# Passwords MLflow hashed with werkzeug (none contains its username, mlgate's rule for new passwords).
PASSWORDS = {"alice": "Old-pw-a-" + secrets.token_hex(6), "bob": "Old-pw-b-" + secrets.token_hex(6),
             "carol": "Old-pw-c-" + secrets.token_hex(6)}
SLOW = 600  # seconds: the MLflow server answers slowly on a loaded machine (werkzeug scrypt per request)
# Building the virtualenv (about 2 minutes), starting MLflow and filling it take longer than the default budget.
pytestmark = pytest.mark.timeout(1800)


@dataclass
class MlflowSource:
    """A stopped MLflow server's databases and artifacts, what it answered, and the ids it made."""

    workdir: Path
    ids: dict
    expected: dict

    @property
    def db(self) -> Path:
        return self.workdir / "mlflow.db"

    @property
    def auth_db(self) -> Path:
        return self.workdir / "basic_auth.db"

    @property
    def artifacts(self) -> Path:
        return self.workdir / "mlartifacts"


def _mlflow_python() -> Path:
    from bench.servers import ensure_mlflow_venv

    try:
        return ensure_mlflow_venv().parent / "python"
    except (subprocess.CalledProcessError, OSError) as exc:
        unavailable(f"cannot build MLflow's virtualenv bench/.venv-mlflow (pip install 'mlflow[auth]==3.17.2' "
                    f"needs network): {exc}", "python3 -c 'from bench.servers import ensure_mlflow_venv; "
                    "ensure_mlflow_venv()'")
        raise  # unreachable: unavailable() skips or fails


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLGATE_"))}
    return {**env, **extra}


def _wait_healthy(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SLOW
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"MLflow server exited:\n{log.read_text(errors='replace')[-4000:]}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"MLflow server not healthy after {SLOW}s:\n{log.read_text(errors='replace')[-4000:]}")


def _run(args: list[str], env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(args, capture_output=True, text=True, timeout=SLOW, check=False, env=env, cwd=cwd)
    assert done.returncode == 0, f"{args[:3]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done


def _stop(server: subprocess.Popen) -> None:
    """Stop an MLflow server started in its own session, and everything it started."""
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


@pytest.fixture(scope="module")
def mlflow_source(tmp_path_factory) -> MlflowSource:
    """Fill a real MLflow basic-auth server through MLflow's clients, record its answers, stop it."""
    python = _mlflow_python()
    workdir = tmp_path_factory.mktemp("mlflow-server")
    from bench.servers import write_basic_auth_config

    ini = write_basic_auth_config(workdir, MLFLOW_ADMIN_PASSWORD)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = workdir / "server.log"
    env = _clean_env(MLFLOW_AUTH_CONFIG_PATH=str(ini), MLFLOW_FLASK_SERVER_SECRET_KEY=secrets.token_hex(32))
    with log.open("ab") as out:
        server = subprocess.Popen(
            [str(python.parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
             "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
             "--artifacts-destination", str(workdir / "mlartifacts"), "--app-name", "basic-auth"],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=workdir, start_new_session=True)
    try:
        _wait_healthy(url, server, log)
        client_env = _clean_env(MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD=MLFLOW_ADMIN_PASSWORD,
                                IMPORT_TEST_PASSWORDS=json.dumps(PASSWORDS))
        _run([str(python), str(HERE / "mlflow_import_populate.py"), url, str(workdir / "ids.json")], client_env,
             cwd=workdir)
        dumped = _run([str(python), str(HERE / "mlflow_import_dump.py"), url], client_env, cwd=workdir)
    finally:
        _stop(server)
    return MlflowSource(workdir, json.loads((workdir / "ids.json").read_text()), json.loads(dumped.stdout))


def _import(source: MlflowSource, target_uri: str, artifacts_destination: Path, *extra: str,
            artifacts: Path | None = None, auth: bool = True) -> tuple[dict, str]:
    args = [sys.executable, "-m", "gateway.cli", "import-mlflow", "--from", f"sqlite:///{source.db}",
            "--backend-store-uri", target_uri, "--artifacts-destination", str(artifacts_destination),
            "--output", "json", *extra]
    if auth:
        args += ["--auth-db", f"sqlite:///{source.auth_db}"]
    if artifacts is not None:
        args += ["--artifacts", str(artifacts)]
    done = _run(args, _clean_env())
    return json.loads(done.stdout), done.stderr


def _as_mlgate_answers(expected: dict) -> dict:
    """MLflow's answers, with the two differences the import documents applied."""
    out = json.loads(json.dumps(expected))
    for model in out["models"].values():
        for version in model["versions"].values():
            # A runs:/ source downloads from the run's artifact location, as for versions mlgate registers.
            source, run_id = version["source"], version["run_id"]
            if source.startswith(f"runs:/{run_id}/"):
                run_uri = out["runs"][run_id]["info"]["artifact_uri"]
                version["download_uri"] = run_uri + source[len(f"runs:/{run_id}"):]
    return out


def _comparable(answers: dict) -> dict:
    out = json.loads(json.dumps(answers))
    # mlgate already has its own "Default" experiment (id 0); the import matches it by name and keeps it.
    out["experiments"]["0"].pop("creation_time", None)
    out["experiments"]["0"].pop("last_update_time", None)
    return out


def _user_client(monkeypatch, url: str, username: str, password: str):
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", username)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    return MlflowClient(url)


def _error_code(call) -> str:
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException) as info:
        call()
    return info.value.error_code


def _hash_of(db: Path, username: str) -> str:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT password_hash FROM auth_users WHERE username = ?", (username,)).fetchone()[0]


def test_import_reads_back_through_mlgate_and_old_passwords_work(mlflow_source, tmp_path, monkeypatch):
    expected = mlflow_source.expected
    ids = mlflow_source.ids
    # What MLflow holds, counted from its own answers (so the import's counts are checked against it).
    metric_points = sum(len(h) for run in expected["runs"].values() for h in run["history"].values())
    artifact_files = sum(len(run["artifacts"]) for run in expected["runs"].values()) + sum(
        len(model["artifacts"]) for model in expected["logged_models"].values())
    assert len(expected["runs"]) == 5
    assert len(expected["logged_models"]) == 1
    assert metric_points >= 130
    assert artifact_files == 5

    workdir = tmp_path / "mlgate"
    db = workdir / "mlgate.db"
    target_uri = f"sqlite:///{db}"
    first, progress = _import(mlflow_source, target_uri, workdir / "artifacts", artifacts=mlflow_source.artifacts)
    assert "importing from MLflow" in progress  # the progress bar goes to stderr, the summary to stdout
    counts = first["counts"]
    assert counts["experiments"] == {"imported": 3, "present": 1, "skipped": 0}  # "Default" exists in mlgate
    assert counts["runs"] == {"imported": 5, "present": 0, "skipped": 0}
    assert counts["metrics"] == {"imported": metric_points, "present": 0, "skipped": 0}
    assert counts["artifacts"] == {"imported": artifact_files, "present": 0, "skipped": 0}
    assert counts["dataset inputs"]["imported"] == 1
    assert counts["registered models"]["imported"] == 2
    assert counts["model versions"]["imported"] == 4
    assert counts["logged models"] == {"imported": 1, "present": 0, "skipped": 0}
    assert counts["logged model params"]["imported"] == 1
    assert counts["aliases"]["imported"] == 1
    assert counts["users"] == {"imported": 4, "present": 0, "skipped": 0}
    # The admin's five creator grants, alice's and bob's two each, and the role's wildcard READ.
    assert counts["permissions"] == {"imported": 10, "present": 0, "skipped": 0}
    assert counts["groups"]["imported"] == 1
    assert counts["group members"]["imported"] == 1
    assert first["skipped"] == {}

    second, _ = _import(mlflow_source, target_uri, workdir / "artifacts", artifacts=mlflow_source.artifacts)
    for kind, c in counts.items():
        assert second["counts"][kind] == {"imported": 0, "present": c["imported"] + c["present"],
                                          "skipped": c["skipped"]}, kind
    assert _hash_of(db, "alice").startswith("scrypt:")  # MLflow's werkzeug hash, as imported

    server = start_server(workdir, target_uri)
    try:
        admin_env = _clean_env(MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD=MLFLOW_ADMIN_PASSWORD)
        answered = _run([sys.executable, str(HERE / "mlflow_import_dump.py"), server.url], admin_env, cwd=tmp_path)
        assert _comparable(json.loads(answered.stdout)) == _comparable(_as_mlgate_answers(expected))

        team_a, team_b = ids["experiments"]["team_a"], ids["experiments"]["team_b"]
        baseline, tuned = ids["runs"]["baseline"], ids["runs"]["tuned"]
        alice = _user_client(monkeypatch, server.url, "alice", PASSWORDS["alice"])
        assert alice.get_experiment(team_a).name == "team-a/churn"
        assert alice.get_run(baseline).data.params["lr"] == "0.01"
        assert alice.get_registered_model("churn-model").description == "Churn classifier"
        assert _error_code(lambda: alice.log_metric(baseline, "sneaky", 1.0)) == "PERMISSION_DENIED"
        assert _error_code(lambda: alice.set_tag(baseline, "sneaky", "x")) == "PERMISSION_DENIED"
        assert _error_code(lambda: alice.get_experiment(team_b)) in ("RESOURCE_DOES_NOT_EXIST", "PERMISSION_DENIED")
        assert _hash_of(db, "alice").startswith("$bcrypt-sha256$")  # upgraded in place at the first login
        assert alice.get_run(baseline).info.run_id == baseline  # and the old password still works after it

        bob = _user_client(monkeypatch, server.url, "bob", PASSWORDS["bob"])
        bob.log_metric(tuned, "after-import", 1.0)
        assert [m.value for m in bob.get_metric_history(tuned, "after-import")] == [1.0]

        carol = _user_client(monkeypatch, server.url, "carol", PASSWORDS["carol"])
        assert carol.get_registered_model("fraud-model").name == "fraud-model"  # through the "analysts" group
        assert _error_code(lambda: carol.get_experiment(team_a)) in ("RESOURCE_DOES_NOT_EXIST", "PERMISSION_DENIED")

        wrong = httpx.get(f"{server.url}/api/2.0/mlflow/experiments/get", params={"experiment_id": team_a},
                          auth=("alice", PASSWORDS["bob"]), timeout=30)
        assert wrong.status_code == 401
    finally:
        server.stop()


@pytest.mark.parametrize("database_uri", BACKENDS, indirect=True)
def test_a_taken_experiment_id_is_mapped_and_everything_follows_it(mlflow_source, database_uri, tmp_path):
    from sqlalchemy import select

    from auth.grants import list_grants
    from gateway.db import upgrade_database
    from tracking.db.engine import make_engine
    from tracking.db.tables import runs
    from tracking.store.experiments import create_experiment, get_experiment_by_name
    from tracking.store.logged_models import get_logged_model
    from tracking.store.registry_versions import get_model_version
    from tracking.store.transaction import write_transaction

    target_uri = database_uri
    engine = make_engine(target_uri)
    upgrade_database(engine)
    with write_transaction(engine) as conn:
        taken = create_experiment(conn, "someone-else", None, [])
    team_a = int(mlflow_source.ids["experiments"]["team_a"])
    assert int(taken) == team_a  # mlgate's first experiment took MLflow's id of team-a/churn

    result, _ = _import(mlflow_source, target_uri, tmp_path / "artifacts", artifacts=mlflow_source.artifacts)
    with engine.connect() as conn:
        moved = int(get_experiment_by_name(conn, "team-a/churn")["experiment_id"])
        kept = {name: get_experiment_by_name(conn, name)["experiment_id"] for name in ("team-b/fraud", "old/abandoned")}
        baseline = mlflow_source.ids["runs"]["baseline"]
        run = conn.execute(select(runs.c.experiment_id, runs.c.artifact_uri).where(runs.c.run_uuid == baseline)).one()
        version = get_model_version(conn, "churn-model", "2", workspace="default")
        from_logged_model = get_model_version(conn, "churn-model", "3", workspace="default")
        logged_model = get_logged_model(conn, mlflow_source.ids["logged_model"])
        grants = {(g.subject, g.resource): g.permission for g in list_grants(conn)}
    with write_transaction(engine) as conn:
        # Explicit ids must not leave PostgreSQL's sequence behind: the next experiment gets a fresh id.
        created_after = int(create_experiment(conn, "created-after-import", None, []))
    engine.dispose()
    assert created_after > max(int(i) for i in mlflow_source.ids["experiments"].values())
    assert moved != team_a
    note = f"MLflow experiment {team_a} ('team-a/churn') is mlgate experiment {moved}"
    assert any(note in n for n in result["notes"])
    # Only the experiment whose id was taken moves; the others keep theirs (no cascade of new ids).
    assert kept == {"team-b/fraud": mlflow_source.ids["experiments"]["team_b"],
                    "old/abandoned": mlflow_source.ids["experiments"]["old"]}
    assert sum("is mlgate experiment" in n for n in result["notes"]) == 1
    assert (run.experiment_id, run.artifact_uri) == (moved, f"mlflow-artifacts:/{moved}/{baseline}/artifacts")
    assert (tmp_path / "artifacts" / str(moved) / baseline / "artifacts" / "model" / "MLmodel").read_text() == \
        "artifact_path: model\n"
    assert version["source"] == f"mlflow-artifacts:/{moved}/{baseline}/artifacts/model"
    model_id = mlflow_source.ids["logged_model"]
    assert logged_model["info"]["experiment_id"] == str(moved)
    assert logged_model["info"]["artifact_uri"] == f"mlflow-artifacts:/{moved}/models/{model_id}/artifacts"
    assert (tmp_path / "artifacts" / str(moved) / "models" / model_id / "artifacts" / "MLmodel").is_file()
    assert from_logged_model["source"] == f"models:/{model_id}"
    assert from_logged_model["model_id"] == model_id
    assert grants[("user:alice", f"experiment:{moved}")] == "READ"
    assert ("user:alice", f"experiment:{team_a}") not in grants  # never a grant on the other experiment


def test_artifacts_outside_the_given_root_are_not_copied(mlflow_source, tmp_path):
    source = MlflowSource(tmp_path, mlflow_source.ids, mlflow_source.expected)
    shutil.copy(mlflow_source.db, source.db)
    secret_dir = tmp_path / "private"
    secret_dir.mkdir()
    (secret_dir / "id_rsa").write_text("not for runs")
    baseline = mlflow_source.ids["runs"]["baseline"]
    with sqlite3.connect(source.db) as conn:  # a crafted MLflow database points a run at another directory
        conn.execute("UPDATE runs SET artifact_uri = ? WHERE run_uuid = ?", (f"file://{secret_dir}", baseline))

    result, _ = _import(source, f"sqlite:///{tmp_path / 'mlgate.db'}", tmp_path / "artifacts", auth=False,
                        artifacts=mlflow_source.artifacts)
    assert result["skipped"]["artifacts"] == {
        "runs whose artifacts were not read: the run's artifact location is outside --artifacts": 1}
    assert not list((tmp_path / "artifacts").rglob("id_rsa"))
    assert result["counts"]["artifacts"]["imported"] == 2  # the other run's file and the logged model's

    without, _ = _import(source, f"sqlite:///{tmp_path / 'other.db'}", tmp_path / "other-artifacts", auth=False)
    assert without["counts"]["artifacts"]["imported"] == 0
    assert without["skipped"]["artifacts"] == {
        "runs whose artifacts were not read: MLflow's artifact root was not given (--artifacts)": 5,
        "logged models whose artifacts were not read: MLflow's artifact root was not given (--artifacts)": 1}


def test_permissions_never_widen_and_unsupported_ones_are_reported(mlflow_source, tmp_path):
    source = MlflowSource(tmp_path, mlflow_source.ids, mlflow_source.expected)
    shutil.copy(mlflow_source.db, source.db)
    shutil.copy(mlflow_source.auth_db, source.auth_db)
    team_b = mlflow_source.ids["experiments"]["team_b"]
    with sqlite3.connect(source.auth_db) as conn:  # rows MLflow's RBAC can hold, added by hand
        def role_of(username: str) -> int:
            return conn.execute("SELECT r.id FROM roles r JOIN user_role_assignments a ON a.role_id = r.id "
                                "JOIN users u ON u.id = a.user_id WHERE u.username = ? AND r.name LIKE '__user_%'",
                                (username,)).fetchone()[0]
        rows = [(role_of("alice"), "experiment", team_b, "DENY"), (role_of("bob"), "experiment", team_b, "USE"),
                (role_of("bob"), "scorer", "*", "READ")]
        conn.executemany("INSERT INTO role_permissions (role_id, resource_type, resource_pattern, permission) "
                         "VALUES (?, ?, ?, ?)", rows)
        other = conn.execute("INSERT INTO roles (name, workspace) VALUES ('elsewhere', 'team-space')").lastrowid
        conn.execute("INSERT INTO role_permissions (role_id, resource_type, resource_pattern, permission) "
                     "VALUES (?, 'experiment', '*', 'EDIT')", (other,))

    target_uri = f"sqlite:///{tmp_path / 'mlgate.db'}"
    result, _ = _import(source, target_uri, tmp_path / "artifacts")
    assert result["skipped"]["permissions"] == {
        "DENY rules (re-create them as denies in the policy file)": 1,
        "kinds mlgate does not have (scorer READ)": 1,
        "in MLflow workspaces other than 'default'": 1,
    }
    assert result["skipped"]["groups"] == {"roles of MLflow workspaces other than 'default'": 1}
    assert any(f"MLflow denies user 'alice' on experiment '{team_b}'" in note for note in result["notes"])

    from auth.grants import list_grants
    from tracking.db.engine import make_engine

    engine = make_engine(target_uri)
    with engine.connect() as conn:
        grants = {(g.subject, g.resource): g.permission for g in list_grants(conn)}
    engine.dispose()
    assert grants[("user:bob", f"experiment:{team_b}")] == "READ"  # USE is read plus gateway use: never EDIT
    assert not any(subject == "user:alice" and resource == f"experiment:{team_b}" for subject, resource in grants)
    assert not any(subject == "group:elsewhere" for subject, _ in grants)


@pytest.mark.parametrize(("make", "message"), [
    (lambda d: None, "--from: no SQLite file at"),
    (lambda d: sqlite3.connect(d).execute("CREATE TABLE experiments (x)").connection.commit(),
     "--from: not an MLflow database of this kind; missing tables: runs, metrics, params, tags."),
])
def test_a_source_that_is_not_an_mlflow_database_is_refused(tmp_path, make, message):
    source = tmp_path / "mlflow.db"
    make(source)
    done = subprocess.run([sys.executable, "-m", "gateway.cli", "import-mlflow", "--from", f"sqlite:///{source}",
                           "--backend-store-uri", f"sqlite:///{tmp_path / 'mlgate.db'}"],
                          capture_output=True, text=True, timeout=120, check=False, env=_clean_env())
    assert done.returncode == 1
    assert message in done.stderr
    assert not (tmp_path / "mlgate.db").exists()  # nothing is created before the source checks out


def test_a_database_the_client_wrote_directly_with_local_artifacts(tmp_path, monkeypatch):
    """Without a server MLflow stores local paths (./mlruns); they become mlgate's served locations."""
    python = _mlflow_python()
    source = tmp_path / "source"
    source.mkdir()
    _run([str(python), str(HERE / "mlflow_import_populate.py"), "--direct", str(source / "mlflow.db"),
          str(source / "ids.json")], _clean_env(), cwd=source)
    ids = json.loads((source / "ids.json").read_text())
    assert ids["artifact_uri"].startswith(str(source / "mlruns"))  # a local path, not a served URI

    workdir = tmp_path / "mlgate"
    target_uri = f"sqlite:///{workdir / 'mlgate.db'}"
    before = hashlib.sha256((source / "mlflow.db").read_bytes()).hexdigest()
    result, _ = _import(MlflowSource(source, ids, {}), target_uri, workdir / "artifacts", auth=False,
                        artifacts=source / "mlruns")
    # Opened read-only: MLflow's database is byte for byte unchanged and got no journal.
    assert hashlib.sha256((source / "mlflow.db").read_bytes()).hexdigest() == before
    assert sorted(p.name for p in source.glob("mlflow.db*")) == ["mlflow.db"]
    assert result["counts"]["artifacts"] == {"imported": 2, "present": 0, "skipped": 0}
    assert result["counts"]["model versions"]["imported"] == 2

    server = start_server(workdir, target_uri)
    try:
        import mlflow
        from mlflow.artifacts import download_artifacts

        client = _user_client(monkeypatch, server.url, server.admin_username, server.admin_password)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
        run = client.get_run(ids["run"])
        experiment = ids["experiment"]
        assert run.info.artifact_uri == f"mlflow-artifacts:/{experiment}/{ids['run']}/artifacts"
        assert [(m.step, m.value) for m in client.get_metric_history(ids["run"], "m")] == [
            (i, i * 1.5) for i in range(5)]
        local = client.download_artifacts(ids["run"], "dir/a.txt", str(tmp_path))
        assert Path(local).read_text() == "hello from a local run"
        first = client.get_model_version("local-model", "1")
        assert first.source == f"mlflow-artifacts:/{experiment}/{ids['run']}/artifacts/dir"
        # mlflow resolves models:/ through its process-wide registry URI (an explicit registry_uri argument is
        # not used there), which follows the process-wide tracking URI: an earlier test in this worker process
        # may have left that on its own server. (Never set the registry URI itself: it would outlive the test.)
        mlflow.set_tracking_uri(server.url)
        files = download_artifacts(artifact_uri="models:/local-model/2", dst_path=str(tmp_path / "v2"))
        assert (Path(files) / "MLmodel").read_text() == "flavors: {local: true}\n"
    finally:
        server.stop()


def test_a_postgresql_source_is_opened_read_only():
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from gateway.mlflow_import.source import open_read_only

    require_postgres()
    with fresh_postgres_database() as uri:
        engine = open_read_only(uri, "--from")
        try:
            with engine.connect() as conn, pytest.raises(DBAPIError, match="read-only transaction"):
                conn.execute(text("CREATE TABLE written_by_the_import (x integer)"))
        finally:
            engine.dispose()


def test_the_summary_table_lists_counts_reasons_and_notes():
    from gateway.mlflow_import.tally import Tally

    tally = Tally()
    tally.imported("runs", 3)
    tally.present("runs")
    tally.skipped("runs", "its experiment was not imported", 2)
    tally.note("MLflow experiment 1 ('a') is mlgate experiment 5: id 1 was already used by another experiment.")
    lines = tally.render().splitlines()
    assert lines[0].split() == ["kind", "imported", "already", "present", "skipped"]
    assert next(line for line in lines if line.startswith("runs ")).split() == ["runs", "3", "1", "2"]
    assert next(line for line in lines if line.startswith("users ")).split() == ["users", "0", "0", "0"]
    assert lines[-6:] == ["", "skipped:", "  runs: 2 its experiment was not imported", "", "notes:",
                          "  MLflow experiment 1 ('a') is mlgate experiment 5: id 1 was already used by another "
                          "experiment."]
