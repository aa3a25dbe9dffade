"""A real ``mlgate server`` with ``--artifacts-destination s3://...`` on a real S3 API (moto's server).

Startup validation of the destination, streamed uploads and downloads with bounded server memory,
no leftover multipart upload when a client disconnects, path traversal refused with nothing written
outside the configured prefix, and experiments that cannot point their artifacts anywhere else.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from gateway.settings import SettingsError
from tests.conftest import start_server
from tests.services import free_port, s3_server
from tests.tracking.test_artifacts_traversal import (
    EXPLOITS,
    OPERATIONS,
    PAYLOAD,
    SYMLINK,
    assert_refused,
    raw_request,
    target_of,
)
from tracking.artifacts.s3 import parse_s3_destination
from tracking.artifacts.storage import DESTINATION_OPTION

# CI's PostgreSQL pass leaves these out: they test artifact storage, not the database.
pytestmark = [pytest.mark.e2e, pytest.mark.database_incidental]

A = "/api/2.0/mlflow"
R = "/api/2.0/mlflow-artifacts"
PREFIX = "tenant/mlgate"
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def s3():
    with s3_server() as server:
        yield server


# --- startup validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(("uri", "problem"), [
    ("s3://", "the bucket name is missing (expected s3://<bucket>/<prefix>)"),
    ("s3:///prefix", "the bucket name is missing (expected s3://<bucket>/<prefix>)"),
    ("s3://Bad_Bucket/x", "'Bad_Bucket' is not a valid bucket name (3-63 lowercase letters, digits, '.', '-')"),
    ("s3://AKIAEXAMPLE:wJalrSECRET@bucket/x", "credentials and ports do not belong in an s3:// URI; "
                                              "set AWS_* variables and MLFLOW_S3_ENDPOINT_URL instead"),
    ("s3://bucket/a/../b", "the prefix is not a plain relative path: Invalid path: '..' segments are not allowed."),
    ("s3://bucket/a?versionId=1", "a query string or fragment is not allowed"),
])
def test_malformed_destination_is_refused_at_startup(app_factory, uri, problem):
    with pytest.raises(SettingsError) as raised:
        app_factory(artifacts_destination=uri)
    assert f"{DESTINATION_OPTION}: {problem}" in raised.value.problems
    assert "SECRET" not in str(raised.value)


def test_unsupported_scheme_is_refused_at_startup(app_factory):
    with pytest.raises(SettingsError) as raised:
        app_factory(artifacts_destination="ftp://host/x")
    assert raised.value.problems == [
        f"{DESTINATION_OPTION}: the 'ftp' scheme is not supported (use a directory, s3://bucket/prefix, "
        "gs://bucket/prefix or wasbs://container@account.blob.core.windows.net/prefix)"]


def test_unreachable_endpoint_and_missing_bucket_are_listed_with_other_problems(app_factory, settings, s3,
                                                                                monkeypatch):
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as raised:
        app_factory(artifacts_destination="s3://no-such-bucket/x", port=0)
    assert raised.value.problems[-1] == (
        f"{DESTINATION_OPTION}: bucket 'no-such-bucket' does not exist at the S3 endpoint {s3.endpoint_url}")
    assert any(p.startswith("--port") for p in raised.value.problems)  # every problem, not just the first

    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", dead.replace("http://", "http://user:hunter2pass@"))
    with pytest.raises(SettingsError) as raised:
        app_factory(artifacts_destination="s3://any-bucket/x")
    assert raised.value.problems == [
        f"{DESTINATION_OPTION}: the S3 endpoint {dead} is not reachable (EndpointConnectionError); "
        "check MLFLOW_S3_ENDPOINT_URL and the network"]
    assert "hunter2pass" not in str(raised.value)


def test_missing_credentials_are_named_at_startup(app_factory, s3, monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", s3.endpoint_url)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    # No shared files and no instance metadata: boto3 has nowhere left to look.
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    bucket = s3.new_bucket()
    with pytest.raises(SettingsError) as raised:
        app_factory(artifacts_destination=f"s3://{bucket}/x")
    assert raised.value.problems == [
        f"{DESTINATION_OPTION}: no S3 credentials found "
        "(set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"]


def test_server_command_exits_with_the_problem_and_no_credentials(tmp_path, s3):
    env = {**os.environ, **s3.env, "AWS_SECRET_ACCESS_KEY": "do-not-print-this-secret"}
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "server", "--port", str(free_port()),
         "--backend-store-uri", f"sqlite:///{tmp_path / 'db.sqlite'}", "--artifacts-destination", "s3://missing-b/x"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2, result.stderr
    assert "bucket 'missing-b' does not exist" in result.stderr
    assert "do-not-print-this-secret" not in result.stderr + result.stdout
    assert "mlgate-test-key" not in result.stderr + result.stdout


# --- a live server on S3 --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live(s3, tmp_path_factory):
    bucket = s3.new_bucket()
    # Something outside the configured prefix that no request may read, change or delete.
    s3.client().put_object(Bucket=bucket, Key="outside/secret.txt", Body=b"top secret")
    s3.client().put_object(Bucket=bucket, Key="tenant/other/1/run/artifacts/x.txt", Body=b"top secret")
    workdir = tmp_path_factory.mktemp("s3server")
    server = start_server(workdir, f"sqlite:///{workdir / 'mlgate.db'}",
                          "--artifacts-destination", f"s3://{bucket}/{PREFIX}", env=s3.env)
    admin = httpx.Client(base_url=server.url, auth=server.admin_auth, timeout=120)
    exp = admin.post(f"{A}/experiments/create", json={"name": "s3-live"}).json()["experiment_id"]
    run = admin.post(f"{A}/runs/create", json={"experiment_id": exp}).json()["run"]["info"]["run_id"]
    yield server, admin, bucket, f"{exp}/{run}/artifacts"
    admin.close()
    server.stop()


def objects(s3, bucket) -> dict[str, str]:
    """Every key in the bucket and its ETag."""
    found = {}
    for page in s3.client().get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            found[item["Key"]] = item["ETag"]
    return found


class PeakRss:
    """Samples a process's resident memory while a block runs; ``growth`` is the peak above the start."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peak = self.start = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _rss(self) -> int:
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._rss())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def growth(self) -> int:
        return self.peak - self.start


