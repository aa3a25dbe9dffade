"""A client that hangs up in the middle of an upload: nothing is written and nothing is logged as a server fault."""

from __future__ import annotations

import base64
import socket
import time
from pathlib import Path

import httpx

from tests.conftest import LiveServer

MIB = 1024 * 1024
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"


def _upload_and_hang_up(server: LiveServer, path: str, declared: int, sent: int) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    credentials = base64.b64encode(":".join(server.admin_auth).encode()).decode()
    head = (f"PUT {ARTIFACTS}/{path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Basic {credentials}\r\nContent-Length: {declared}\r\n\r\n").encode()
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(head)
        conn.sendall(b"x" * sent)
        time.sleep(0.5)  # let the server start streaming the body to storage


def test_a_client_hanging_up_mid_upload_leaves_no_file_and_no_error_log(live_server: LiveServer):
    server = live_server
    run = httpx.post(f"{server.url}/api/2.0/mlflow/runs/create", json={"experiment_id": "0"},
                     auth=server.admin_auth, timeout=30).json()["run"]["info"]["run_id"]
    folder = f"0/{run}/artifacts/cut"
    _upload_and_hang_up(server, f"{folder}/partial.bin", declared=8 * MIB, sent=MIB)
    # The server stays healthy, keeps nothing of the partial upload, and does not log it as a fault.
    listing = httpx.get(f"{server.url}{ARTIFACTS}", params={"path": folder}, auth=server.admin_auth, timeout=30)
    assert listing.status_code == 200, listing.text
    assert listing.json().get("files", []) == []
    artifacts = Path(server.workdir) / "artifacts"
    assert [p for p in artifacts.rglob("*") if p.is_file()] == []
    deadline = time.monotonic() + 10
    while "client disconnected" not in server.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    log = server.log()
    assert "client disconnected during PUT" in log
    assert "Traceback" not in log
    assert "unhandled error" not in log
    # An honest upload right after works.
    put = httpx.put(f"{server.url}{ARTIFACTS}/{folder}/whole.bin", content=b"y" * 1000, auth=server.admin_auth,
                    timeout=30)
    assert put.status_code == 200, put.text
