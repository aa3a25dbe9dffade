"""Graceful shutdown: a request in flight when SIGTERM arrives completes, then the process exits 0."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx

from tests.conftest import start_server

A = "/api/2.0/mlflow"
CHUNK = b"x" * 65536
CHUNKS = 40


def test_sigterm_lets_a_slow_upload_finish_and_exits_zero(tmp_path: Path):
    server = start_server(tmp_path / "s", f"sqlite:///{tmp_path / 'db.sqlite'}", "--shutdown-timeout", "60")
    try:
        with httpx.Client(base_url=server.url, auth=server.admin_auth, timeout=60) as http:
            experiment = http.post(f"{A}/experiments/create", json={"name": "shutdown"}).json()["experiment_id"]
            run = http.post(f"{A}/runs/create", json={"experiment_id": experiment}).json()["run"]["info"]["run_id"]
        halfway = threading.Event()

        def slow_body():
            for i in range(CHUNKS):
                if i == CHUNKS // 2:
                    halfway.set()
                time.sleep(0.05)
                yield CHUNK

        result: dict = {}

        def upload() -> None:
            try:
                result["response"] = httpx.put(
                    f"{server.url}/api/2.0/mlflow-artifacts/artifacts/{experiment}/{run}/artifacts/big.bin",
                    content=slow_body(), auth=server.admin_auth, timeout=120)
            except httpx.HTTPError as exc:  # reported by the assertion below
                result["error"] = exc

        uploader = threading.Thread(target=upload)
        uploader.start()
        assert halfway.wait(60), "the upload never got going"
        server.process.send_signal(signal.SIGTERM)
        uploader.join(120)
        assert "error" not in result, f"the request in flight failed: {result.get('error')!r}\n{server.log()}"
        assert result["response"].status_code == 200, result["response"].text
        assert server.process.wait(60) == 0, server.log()
        # The whole body arrived before the process went away.
        stored = list((server.workdir / "artifacts").rglob("big.bin"))
        assert len(stored) == 1
        assert stored[0].stat().st_size == len(CHUNK) * CHUNKS
        # Shutdown was graceful: uvicorn waited for the connection rather than cutting it.
        assert "Waiting for connections to close" in server.log()
    finally:
        server.stop()
