"""Shared pieces for the advisory regression tests: one real server per module, users, and snapshots."""

from __future__ import annotations

import hashlib
import secrets
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import LiveServer, default_database, start_server

A = "/api/2.0/mlflow"
R = "/api/2.0/mlflow-artifacts"
# Files named secret.txt outside every artifact directory (beside the artifact root, in it, and in the levels
# between it and a run's or model's artifacts); each holds SECRET_TEXT plus its level, and none may ever leak.
SECRET_TEXT = "mlgate-outside-secret-" + secrets.token_hex(8)


def plant_secret(directory: Path, level: str) -> None:
    """Put a secret.txt holding SECRET_TEXT and the level's name into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "secret.txt").write_text(f"{SECRET_TEXT}:{level}")
# What a refused request legitimately touches: the audit trail (it records the refusal) and usage stamps.
VOLATILE_TABLES = ("audit", "alembic")
VOLATILE_COLUMNS = {"last_used_at", "last_seen_at"}


@dataclass
class Actor:
    """A non-admin user with a personal access token."""

    username: str
    token: str
    password: str

    @property
    def headers(self) -> dict[str, str]:
        """The Authorization header for this user's token."""
        return {"Authorization": f"Bearer {self.token}"}


def make_user(server: LiveServer, username: str) -> Actor:
    """Create a non-admin user and a token for it, as the admin."""
    password = "Pw-" + secrets.token_urlsafe(18)
    made = httpx.post(server.url + f"{A}/users/create", auth=server.admin_auth,
                      json={"username": username, "password": password}, timeout=30)
    assert made.status_code == 200, made.text
    issued = httpx.post(server.url + f"{A}/users/tokens/create", auth=server.admin_auth, timeout=30,
                        json={"name": "sec", "expires_in_days": 1, "username": username})
    assert issued.status_code == 200, issued.text
    return Actor(username, issued.json()["token"], password)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[LiveServer]:
    """One real ``mlgate server`` for the module, with secret files planted beside and in its artifact root."""
    workdir = tmp_path_factory.mktemp("secsrv")
    plant_secret(workdir, "workdir")
    plant_secret(workdir / "artifacts", "artifact-root")
    # SQLite, or PostgreSQL under MLGATE_TEST_BACKEND=postgresql (the modules using this server are marked
    # backend_switch, so CI's PostgreSQL pass attacks the visibility queries on PostgreSQL too).
    with default_database(workdir) as uri:
        live = start_server(workdir, uri)
        try:
            yield live
        finally:
            live.stop()


def tree_digest(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """Every file under ``root`` (relative path -> sha256), skipping names in ``skip``."""
    if not root.exists():
        return {}
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not rel.startswith(skip):
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif path.is_dir():
            out[rel + "/"] = ""
    return out


def db_digest(uri: str) -> dict[str, list]:
    """Every row of every non-volatile table, in a stable order."""
    engine = sa.create_engine(uri)
    try:
        meta = sa.MetaData()
        meta.reflect(engine)
        with engine.connect() as conn:
            out = {}
            for name, table in meta.tables.items():
                if any(word in name for word in VOLATILE_TABLES):
                    continue
                columns = [c for c in table.columns if c.name not in VOLATILE_COLUMNS]
                out[name] = sorted(repr(tuple(row)) for row in conn.execute(sa.select(*columns)))
            return out
    finally:
        engine.dispose()


class Unchanged:
    """Snapshot the disk (whole server directory, log and database aside) and the database; compare later."""

    def __init__(self, server: LiveServer):
        self.server = server
        self.before = self._state()

    def _state(self):
        skip = ("server.log", "mlgate.db")
        return tree_digest(self.server.workdir, skip), db_digest(self.server.backend_store_uri)

    def check(self) -> None:
        """Fail if any file or row changed since the snapshot."""
        disk, db = self._state()
        assert disk == self.before[0], "files changed"
        assert db == self.before[1], "database changed"


class Listener:
    """A loopback TCP listener that records whether anything connected (an SSRF canary)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        """Stop accepting and release the port."""
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()
