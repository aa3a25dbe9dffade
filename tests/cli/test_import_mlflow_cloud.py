"""``mlgate import-mlflow --artifacts gs://...``, ``wasbs://...``, ``s3://...``: MLflow's artifacts in object stores.

A real MLflow 3.17.2 server (bench/.venv-mlflow) runs with ``--default-artifact-root`` on the GCS emulator,
Azurite or moto's S3 server and ``--no-serve-artifacts``; MLflow's own client logs runs and a logged model,
writing the files to the emulator itself. The import then copies them through mlgate's backends
(walk/open_segments) and every file must arrive byte for byte, from both URI forms MLflow stores (the store's
own URI, and the ``mlflow-artifacts:/`` URIs of a server that proxies to that store, whose layout is the
same). A connection that drops midway stops the import with a message naming the file; nothing partial is
written, and running the command again completes the copy. The destination may be a bucket too.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.cli.test_import_mlflow import _clean_env, _mlflow_python, _run, _stop, _wait_healthy
from tests.services import azurite_server, free_port, gcs_server, s3_server

HERE = Path(__file__).resolve().parent
PREFIX = "mlflow-artifacts-root"
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]


@dataclass
class CloudSource:
    """A stopped MLflow server's database, its artifact root in an emulator, and the ids MLflow made."""

    kind: str
    root: str
    env: dict[str, str]
    workdir: Path
    ids: dict
    objects: callable  # () -> {object name: bytes} of everything in the bucket/container
    new_store: callable  # () -> (URI of a fresh bucket/container's prefix "dest", its objects())

    @property
    def db(self) -> Path:
        return self.workdir / "mlflow.db"


def _emulator(kind: str):
    return {"gcs": gcs_server, "azure": azurite_server, "s3": s3_server}[kind]()


def _store(kind: str, emulator, prefix: str):
    """A fresh bucket or container: the URI of ``prefix`` in it, and a reader of all its objects."""
    if kind == "gcs":
        bucket = emulator.new_bucket()
        client = emulator.client()
        return f"gs://{bucket}/{prefix}", lambda: {b.name: b.download_as_bytes() for b in client.list_blobs(bucket)}
    if kind == "azure":
        container = emulator.client().get_container_client(emulator.new_container())
        return emulator.uri(container.container_name, prefix), lambda: {
            b.name: container.download_blob(b.name).readall() for b in container.list_blobs()}
    bucket = emulator.new_bucket()
    client = emulator.client()

    def objects() -> dict[str, bytes]:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
                for page in pages for o in page.get("Contents", [])}
    return f"s3://{bucket}/{prefix}", objects


@pytest.fixture(scope="module", params=["gcs", "azure", "s3"])
def cloud_source(request, tmp_path_factory) -> CloudSource:
    """MLflow's server and client fill the emulator; the server is stopped before the import reads."""
    python = _mlflow_python()
    with _emulator(request.param) as emulator:
        root, objects = _store(request.param, emulator, PREFIX)

        workdir = tmp_path_factory.mktemp(f"mlflow-{request.param}")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = workdir / "server.log"
        with log.open("ab") as out:
            server = subprocess.Popen(
                [str(python.parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
                 "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}", "--default-artifact-root", root,
                 "--no-serve-artifacts"],
                stdout=out, stderr=subprocess.STDOUT, env=_clean_env(), cwd=workdir, start_new_session=True)
        try:
            _wait_healthy(url, server, log)
            # This interpreter's MLflow (the same 3.17.2 client) has the GCS and Azure SDKs; the server's has not,
            # and needs none: without --serve-artifacts the client writes to the store itself.
            _run([sys.executable, str(HERE / "mlflow_cloud_populate.py"), url, str(workdir / "ids.json")],
                 _clean_env(**emulator.env), cwd=workdir)
        finally:
            _stop(server)
        ids = json.loads((workdir / "ids.json").read_text())
        assert ids["artifact_uri"].startswith(f"{root}/"), ids  # MLflow stored the store's own URI
        yield CloudSource(request.param, root, emulator.env, workdir, ids, objects,
                          lambda: _store(request.param, emulator, "dest"))


def _source_files(source: CloudSource) -> dict[str, bytes]:
    """MLflow's files keyed by their path below the artifact root."""
    found = {name[len(PREFIX) + 1:]: data for name, data in source.objects().items()}
    assert all(name.startswith(f"{source.ids['experiment']}/") for name in found), sorted(found)
    return found


def _imported_files(destination: Path) -> dict[str, bytes]:
    return {str(p.relative_to(destination)): p.read_bytes() for p in destination.rglob("*") if p.is_file()}


def _digests(files: dict[str, bytes]) -> dict[str, str]:
    return {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}


def _import(source: CloudSource, db: Path, workdir: Path, monkeypatch, destination: str | None = None):
    """Run the command in this process (so a test can make the store fail) with the emulator's settings."""
    from gateway.commands.import_mlflow import import_mlflow
    from tracking.artifacts.storage import repository_for_root

    repository_for_root.cache_clear()
    for name, value in source.env.items():
        monkeypatch.setenv(name, value)
    return CliRunner().invoke(import_mlflow, [
        "--from", f"sqlite:///{db}", "--artifacts", source.root, "--backend-store-uri",
        f"sqlite:///{workdir / 'mlgate.db'}", "--artifacts-destination", destination or str(workdir / "artifacts"),
        "--output", "json"], catch_exceptions=False)


def _as_proxied(source: CloudSource, tmp_path: Path) -> Path:
    """The same MLflow database as a server proxying to that store would have it: mlflow-artifacts:/ URIs."""
    db = tmp_path / "proxied.db"
    shutil.copy(source.db, db)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE runs SET artifact_uri = 'mlflow-artifacts:/' || substr(artifact_uri, ?)",
                     (len(source.root) + 2,))
        conn.execute("UPDATE logged_models SET artifact_location = 'mlflow-artifacts:/' || "
                     "substr(artifact_location, ?)", (len(source.root) + 2,))
        uris = [row[0] for row in conn.execute("SELECT artifact_uri FROM runs")]
    assert all(uri.startswith(f"mlflow-artifacts:/{source.ids['experiment']}/") for uri in uris), uris
    return db


