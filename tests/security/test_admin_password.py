"""Advisory class: the default admin password. A weak bootstrap password stops the server; none at all makes
mlgate generate one and keep it in a 0600 file (MLflow's basic-auth app shipped admin/password1234)."""

from __future__ import annotations

import os
import pty
import select
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import TEST_SECRET_KEY
from tests.services import free_port

ROOT = Path(__file__).resolve().parents[2]


def _command(workdir: Path, port: int) -> list[str]:
    return [sys.executable, "-m", "gateway.cli", "server", "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", f"sqlite:///{workdir / 'mlgate.db'}",
            "--artifacts-destination", str(workdir / "artifacts")]


def _env(password: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLGATE_")}
    env.update({"MLGATE_SECRET_KEY": TEST_SECRET_KEY, "PYTHONPATH": str(ROOT)})
    if password is not None:
        env["MLGATE_ADMIN_PASSWORD"] = password
    return env


def _users(workdir: Path) -> int:
    db = workdir / "mlgate.db"
    if not db.exists():
        return 0
    engine = sa.create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("auth_users"):
                return 0
            return conn.execute(sa.text("SELECT count(*) FROM auth_users")).scalar_one()
    finally:
        engine.dispose()


@pytest.mark.parametrize("password", ["password", "admin", "password1234", "adminadmin123"])
def test_default_admin_password_refused(tmp_path, password):
    done = subprocess.run(_command(tmp_path, free_port()), cwd=tmp_path, env=_env(password), timeout=60,
                          capture_output=True, text=True)
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "MLGATE_ADMIN_PASSWORD" in output
    if any(ch.isdigit() for ch in password):  # ('password' itself is a word of the message)
        assert password not in output  # the refusal does not echo the secret
    assert _users(tmp_path) == 0
    assert not (tmp_path / "mlgate-admin-password").exists()


def _wait_healthy(process: subprocess.Popen, port: int, log) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError(f"server did not become healthy: {log()}")


def test_default_admin_password_generated_0600(tmp_path):
    port = free_port()
    log = open(tmp_path / "server.log", "wb")
    # The server's stdout and stderr go to a file, as under systemd or a container runtime.
    process = subprocess.Popen(_command(tmp_path, port), cwd=tmp_path, env=_env(None), stdout=log,
                               stderr=subprocess.STDOUT)
    try:
        _wait_healthy(process, port, (tmp_path / "server.log").read_text)
        secret_file = tmp_path / "mlgate-admin-password"
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
        password = secret_file.read_text().strip()
        assert len(password) >= 16
        assert password not in ("password", "password1234", "admin")
        # The log names the file but never holds the password itself.
        logged = (tmp_path / "server.log").read_text()
        assert "mlgate-admin-password (mode 0600; not printed" in logged
        assert password not in logged
        url = f"http://127.0.0.1:{port}/api/2.0/mlflow/users/current"
        assert httpx.get(url, auth=("admin", password), timeout=30).status_code == 200
        for guess in ("password", "password1234", "admin"):
            assert httpx.get(url, auth=("admin", guess), timeout=30).status_code == 401
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()
    assert password not in (tmp_path / "server.log").read_text()


def test_generated_admin_password_is_shown_on_an_interactive_terminal(tmp_path):
    # Someone starting mlgate by hand sees the password once on the terminal (it is in the 0600 file as well).
    port = free_port()
    controller, terminal = pty.openpty()
    process = subprocess.Popen(_command(tmp_path, port), cwd=tmp_path, env=_env(None), stdout=terminal,
                               stderr=terminal, stdin=subprocess.DEVNULL)
    os.close(terminal)
    shown = bytearray()

    def drain() -> None:
        while select.select([controller], [], [], 0)[0]:
            try:
                chunk = os.read(controller, 65536)
            except OSError:
                return
            if not chunk:
                return
            shown.extend(chunk)

    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            drain()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        drain()
        assert process.poll() is None, shown.decode(errors="replace")
        password = (tmp_path / "mlgate-admin-password").read_text().strip()
        assert shown.decode(errors="replace").count(password) == 1
    finally:
        process.terminate()
        process.wait(timeout=15)
        os.close(controller)
