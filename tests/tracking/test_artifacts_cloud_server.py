"""A real ``mlgate server`` with ``--artifacts-destination gs://...`` or ``wasbs://...`` on a real local emulator.

Startup validation (syntax, a missing bucket or container, refused or missing credentials, an unreachable
endpoint: each named, secrets never printed), 100 MiB streamed both ways with bounded server memory, no object
when a client disconnects mid-upload, path traversal refused with nothing changed in the store, and honest
requests kept under the configured prefix.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from gateway.settings import SettingsError
from tests.conftest import start_server
from tests.services import AZURITE_KEY, azurite_server, free_port, gcs_server
from tests.tracking.test_artifacts_s3_server import PeakRss
from tests.tracking.test_artifacts_traversal import (
    EXPLOITS,
    OPERATIONS,
    PAYLOAD,
    SYMLINK,
    assert_refused,
    raw_request,
    target_of,
)
from tracking.artifacts.storage import DESTINATION_OPTION

# CI's PostgreSQL pass leaves these out: they test artifact storage, not the database.
pytestmark = [pytest.mark.e2e, pytest.mark.database_incidental]

A = "/api/2.0/mlflow"
R = "/api/2.0/mlflow-artifacts"
PREFIX = "tenant/mlgate"
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def gcs():
    with gcs_server() as server:
        yield server


@pytest.fixture(scope="module")
def azurite():
    with azurite_server() as server:
        yield server


# --- startup validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(("uri", "problem"), [
    ("gs://", "the bucket name is missing (expected gs://<bucket>/<prefix>)"),
    ("gs://Bad_Bucket/x", "'Bad_Bucket' is not a valid bucket name (3-63 lowercase letters, digits, '-', '_', '.'; "
                          "not starting with 'goog')"),
    ("gs://googbucket/x", "'googbucket' is not a valid bucket name (3-63 lowercase letters, digits, '-', '_', '.'; "
                          "not starting with 'goog')"),
    ("gs://user:SECRETpass@bucket/x", "credentials and ports do not belong in a gs:// URI; use Application Default "
                                      "Credentials (GOOGLE_APPLICATION_CREDENTIALS or an attached service account)"),
    ("gs://bucket/a/../b", "the prefix is not a plain relative path: Invalid path: '..' segments are not allowed."),
    ("gs://bucket/a?generation=1", "a query string or fragment is not allowed"),
    ("wasbs://c@acct.blob.core.windows.net/x", "the container name must be 3-63 lowercase letters, digits and "
                                               "single hyphens"),
    ("wasbs://box@evil.example.com/x", "the host must be <account>.blob.core.windows.net (or the Azure China or "
                                       "Azure Government blob endpoint), with a 3-24 character lowercase account "
                                       "name"),
    ("wasbs://box:SECRETkey@acct.blob.core.windows.net/x", "expected wasbs://<container>@<account>.blob.core."
                                                           "windows.net/<prefix> (credentials do not belong in the "
                                                           "URI; set AZURE_STORAGE_* variables)"),
    ("wasbs://box@acct.blob.core.windows.net/x?sv=2024&sig=SECRETsig", "a query string or fragment is not allowed "
                                                                        "(give a SAS in AZURE_STORAGE_SAS_TOKEN)"),
    ("wasbs://box@acct.blob.core.windows.net/a/%2e%2e/b", "the prefix is not a plain relative path: Invalid path: "
                                                          "percent-encoded characters must be encoded once, not "
                                                          "twice."),
    ("wasb://box@acct.blob.core.windows.net/x", "the URI must start with wasbs:// (wasb://, without TLS, is refused)"),
    ("abfss://box@acct.dfs.core.windows.net/x", "abfss:// (ADLS Gen2) is not supported; name the same account's "
                                                "blob endpoint instead: wasbs://<container>@<account>.blob.core."
                                                "windows.net/<prefix>"),
])
def test_malformed_destination_is_refused_at_startup(app_factory, uri, problem):
    with pytest.raises(SettingsError) as raised:
        app_factory(artifacts_destination=uri)
    assert raised.value.problems == [f"{DESTINATION_OPTION}: {problem}"]
    assert "SECRET" not in str(raised.value)


def test_gcs_missing_bucket_and_unreachable_emulator_are_listed_with_other_problems(app_factory, gcs, monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.endpoint_url)
    with pytest.raises(SettingsError) as raised:
        app_factory(artifacts_destination="gs://no-such-bucket/x", port=0)
    assert raised.value.problems[-1] == (
        f"{DESTINATION_OPTION}: bucket 'no-such-bucket' does not exist at the storage emulator at {gcs.endpoint_url}")
    assert any(p.startswith("--port") for p in raised.value.problems)  # every problem, not just the first

    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", dead)
    with pytest.raises(SettingsError) as raised:
        app_factory(artifacts_destination="gs://any-bucket/x")
    assert raised.value.problems == [
        f"{DESTINATION_OPTION}: the storage emulator at {dead} is not reachable (ConnectionError); "
        "check STORAGE_EMULATOR_HOST and the network"]


def test_gcs_missing_credentials_are_named_at_startup(app_factory, monkeypatch, tmp_path):
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    # No key file, no gcloud configuration, and no metadata server probe: ADC has nowhere left to look.
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    with pytest.raises(SettingsError) as raised:
        app_factory(artifacts_destination="gs://some-bucket/x")
    assert raised.value.problems == [
        f"{DESTINATION_OPTION}: no Google Cloud credentials found (set GOOGLE_APPLICATION_CREDENTIALS, run "
        "`gcloud auth application-default login`, or attach a service account)"]


def test_azure_missing_container_refused_key_and_unreachable_endpoint(app_factory, azurite, monkeypatch):
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    with pytest.raises(SettingsError) as raised:
        app_factory(artifacts_destination=azurite.uri("no-such-container", "x"), port=0)
    assert raised.value.problems[-1] == (
        f"{DESTINATION_OPTION}: container 'no-such-container' in storage account 'devstoreaccount1' does not exist")
    assert any(p.startswith("--port") for p in raised.value.problems)

    container = azurite.new_container()
    wrong = base64.b64encode(b"SECRET-not-the-key-" * 3).decode()
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string.replace(AZURITE_KEY, wrong))
    with pytest.raises(SettingsError) as raised:
        app_factory(artifacts_destination=azurite.uri(container, "x"))
    # Azurite answers a wrong key's signature with 403, as Azure does: the credentials are named, never shown.
    assert raised.value.problems == [
        f"{DESTINATION_OPTION}: access to container '{container}' in storage account 'devstoreaccount1' was denied "
        "for the credentials from AZURE_STORAGE_CONNECTION_STRING (they need to list, read, write and delete blobs)"]
    assert wrong not in str(raised.value)

    dead = azurite.connection_string.replace(azurite.blob_endpoint.split("/")[2], f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", dead)
    with pytest.raises(SettingsError) as raised:
        app_factory(artifacts_destination=azurite.uri(container, "x"))
    assert raised.value.problems == [
        f"{DESTINATION_OPTION}: the blob endpoint of storage account 'devstoreaccount1' is not reachable "
        "(ServiceRequestError); check the network and AZURE_STORAGE_CONNECTION_STRING"]

    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    with pytest.raises(SettingsError) as raised:
        app_factory(artifacts_destination=f"wasbs://{container}@otheraccount.blob.core.windows.net/x")
    assert raised.value.problems == [
        f"{DESTINATION_OPTION}: AZURE_STORAGE_CONNECTION_STRING is for another storage account than "
        "'otheraccount' named by the destination"]


def test_server_command_exits_with_the_problem_and_no_credentials(tmp_path, azurite):
    wrong = base64.b64encode(b"do-not-print-this-key" * 2).decode()
    env = {**os.environ, "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string.replace(AZURITE_KEY, wrong)}
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "server", "--port", str(free_port()),
         "--backend-store-uri", f"sqlite:///{tmp_path / 'db.sqlite'}",
         "--artifacts-destination", azurite.uri("missing-c", "x")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2, result.stderr
    assert "was denied for the credentials from AZURE_STORAGE_CONNECTION_STRING" in result.stderr
    assert wrong not in result.stderr + result.stdout


# --- a live server on each store ------------------------------------------------------------------------


class Backend:
    """A live server on one emulator, and that emulator's bucket or container as the test sees it."""

    def __init__(self, kind, emulator, tmp_path_factory):
        self.kind = kind
        if kind == "gcs":
            self.bucket = emulator.new_bucket()
            bucket = emulator.client().bucket(self.bucket)
            self._list = lambda: {b.name: b.etag for b in emulator.client().list_blobs(self.bucket)}
            self.put_raw = lambda name, data: bucket.blob(name).upload_from_string(data)
            uri = f"gs://{self.bucket}/{PREFIX}"
        else:
            self.bucket = emulator.new_container()
            container = emulator.client().get_container_client(self.bucket)
            self._list = lambda: {b.name: b.etag for b in container.list_blobs()}
            self.put_raw = lambda name, data: container.upload_blob(name, data, overwrite=True)
            uri = emulator.uri(self.bucket, PREFIX)
        # Something outside the configured prefix that no request may read, change or delete.
        self.put_raw("outside/secret.txt", b"top secret")
        self.put_raw("tenant/other/1/run/artifacts/x.txt", b"top secret")
        workdir = tmp_path_factory.mktemp(f"{kind}server")
        self.server = start_server(workdir, f"sqlite:///{workdir / 'mlgate.db'}", "--artifacts-destination", uri,
                                   env=emulator.env)
        self.admin = httpx.Client(base_url=self.server.url, auth=self.server.admin_auth, timeout=300)
        exp = self.admin.post(f"{A}/experiments/create", json={"name": f"{kind}-live"}).json()["experiment_id"]
        run = self.admin.post(f"{A}/runs/create", json={"experiment_id": exp}).json()["run"]["info"]["run_id"]
        self.base = f"{exp}/{run}/artifacts"

    def objects(self) -> dict[str, str]:
        """Every name in the bucket or container, and its ETag."""
        return self._list()

    def stop(self) -> None:
        self.admin.close()
        self.server.stop()