@pytest.mark.parametrize("form", ["store URIs", "proxied URIs"])
def test_every_file_arrives_byte_for_byte(cloud_source, form, tmp_path, monkeypatch):
    db = cloud_source.db if form == "store URIs" else _as_proxied(cloud_source, tmp_path)
    expected = _source_files(cloud_source)
    # Two runs' files and the logged model's MLmodel, all below MLflow's root, as MLflow laid them out.
    run, second = cloud_source.ids["runs"]
    experiment = cloud_source.ids["experiment"]
    assert f"{experiment}/{run}/artifacts/model/weights.bin" in expected
    assert f"{experiment}/{run}/artifacts/notes/résumé final.txt" in expected
    assert f"{experiment}/{second}/artifacts/notes.txt" in expected
    assert f"{experiment}/models/{cloud_source.ids['logged_model']}/artifacts/MLmodel" in expected

    result = _import(cloud_source, db, tmp_path, monkeypatch)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["counts"]["artifacts"] == {"imported": len(expected), "present": 0, "skipped": 0}
    assert "artifacts" not in summary["skipped"]
    # mlgate keeps MLflow's experiment id here (it is free), so the layout below the root is the same.
    assert _digests(_imported_files(tmp_path / "artifacts")) == _digests(expected)
    with sqlite3.connect(tmp_path / "mlgate.db") as conn:
        assert conn.execute("SELECT artifact_uri FROM runs WHERE run_uuid = ?", (run,)).fetchone() == (
            f"mlflow-artifacts:/{experiment}/{run}/artifacts",)

    again = _import(cloud_source, db, tmp_path, monkeypatch)
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["counts"]["artifacts"] == {"imported": 0, "present": len(expected),
                                                                 "skipped": 0}
    assert _source_files(cloud_source) == expected  # the source is only read


def test_from_one_bucket_to_another(cloud_source, tmp_path, monkeypatch):
    """mlgate's own artifact root in the same kind of store: every object arrives under its prefix, unchanged."""
    expected = _source_files(cloud_source)
    destination, objects = cloud_source.new_store()
    result = _import(cloud_source, cloud_source.db, tmp_path, monkeypatch, destination)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["counts"]["artifacts"] == {"imported": len(expected), "present": 0,
                                                                  "skipped": 0}
    copied = objects()
    assert all(name.startswith("dest/") for name in copied), sorted(copied)
    assert _digests({name[len("dest/"):]: data for name, data in copied.items()}) == _digests(expected)


