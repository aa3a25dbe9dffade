"""Real external services for tests: skip with a reason on a developer's machine, fail in CI."""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_URI = os.environ.get("MLGATE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("MLGATE_TEST_REDIS", "redis://127.0.0.1:6379/0")
CHROMIUM = "/usr/bin/chromium"


def unavailable(reason: str) -> None:
    """Skip the test, or fail it when running in CI (where every service must be present)."""
    if IN_CI:
        pytest.fail(f"required service missing in CI: {reason}")
    pytest.skip(reason)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_postgres() -> None:
    """PostgreSQL must answer on 127.0.0.1:5432."""
    if not port_open("127.0.0.1", 5432):
        unavailable("PostgreSQL is not reachable on 127.0.0.1:5432")


def require_redis() -> None:
    """Redis must answer on 127.0.0.1:6379."""
    if not port_open("127.0.0.1", 6379):
        unavailable("Redis is not reachable on 127.0.0.1:6379")


def require_chromium() -> None:
    """Debian's chromium and Python Playwright must be installed."""
    if not os.path.exists(CHROMIUM):
        unavailable(f"{CHROMIUM} is not installed (apt-get install -y chromium)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        unavailable("playwright is not installed (pip install playwright)")


def require_node() -> None:
    """Node.js must be on PATH."""
    if shutil.which("node") is None:
        unavailable("node is not installed")


_template: dict[str, str] = {}


def _migrations_fingerprint() -> str:
    import hashlib
    from pathlib import Path

    versions = Path(__file__).resolve().parent.parent / "gateway" / "migrations" / "versions"
    digest = hashlib.sha256()
    for path in sorted(versions.glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def _migrated_template() -> str:
    """A migrated database to copy from (CREATE DATABASE ... TEMPLATE is a file copy: no migrations per test)."""
    if "name" in _template:
        return _template["name"]
    import atexit

    import psycopg

    from gateway.db import upgrade_database
    from tracking.db.engine import make_engine

    name = f"mlgate_tpl_{os.getpid()}_{_migrations_fingerprint()}"
    base, _, _ = POSTGRES_URI.rpartition("/")
    with psycopg.connect(POSTGRES_URI, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    engine = make_engine(f"{base}/{name}")
    try:
        upgrade_database(engine)
    finally:
        engine.dispose()

    def drop() -> None:
        with psycopg.connect(POSTGRES_URI, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    atexit.register(drop)
    _template["name"] = name
    return name


@contextmanager
def fresh_postgres_database(*, migrated: bool = True) -> Iterator[str]:
    """A PostgreSQL database for one test (migrated, or entirely empty), dropped afterwards; yields its URI."""
    require_postgres()
    import psycopg

    template = f' TEMPLATE "{_migrated_template()}"' if migrated else ""
    name = f"mlgate_t_{uuid.uuid4().hex[:12]}"
    admin = POSTGRES_URI
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"{template}')
    base, _, _ = admin.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
