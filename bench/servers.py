"""The servers compared side by side: MLflow plain, MLflow basic-auth (with and without its cache), mlgate."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

BENCH_DIR = Path(__file__).resolve().parent
MLFLOW_VENV = BENCH_DIR / ".venv-mlflow"
MLFLOW_VERSION = "3.17.2"
ADMIN_PASSWORD = "Operator-pw-7f3a9c1e-x9"
USER_PASSWORD = "Load-Tester-pw-19d2b6aa"


def basic(user: str, password: str) -> str:
    """An HTTP Basic Authorization header value."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def ensure_mlflow_venv() -> Path:
    """MLflow in its own virtualenv (bench/.venv-mlflow), installed on first use."""
    mlflow_bin = MLFLOW_VENV / "bin" / "mlflow"
    has_auth = any((MLFLOW_VENV / "lib").glob("python3*/site-packages/flask_wtf"))
    if not mlflow_bin.exists() or not has_auth:
        print(f"installing mlflow=={MLFLOW_VERSION} into {MLFLOW_VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(MLFLOW_VENV)], check=True)
        subprocess.run([str(MLFLOW_VENV / "bin" / "pip"), "install", "-q", f"mlflow[auth]=={MLFLOW_VERSION}"],
                       check=True)
    return mlflow_bin


@dataclass
class Server:
    """A started server: its URL, process and the credentials a scenario sends."""

    name: str
    url: str
    process: subprocess.Popen
    admin_headers: dict[str, str] = field(default_factory=dict)
    user_headers: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None

    def stop(self) -> None:
        """Stop the whole process group (servers start in their own session) and wait for it."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def wait_healthy(url: str, process: subprocess.Popen, log_path: Path, timeout: float = 120) -> float:
    """Seconds until /health answered 200."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"server exited:\n{log_path.read_text(errors='replace')[-4000:]}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return time.monotonic() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server not healthy after {timeout}s:\n{log_path.read_text(errors='replace')[-4000:]}")


def write_basic_auth_config(workdir: Path, admin_password: str, *, cache_ttl_seconds: int | None = None) -> Path:
    """MLflow's basic-auth config (``MLFLOW_AUTH_CONFIG_PATH``): users in ``workdir/basic_auth.db``,
    deny by default, administrator ``admin``; ``cache_ttl_seconds`` sets its credential cache."""
    ini = workdir / "basic_auth.ini"
    lines = ["[mlflow]", "default_permission = NO_PERMISSIONS", f"database_uri = sqlite:///{workdir / 'basic_auth.db'}",
             "admin_username = admin", f"admin_password = {admin_password}",
             "authorization_function = mlflow.server.auth:authenticate_request_basic_auth"]
    if cache_ttl_seconds is not None:
        lines.append(f"auth_cache_ttl_seconds = {cache_ttl_seconds}")
    ini.write_text("\n".join(lines) + "\n")
    return ini


def start_mlflow(workdir: Path, port: int, db_path: Path | None, *, auth: bool, cache_ttl: int = 0,
                 workers: int | None = None, backend_uri: str | None = None) -> tuple[Server, float]:
    """``mlflow server`` on SQLite with proxied artifacts, optionally with its basic-auth app."""
    mlflow_bin = ensure_mlflow_venv()
    workdir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    args = [str(mlflow_bin), "server", "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", backend_uri or f"sqlite:///{db_path}", "--artifacts-destination",
            str(workdir / "art")]
    if workers:
        args += ["--workers", str(workers)]
    admin_headers: dict[str, str] = {}
    if auth:
        ini = write_basic_auth_config(workdir, ADMIN_PASSWORD, cache_ttl_seconds=cache_ttl)
        env["MLFLOW_AUTH_CONFIG_PATH"] = str(ini)
        env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = "bench-flask-secret-key-0123456789abcdef"
        args += ["--app-name", "basic-auth"]
        admin_headers = {"Authorization": basic("admin", ADMIN_PASSWORD)}
    log_path = workdir / "server.log"
    proc = subprocess.Popen(args, stdout=open(log_path, "ab"), stderr=subprocess.STDOUT, env=env,  # noqa: SIM115
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    ready = wait_healthy(url, proc, log_path)
    name = "mlflow" if not auth else ("mlflow-auth-cache" if cache_ttl else "mlflow-auth")
    return Server(name, url, proc, admin_headers, dict(admin_headers), log_path), ready


def start_mlgate(workdir: Path, port: int, db_path: Path | None, *, policy_file: Path | None,
                 env_extra: dict[str, str] | None = None, workers: int = 1,
                 name: str = "mlgate", backend_uri: str | None = None) -> tuple[Server, float]:
    """``mlgate server`` on SQLite (``db_path``) or ``backend_uri`` with the given policy file."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update({"MLGATE_ADMIN_USERNAME": "admin", "MLGATE_ADMIN_PASSWORD": ADMIN_PASSWORD})
    env.update(env_extra or {})
    args = [sys.executable, "-m", "gateway.cli", "server", "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", backend_uri or f"sqlite:///{db_path}",
            "--artifacts-destination", str(workdir / "art"), "--workers", str(workers)]
    if policy_file:
        args += ["--policy", str(policy_file)]
    log_path = workdir / "server.log"
    proc = subprocess.Popen(args, stdout=open(log_path, "ab"), stderr=subprocess.STDOUT, env=env,  # noqa: SIM115
                            cwd=workdir, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    ready = wait_healthy(url, proc, log_path)
    admin = {"Authorization": basic("admin", ADMIN_PASSWORD)}
    return Server(name, url, proc, admin, dict(admin), log_path), ready


def start_floor(workdir: Path, port: int, db_path: Path) -> tuple[Server, float]:
    """bench/floor.py (FastAPI + uvicorn, no mlgate code) over the SQLite file ``db_path``."""
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "server.log"
    args = [sys.executable, str(BENCH_DIR / "floor.py"), "--db", str(db_path), "--port", str(port)]
    proc = subprocess.Popen(args, stdout=open(log_path, "ab"), stderr=subprocess.STDOUT,  # noqa: SIM115
                            cwd=workdir, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    ready = wait_healthy(url, proc, log_path)
    return Server("floor", url, proc, {}, {}, log_path), ready