def test_locations_outside_the_given_root_are_not_read(cloud_source, tmp_path, monkeypatch):
    """A crafted database pointing runs at another prefix, another bucket or '..' gets nothing copied."""
    db = tmp_path / "crafted.db"
    shutil.copy(cloud_source.db, db)
    run, second = cloud_source.ids["runs"]
    scheme, rest = cloud_source.root.split("://", 1)
    store = rest.split("/", 1)[0]
    other_store = (f"wasbs://another-container@{store.split('@')[1]}" if scheme == "wasbs"
                   else f"{scheme}://another-bucket")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE runs SET artifact_uri = ? WHERE run_uuid = ?",
                     (f"{scheme}://{store}/elsewhere/{cloud_source.ids['experiment']}/{run}/artifacts", run))
        conn.execute("UPDATE runs SET artifact_uri = ? WHERE run_uuid = ?",
                     (f"{other_store}/{PREFIX}/{cloud_source.ids['experiment']}/{second}/artifacts", second))
        conn.execute("UPDATE logged_models SET artifact_location = ?",
                     (f"mlflow-artifacts:/{cloud_source.ids['experiment']}/../../{PREFIX}/x",))

    result = _import(cloud_source, db, tmp_path, monkeypatch)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["counts"]["artifacts"]["imported"] == 0
    assert summary["skipped"]["artifacts"] == {
        "runs whose artifacts were not read: the run's artifact location is outside --artifacts": 2,
        "logged models whose artifacts were not read: the run's artifact location is outside --artifacts": 1}
    assert _imported_files(tmp_path / "artifacts") == {}


def test_a_connection_dropped_midway_loses_nothing_and_a_rerun_completes(cloud_source, tmp_path, monkeypatch):
    import tracking.artifacts.azure as azure
    import tracking.artifacts.gcs as gcs
    import tracking.artifacts.s3 as s3

    expected = _source_files(cloud_source)
    reader = {"gcs": gcs._BlobReader, "azure": azure._BlobReader, "s3": s3._ObjectReader}[cloud_source.kind]
    real_read = reader.read
    big_reads = {"n": 0}

    def dropping_read(self, n):
        # The connection drops in the middle of model/weights.bin (5 MiB, read 1 MiB at a time): its first
        # piece has gone to the destination already; every smaller file reads normally.
        if self.size > 4 * 1024 * 1024:
            big_reads["n"] += 1
            if big_reads["n"] == 2:
                raise ConnectionResetError("connection reset by peer (x-goog-signature=SECRET)")
        return real_read(self, n)

    monkeypatch.setattr(reader, "read", dropping_read)
    failed = _import(cloud_source, cloud_source.db, tmp_path, monkeypatch)
    assert failed.exit_code == 1
    message = failed.stderr.strip().splitlines()[-1]
    assert message.startswith("mlgate: the import stopped: copying artifact '"), failed.stderr
    assert message.endswith("' stopped while reading it from MLflow's artifact store (ConnectionResetError). "
                            "That file was not written; everything imported before it is kept. Run the same "
                            "command again to continue."), message
    assert "SECRET" not in failed.output
    assert "Traceback" not in failed.output
    run = cloud_source.ids["runs"][0]
    stopped_at = f"{cloud_source.ids['experiment']}/{run}/artifacts/model/weights.bin"
    assert message.split("'")[1] == stopped_at
    partial = _imported_files(tmp_path / "artifacts")
    assert stopped_at not in partial  # not half written, and no temporary file left (all names are MLflow's)
    # The run's files sorted before weights.bin were copied (listings come in name order); none after it.
    run_dir = f"{cloud_source.ids['experiment']}/{run}/artifacts/"
    assert sorted(partial) == [name for name in sorted(expected) if name.startswith(run_dir) and name < stopped_at]
    assert len(partial) == 4
    for name, data in partial.items():  # whatever is there is whole
        assert data == expected[name], name

    monkeypatch.setattr(reader, "read", real_read)
    resumed = _import(cloud_source, cloud_source.db, tmp_path, monkeypatch)
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["counts"]["artifacts"] == {
        "imported": len(expected) - len(partial), "present": len(partial), "skipped": 0}
    assert _digests(_imported_files(tmp_path / "artifacts")) == _digests(expected)
    assert _source_files(cloud_source) == expected


def test_an_unreachable_or_missing_source_store_stops_before_anything_is_written(cloud_source, tmp_path,
                                                                                  monkeypatch):
    missing = (cloud_source.root.replace(cloud_source.root.split("@")[0].split("//")[1], "no-such-container", 1)
               if cloud_source.kind == "azure" else
               cloud_source.root.replace(cloud_source.root.split("/")[2], "no-such-bucket-here", 1))
    monkeypatch.setattr(cloud_source, "root", missing)
    result = _import(cloud_source, cloud_source.db, tmp_path, monkeypatch)
    assert result.exit_code == 1
    what = {"gcs": "bucket 'no-such-bucket-here' does not exist at the storage emulator at http://127.0.0.1:",
            "azure": "container 'no-such-container' in storage account 'devstoreaccount1' does not exist",
            "s3": "bucket 'no-such-bucket-here' does not exist at the S3 endpoint http://127.0.0.1:"}[cloud_source.kind]
    assert f"mlgate: --artifacts: {what}" in result.stderr, result.stderr
    assert not (tmp_path / "mlgate.db").exists()