@pytest.fixture(scope="module", params=["gcs", "azure"])
def live(request, tmp_path_factory):
    start = gcs_server if request.param == "gcs" else azurite_server
    with start() as emulator:
        backend = Backend(request.param, emulator, tmp_path_factory)
        yield backend
        backend.stop()


def test_100_mib_upload_and_download_stream_with_bounded_server_memory(live):
    size = 100 * MIB
    block = os.urandom(MIB)
    digest = hashlib.sha256()

    def body():
        for i in range(size // MIB):
            chunk = block[:-4] + i.to_bytes(4, "big")
            digest.update(chunk)
            yield chunk

    # Warm up the server's client and thread pool, so the measurement sees only the transfer.
    assert live.admin.put(f"{R}/artifacts/{live.base}/warm.bin", content=os.urandom(9 * MIB)).status_code == 200
    with PeakRss(live.server.process.pid) as upload:
        put = live.admin.put(f"{R}/artifacts/{live.base}/big.bin", content=body())
    assert put.status_code == 200, put.text
    # Streamed: the server held about one 8 MiB chunk (plus copies in flight), never the 100 MiB file.
    assert upload.growth < 64 * MIB, upload.growth
    assert f"{PREFIX}/{live.base}/big.bin" in live.objects()

    received = hashlib.sha256()
    with PeakRss(live.server.process.pid) as download, \
            live.admin.stream("GET", f"{R}/artifacts/{live.base}/big.bin") as got:
        assert got.status_code == 200
        assert got.headers["content-length"] == str(size)
        for chunk in got.iter_bytes():
            received.update(chunk)
    assert received.hexdigest() == digest.hexdigest()
    assert download.growth < 64 * MIB, download.growth


def test_client_disconnect_mid_upload_leaves_no_object(live):
    host, port = live.server.url.removeprefix("http://").split(":")
    credentials = base64.b64encode(":".join(live.server.admin_auth).encode()).decode()
    head = (f"PUT {R}/artifacts/{live.base}/cut.bin HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Basic {credentials}\r\nContent-Length: {64 * MIB}\r\n\r\n").encode()
    conn = socket.create_connection((host, int(port)), timeout=30)
    conn.sendall(head)
    for _ in range(20):  # past two 8 MiB chunks: the upload session / staged blocks exist
        conn.sendall(os.urandom(MIB))
    time.sleep(2)
    conn.close()  # the client goes away with 44 MiB still owed
    time.sleep(3)  # the server notices, aborts the upload and stays healthy; the object never appears
    status, _ = raw_request(live.server, "GET", f"{R}/artifacts?path={live.base}")
    assert status == 200
    assert f"{PREFIX}/{live.base}/cut.bin" not in live.objects()
    # And the same name can then be written whole.
    assert live.admin.put(f"{R}/artifacts/{live.base}/cut.bin", content=b"whole").status_code == 200
    assert live.admin.get(f"{R}/artifacts/{live.base}/cut.bin").content == b"whole"


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("exploit", [e for e in EXPLOITS if e.message != SYMLINK], ids=str)
def test_traversal_is_refused(live, exploit, operation):
    before = live.objects()
    method, target = target_of(operation, exploit.wire)
    status, body = raw_request(live.server, method, target, PAYLOAD if method == "PUT" else b"")
    assert_refused(status, body, exploit)
    assert live.objects() == before
    assert all(key.startswith(f"{PREFIX}/") or key in ("outside/secret.txt", "tenant/other/1/run/artifacts/x.txt")
               for key in before)


def test_honest_requests_stay_under_the_prefix(live):
    """Control for the refusals: the same harness writes, lists, reads and deletes under the run's prefix."""
    status, _ = raw_request(live.server, "PUT", f"{R}/artifacts/{live.base}/dir%2Fnew%20file.txt", b"hello")
    assert status == 200
    assert f"{PREFIX}/{live.base}/dir/new file.txt" in live.objects()
    listing = live.admin.get(f"{R}/artifacts", params={"path": f"{live.base}/dir"}).json()
    assert listing == {"files": [{"path": "new file.txt", "is_dir": False, "file_size": 5}]}
    status, body = raw_request(live.server, "GET", f"{R}/artifacts/{live.base}/dir/new%20file.txt")
    assert (status, body) == (200, b"hello")
    status, _ = raw_request(live.server, "DELETE", f"{R}/artifacts/{live.base}/dir")
    assert status == 200
    assert not any(key.startswith(f"{PREFIX}/{live.base}/dir") for key in live.objects())


def test_experiments_cannot_point_their_artifacts_at_the_store(live):
    for i, location in enumerate((f"gs://{live.bucket}/outside", f"wasbs://{live.bucket}@devstoreaccount1.blob.core."
                                  "windows.net/outside", f"gs://{live.bucket}/{PREFIX}/1")):
        made = live.admin.post(f"{A}/experiments/create", json={"name": f"bad-{i}", "artifact_location": location})
        assert made.status_code == 400, made.text
        assert made.json()["error_code"] == "INVALID_PARAMETER_VALUE"
