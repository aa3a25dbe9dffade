"""The real ``mlflow`` client logging and downloading artifacts through a server whose artifacts live in S3.

Always on (the default suite covers S3 this way); ``MLGATE_E2E_ARTIFACTS=s3`` runs the whole real-client
suite on S3 besides.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.conftest import start_server
from tests.services import s3_server

pytestmark = pytest.mark.e2e

PREFIX = "client/root"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with s3_server() as s3:
        bucket = s3.new_bucket()
        workdir = tmp_path_factory.mktemp("s3client")
        server = start_server(workdir, f"sqlite:///{workdir / 'mlgate.db'}",
                              "--artifacts-destination", f"s3://{bucket}/{PREFIX}", env=s3.env)
        yield server, s3, bucket
        server.stop()


@pytest.fixture
def mlflow(world, monkeypatch):
    import mlflow

    server, _, _ = world
    # The client talks only to mlgate (mlflow-artifacts:/ URIs); it needs no S3 endpoint or credentials.
    for name in ("MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", server.admin_username)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", server.admin_password)
    mlflow.set_tracking_uri(server.url)
    yield mlflow
    if mlflow.active_run() is not None:
        mlflow.end_run()


def test_real_client_logs_lists_and_downloads_artifacts_in_s3(mlflow, world, tmp_path):
    _, s3, bucket = world
    source = tmp_path / "src"
    (source / "nested").mkdir(parents=True)
    (source / "notes.txt").write_text("hello from s3")
    (source / "nested" / "data.csv").write_text("a,b\n1,2\n")
    big = source / "weights.bin"
    big.write_bytes(os.urandom(20 * 1024 * 1024))  # above the server's 8 MiB part size: a multipart upload

    experiment_id = mlflow.set_experiment("s3-client").experiment_id
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(source), artifact_path="bundle")
        mlflow.log_dict({"k": [1, 2]}, "config/settings.json")
    run_id = run.info.run_id
    assert run.info.artifact_uri == f"mlflow-artifacts:/{experiment_id}/{run_id}/artifacts"

    listed = {f.path: f.is_dir for f in mlflow.artifacts.list_artifacts(run_id=run_id, artifact_path="bundle")}
    assert listed == {"bundle/nested": True, "bundle/notes.txt": False, "bundle/weights.bin": False}
    assert mlflow.artifacts.load_dict(f"runs:/{run_id}/config/settings.json") == {"k": [1, 2]}

    out = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="bundle", dst_path=str(tmp_path / "o")))
    assert (out / "notes.txt").read_text() == "hello from s3"
    assert (out / "nested" / "data.csv").read_text() == "a,b\n1,2\n"
    assert hashlib.sha256((out / "weights.bin").read_bytes()).digest() == hashlib.sha256(big.read_bytes()).digest()

    # The objects are where the server's layout puts them, under the configured prefix only.
    client = s3.client()
    keys = {item["Key"] for item in client.list_objects_v2(Bucket=bucket)["Contents"]}
    run_root = f"{PREFIX}/{experiment_id}/{run_id}/artifacts"
    assert {f"{run_root}/bundle/notes.txt", f"{run_root}/bundle/nested/data.csv", f"{run_root}/bundle/weights.bin",
            f"{run_root}/config/settings.json"} <= keys
    assert all(key.startswith(f"{PREFIX}/") for key in keys)
    head = client.head_object(Bucket=bucket, Key=f"{run_root}/bundle/weights.bin")
    assert head["ETag"].strip('"').endswith("-3")  # 8 + 8 + 4 MiB
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_real_client_model_round_trip_through_s3(mlflow, world):
    class Echo(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input):
            return model_input

    mlflow.set_experiment("s3-models")
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(name="echo", python_model=Echo())
    names = {f.path for f in mlflow.artifacts.list_artifacts(info.model_uri)}
    assert {"MLmodel", "python_model.pkl", "requirements.txt"} <= names
    loaded = mlflow.pyfunc.load_model(info.model_uri)
    assert loaded.predict([3, 4]) == [3, 4]


def test_real_client_with_proxy_multipart_upload_enabled_falls_back_to_a_plain_upload(mlflow, world, tmp_path,
                                                                                     monkeypatch):
    # MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD makes the client ask the server for a multipart upload first
    # (presigned part URLs, which would bypass the gateway): mlgate answers 501 NOT_IMPLEMENTED, and the
    # client must fall back to a streamed PUT, which the server stores in S3 as its own multipart upload.
    monkeypatch.setenv("MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD", "true")
    monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE", str(1024 * 1024))
    monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE", str(5 * 1024 * 1024))
    server, s3, bucket = world
    big = tmp_path / "weights.bin"
    big.write_bytes(os.urandom(12 * 1024 * 1024))
    mlflow.set_experiment("s3-proxy-multipart")
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(big), artifact_path="model")
    run_id = run.info.run_id
    out = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="model/weights.bin",
                                                   dst_path=str(tmp_path / "o")))
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(big.read_bytes()).digest()
    # The client did ask for the multipart upload (and was refused), then uploaded through the gateway.
    log = server.log()
    assert "artifacts.mpu_create" in log
    assert "artifacts.mpu_complete" not in log
    client = s3.client()
    run_root = f"{PREFIX}/{run.info.experiment_id}/{run_id}/artifacts"
    head = client.head_object(Bucket=bucket, Key=f"{run_root}/model/weights.bin")
    assert head["ContentLength"] == 12 * 1024 * 1024
    assert head["ETag"].strip('"').endswith("-2")  # the server's own 8 MiB parts: 8 + 4 MiB
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