def test_large_upload_and_download_stream_with_bounded_server_memory(live, s3):
    server, admin, bucket, base = live
    size = 160 * MIB
    block = os.urandom(MIB)
    digest = hashlib.sha256()

    def body():
        for i in range(size // MIB):
            chunk = block[:-4] + i.to_bytes(4, "big")
            digest.update(chunk)
            yield chunk

    # Warm up the server's S3 client and thread pool, so the measurement sees only the transfer.
    assert admin.put(f"{R}/artifacts/{base}/warm.bin", content=os.urandom(9 * MIB)).status_code == 200
    with PeakRss(server.process.pid) as upload:
        put = admin.put(f"{R}/artifacts/{base}/big.bin", content=body())
    assert put.status_code == 200, put.text
    # Streamed: the server held about one 8 MiB part (plus copies in flight), never the 160 MiB file.
    assert upload.growth < 64 * MIB, upload.growth
    head = s3.client().head_object(Bucket=bucket, Key=f"{PREFIX}/{base}/big.bin")
    assert head["ContentLength"] == size
    assert head["ETag"].strip('"').endswith("-20")  # 20 parts of 8 MiB
    assert s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []

    received = hashlib.sha256()
    with PeakRss(server.process.pid) as download, admin.stream("GET", f"{R}/artifacts/{base}/big.bin") as got:
        assert got.status_code == 200
        assert got.headers["content-length"] == str(size)
        for chunk in got.iter_bytes():
            received.update(chunk)
    assert received.hexdigest() == digest.hexdigest()
    assert download.growth < 64 * MIB, download.growth


def test_client_disconnect_mid_upload_leaves_no_object_and_no_parts(live, s3):
    server, _, bucket, base = live
    host, port = server.url.removeprefix("http://").split(":")
    credentials = base64.b64encode(":".join(server.admin_auth).encode()).decode()
    head = (f"PUT {R}/artifacts/{base}/cut.bin HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Basic {credentials}\r\nContent-Length: {64 * MIB}\r\n\r\n").encode()
    conn = socket.create_connection((host, int(port)), timeout=30)
    conn.sendall(head)
    for _ in range(20):
        conn.sendall(os.urandom(MIB))
    deadline = time.monotonic() + 60
    while not s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads"):
        assert time.monotonic() < deadline, "the server never started a multipart upload"
        time.sleep(0.1)
    conn.close()  # the client goes away with 44 MiB still owed
    while s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads"):
        assert time.monotonic() < deadline, "the multipart upload was not aborted"
        time.sleep(0.1)
    assert f"{PREFIX}/{base}/cut.bin" not in objects(s3, bucket)


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("exploit", [e for e in EXPLOITS if e.message != SYMLINK], ids=str)
def test_traversal_is_refused_on_s3(live, s3, exploit, operation):
    server, _, bucket, _ = live
    before = objects(s3, bucket)
    method, target = target_of(operation, exploit.wire)
    status, body = raw_request(server, method, target, PAYLOAD if method == "PUT" else b"")
    assert_refused(status, body, exploit)
    assert objects(s3, bucket) == before
    assert all(key.startswith(f"{PREFIX}/") or key in ("outside/secret.txt", "tenant/other/1/run/artifacts/x.txt")
               for key in before)


def test_honest_requests_stay_under_the_prefix(live, s3):
    """Control for the refusals: the same harness writes, lists, reads and deletes under the run's prefix."""
    server, admin, bucket, base = live
    status, _ = raw_request(server, "PUT", f"{R}/artifacts/{base}/dir%2Fnew%20file.txt", b"hello")
    assert status == 200
    assert f"{PREFIX}/{base}/dir/new file.txt" in objects(s3, bucket)
    listing = admin.get(f"{R}/artifacts", params={"path": f"{base}/dir"}).json()
    assert listing == {"files": [{"path": "new file.txt", "is_dir": False, "file_size": 5}]}
    status, body = raw_request(server, "GET", f"{R}/artifacts/{base}/dir/new%20file.txt")
    assert (status, body) == (200, b"hello")
    status, _ = raw_request(server, "DELETE", f"{R}/artifacts/{base}/dir")
    assert status == 200
    assert not any(key.startswith(f"{PREFIX}/{base}/dir") for key in objects(s3, bucket))


def test_experiments_cannot_point_their_artifacts_at_the_bucket(live, s3):
    server, admin, bucket, _ = live
    for i, location in enumerate((f"s3://{bucket}/outside", f"s3://{bucket}/{PREFIX}/1", "s3://other-bucket/x",
                                  f"file://{server.workdir}")):
        made = admin.post(f"{A}/experiments/create", json={"name": f"s3-bad-{i}", "artifact_location": location})
        assert made.status_code == 400, made.text
        assert made.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    made = admin.post(f"{A}/experiments/create", json={"name": "s3-default"}).json()["experiment_id"]
    got = admin.get(f"{A}/experiments/get", params={"experiment_id": made}).json()["experiment"]
    # The client sees the proxied location, as MLflow's server reports it with --artifacts-destination.
    assert got["artifact_location"] == f"mlflow-artifacts:/{made}"


def test_destination_parsing_keeps_keys_under_the_prefix():
    destination, problems = parse_s3_destination("s3://bucket/a/./b/")
    assert problems == []
    assert (destination.bucket, destination.prefix) == ("bucket", "a/b")
    assert destination.key("1/r/artifacts/x") == "a/b/1/r/artifacts/x"
    top, _ = parse_s3_destination("s3://bucket")
    assert top.key("1/r/artifacts/x") == "1/r/artifacts/x"
