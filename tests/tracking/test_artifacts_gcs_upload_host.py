"""A resumable upload session on another host than the configured storage endpoint gets no byte.

The session URI of a GCS resumable upload comes from the storage API's answer (its ``Location`` header) and
authorizes whoever holds it; mlgate then PUTs the artifact's chunks to it. An endpoint that is misconfigured,
compromised or spoofed could name any host there, so the repository sends chunks only to the endpoint's own
origin (scheme, host and port). A small stand-in for the JSON API answers the session request with a
``Location`` chosen by each case; a second server records whatever reaches the "other host".
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from tests.services import require_gcs_emulator
from tracking.artifacts.paths import parse_artifact_path
from tracking.errors import MlflowError

BUCKET = "upload-host-test"
CHUNK = 256 * 1024
SESSION_TOKEN = "upload_id=SESSIONsecret0123"


class _Recorder(BaseHTTPRequestHandler):
    """Records every request (method, path, body size) and answers as the storage JSON API would."""

    def log_message(self, *args) -> None:  # keep the test output clean
        pass

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _answer(self, status: int, body: dict | None = None, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self, body: bytes) -> None:
        self.server.requests.append((self.command, self.path, len(body)))

    def do_GET(self) -> None:
        self._record(b"")
        if self.path.startswith(f"/storage/v1/b/{BUCKET}/o?"):
            self._answer(200, {"kind": "storage#objects"})  # listing: nothing there yet
        else:
            self._answer(404, {"error": {"code": 404, "message": "No such object"}})

    def do_POST(self) -> None:
        self._record(self._body())
        if "uploadType=resumable" in self.path:
            self._answer(200, {}, {"Location": self.server.session_location})
        else:
            self._answer(404, {"error": {"code": 404, "message": "not here"}})

    def do_PUT(self) -> None:
        body = self._body()
        self._record(body)
        content_range = self.headers.get("Content-Range", "")
        if content_range.endswith("/*"):  # a chunk: stored, more expected
            last = int(content_range.split(" ")[1].split("-")[1].split("/")[0])
            self._answer(308, None, {"Range": f"bytes=0-{last}"})
        else:
            self._answer(200, {"name": "x", "bucket": BUCKET, "size": "0", "generation": "1"})

    def do_DELETE(self) -> None:
        self._record(b"")
        self._answer(499, {})


@contextmanager
def _server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.requests = []
    server.session_location = ""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def api_and_other(monkeypatch):
    require_gcs_emulator()  # the SDK
    with _server() as api, _server() as other:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{api.server_port}")
        yield api, other


def _repository():
    from tracking.artifacts.gcs import GcsArtifactRepository, GcsDestination, make_client

    return GcsArtifactRepository(GcsDestination(BUCKET, "prefix"), make_client(), chunk_bytes=CHUNK)


def _upload(repository, size: int) -> None:
    writer = repository.open_writer(parse_artifact_path("1/0123456789abcdef0123456789abcdef/artifacts/m.bin",
                                                        for_write=True))
    try:
        writer.write(os.urandom(size))  # more than a chunk: a resumable session is opened and fed
        writer.commit()
    except BaseException:
        writer.abort()
        raise


def _foreign(api_port: int, other_port: int) -> dict[str, str]:
    return {
        "another port": f"http://127.0.0.1:{other_port}/upload?{SESSION_TOKEN}",
        "another host name for the same machine": f"http://localhost:{other_port}/upload?{SESSION_TOKEN}",
        "the endpoint's host as user info": f"http://127.0.0.1:{api_port}@127.0.0.1:{other_port}/u?{SESSION_TOKEN}",
    }


@pytest.mark.parametrize("case", ["another port", "another host name for the same machine",
                                  "the endpoint's host as user info"])
def test_a_session_on_another_host_gets_no_byte(api_and_other, case, caplog):
    api, other = api_and_other
    api.session_location = _foreign(api.server_port, other.server_port)[case]
    caplog.set_level(logging.DEBUG)
    with pytest.raises(MlflowError) as raised:
        _upload(_repository(), 3 * CHUNK + 5)
    assert raised.value.status == 503
    assert raised.value.message == "The artifact store is temporarily unavailable."
    assert other.requests == []  # not a chunk, not even the cancellation
    assert [r for r in api.requests if r[0] in ("PUT", "DELETE")] == []
    assert "SESSIONsecret" not in caplog.text  # the session URI is a bearer capability: never logged


def test_a_session_on_the_endpoint_itself_is_fed_chunk_by_chunk(api_and_other):
    """The same stand-in accepts the upload when the session stays on the endpoint (the check is no blanket refusal)."""
    api, other = api_and_other
    api.session_location = f"http://127.0.0.1:{api.server_port}/upload/session?{SESSION_TOKEN}"
    _upload(_repository(), 3 * CHUNK + 5)
    puts = [r for r in api.requests if r[0] == "PUT"]
    assert [urlsplit(path).path for _, path, _ in puts] == ["/upload/session"] * 4
    assert sum(size for _, _, size in puts) == 3 * CHUNK + 5
    assert other.requests == []
