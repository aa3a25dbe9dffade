"""Real external services for tests: skip with a reason on a developer's machine, fail in CI."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import pytest

# CI=true (and the CI=1 / CI=yes other runners set) turns every missing service into a failure.
IN_CI = os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}
POSTGRES_URI = os.environ.get("MLGATE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("MLGATE_TEST_REDIS", "redis://127.0.0.1:6379/0")
CHROMIUM = "/usr/bin/chromium"
# A skip reason ends with "(to run: <command>)": tests/conftest.py gathers these into the run's last line.
TO_RUN = "to run: "


def unavailable(reason: str, enable: str | None = None) -> None:
    """Skip the test, or fail it when running in CI (where every service must be present).

    ``enable`` is the one command that would make the test run here; the skip reason carries it.
    """
    if IN_CI:
        pytest.fail(f"required service missing in CI: {reason}")
    pytest.skip(f"{reason} ({TO_RUN}{enable})" if enable else reason)


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


def redact(uri: str) -> str:
    """``uri`` without its password, for messages."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def postgres_problem(uri: str) -> tuple[str, str] | None:
    """Why the tests cannot use the PostgreSQL at ``uri`` (and what to do), or None when it works.

    Connects, runs a query and checks the right to create databases (every test gets its own): an open port
    is not a working database, and a server that wants a password or lacks the database must say so here,
    not as an error in the middle of a test.
    """
    import psycopg

    shown = redact(uri)
    override = "export MLGATE_TEST_POSTGRES=postgresql://USER:PASSWORD@HOST:PORT/test"
    try:
        with psycopg.connect(uri, autocommit=True, connect_timeout=3) as conn:
            can_create = conn.execute(
                "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
    except psycopg.OperationalError as exc:
        text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        lowered = text.lower()
        if "password" in lowered:
            return f"PostgreSQL at {shown} needs a password ({text})", override
        if "role" in lowered and "does not exist" in lowered:
            return f"PostgreSQL at {shown} has no such user ({text})", override
        if "database" in lowered and "does not exist" in lowered:
            database = urlsplit(uri).path.lstrip("/") or "postgres"
            return (f"PostgreSQL at {shown} has no database {database!r} ({text})",
                    f"createdb -h {urlsplit(uri).hostname} -U {urlsplit(uri).username or 'postgres'} {database}")
        return f"PostgreSQL does not answer at {shown} ({text})", override
    if not (can_create and can_create[0]):
        return f"PostgreSQL at {shown}: the user may not create databases (each test creates its own)", override
    return None


def redis_problem(url: str) -> tuple[str, str] | None:
    """Why the tests cannot use the Redis at ``url`` (and what to do), or None when it answers PING."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        return (f"Redis does not answer at {redact(url)} ({type(exc).__name__}: {exc}; MLGATE_TEST_REDIS names "
                "another)", "redis-server --daemonize yes")
    finally:
        client.close()
    return None


_checked: dict[str, tuple[str, str] | None] = {}


def require_postgres() -> None:
    """The PostgreSQL at MLGATE_TEST_POSTGRES (default postgres@127.0.0.1:5432/test) must work."""
    if "postgres" not in _checked:
        _checked["postgres"] = postgres_problem(POSTGRES_URI)
    if _checked["postgres"] is not None:
        unavailable(*_checked["postgres"])


def require_redis() -> None:
    """The Redis at MLGATE_TEST_REDIS (default 127.0.0.1:6379/0) must answer."""
    if "redis" not in _checked:
        _checked["redis"] = redis_problem(REDIS_URL)
    if _checked["redis"] is not None:
        unavailable(*_checked["redis"])


def require_chromium() -> None:
    """Debian's chromium and Python Playwright must be installed."""
    if not os.path.exists(CHROMIUM):
        unavailable(f"{CHROMIUM} is not installed", "apt-get install -y chromium")
    try:
        import playwright  # noqa: F401
    except ImportError:
        unavailable("playwright is not installed", "pip install -c requirements/lock.txt -e '.[test]'")


def require_node() -> None:
    """Node.js must be on PATH."""
    if shutil.which("node") is None:
        unavailable("node is not installed", "apt-get install -y nodejs npm")


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


# --- S3: moto's standalone server (a real S3 API over HTTP) ----------------------------------------

class SilentServer:
    """Accepts TCP connections, holds them open and never sends a byte: a server that hangs (a stalled
    Redis or database, a black-holed proxy). ``close()`` stops listening and drops the connections."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.redis_url = f"redis://127.0.0.1:{self.port}/0"
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self.accepted:
            conn.close()
        self.sock.close()


S3_TEST_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "mlgate-test-key", "AWS_SECRET_ACCESS_KEY": "mlgate-test-secret",
                       "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass(frozen=True)
class S3Server:
    """A running S3-compatible server: its endpoint and the environment an mlgate server needs for it."""

    endpoint_url: str
    process: subprocess.Popen

    @property
    def env(self) -> dict[str, str]:
        """``MLFLOW_S3_ENDPOINT_URL`` and test credentials, as a server process reads them."""
        return {"MLFLOW_S3_ENDPOINT_URL": self.endpoint_url, **S3_TEST_CREDENTIALS}

    def client(self):
        """A boto3 client for inspecting the server from a test."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name="us-east-1",
                            aws_access_key_id=S3_TEST_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=S3_TEST_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])

    def new_bucket(self) -> str:
        """Create a bucket with a fresh name and return the name."""
        name = f"mlgate-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name


def require_moto() -> None:
    """moto's standalone S3 server (``pip install 'moto[server]'``) must be importable."""
    try:
        import boto3  # noqa: F401
        import moto.server  # noqa: F401
    except ImportError as exc:
        unavailable(f"moto[server] is not installed ({exc.name})", "pip install -c requirements/lock.txt -e '.[test]'")


@contextmanager
def s3_server(timeout: float = 60) -> Iterator[S3Server]:
    """Run ``python -m moto.server`` on a free loopback port for the duration of the block."""
    require_moto()
    port = free_port()
    env = {**os.environ, **S3_TEST_CREDENTIALS}
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + timeout
        while not port_open("127.0.0.1", port, timeout=0.2):
            if process.poll() is not None or time.monotonic() > deadline:
                unavailable(f"moto's S3 server did not start on 127.0.0.1:{port}")
            time.sleep(0.1)
        yield S3Server(f"http://127.0.0.1:{port}", process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- Google Cloud Storage: gcp-storage-emulator (the JSON API, resumable uploads included) -------------

GCS_PROJECT = "mlgate-test"


@dataclass(frozen=True)
class GcsServer:
    """A running GCS emulator: its endpoint and the environment an mlgate server needs for it."""

    endpoint_url: str
    process: subprocess.Popen

    @property
    def env(self) -> dict[str, str]:
        """``STORAGE_EMULATOR_HOST``: the SDK then talks to the emulator, without credentials."""
        return {"STORAGE_EMULATOR_HOST": self.endpoint_url}

    def client(self):
        """A storage client for inspecting the emulator from a test."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(project=GCS_PROJECT, credentials=AnonymousCredentials(),
                              client_options={"api_endpoint": self.endpoint_url})

    def new_bucket(self) -> str:
        """Create a bucket with a fresh name and return the name."""
        name = f"mlgate-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(name)
        return name


def require_gcs_emulator() -> None:
    """The GCS emulator and SDK (``pip install -e '.[test]'``) must be importable."""
    try:
        import gcp_storage_emulator  # noqa: F401
        import google.cloud.storage  # noqa: F401
    except ImportError as exc:
        unavailable(f"the GCS emulator or SDK is not installed ({exc.name})",
                    "pip install -c requirements/lock.txt -e '.[test]'")


@contextmanager
def gcs_server(timeout: float = 60) -> Iterator[GcsServer]:
    """Run gcp-storage-emulator (in memory) on a free loopback port for the duration of the block."""
    require_gcs_emulator()
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1",
                                "--port", str(port), "--in-memory", "--quiet"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port, process, timeout, "the GCS emulator")
        yield GcsServer(f"http://127.0.0.1:{port}", process)
    finally:
        _stop(process)


# --- Azure Blob Storage: Azurite, Microsoft's emulator (npm, installed in tests/azurite) -------------------

AZURITE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "azurite")
# Azurite's one built-in account and its published development key (not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass(frozen=True)
class AzuriteServer:
    """A running Azurite blob service: its endpoint and the environment an mlgate server needs for it."""

    blob_endpoint: str
    process: subprocess.Popen

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
                f"BlobEndpoint={self.blob_endpoint};")

    @property
    def env(self) -> dict[str, str]:
        """``AZURE_STORAGE_CONNECTION_STRING`` naming Azurite's endpoint and account key."""
        return {"AZURE_STORAGE_CONNECTION_STRING": self.connection_string}

    def uri(self, container: str, prefix: str) -> str:
        """The ``wasbs://`` destination of a container of Azurite's account."""
        return f"wasbs://{container}@{AZURITE_ACCOUNT}.blob.core.windows.net/{prefix}"

    def client(self):
        """A BlobServiceClient for inspecting Azurite from a test."""
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string)

    def new_container(self) -> str:
        """Create a container with a fresh name and return the name."""
        name = f"mlgate-{uuid.uuid4().hex[:12]}"
        self.client().create_container(name)
        return name


def require_azurite() -> None:
    """node, Azurite's npm package (installed by the test run, tests/prerequisites.py) and the Azure SDK."""
    require_node()
    if not os.path.exists(os.path.join(AZURITE_DIR, "node_modules", "azurite")):
        unavailable("Azurite is not installed", "npm ci --prefix tests/azurite")
    try:
        import azure.storage.blob  # noqa: F401
    except ImportError as exc:
        unavailable(f"the Azure Storage SDK is not installed ({exc.name})",
                    "pip install -c requirements/lock.txt -e '.[test]'")


@contextmanager
def azurite_server(timeout: float = 90) -> Iterator[AzuriteServer]:
    """Run Azurite's blob service on a free loopback port, its data in a temp directory."""
    import tempfile

    require_azurite()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="mlgate-azurite-") as location:
        # --skipApiVersionCheck: the Python SDK may speak a newer service version than this Azurite knows.
        process = subprocess.Popen(
            ["node", os.path.join(AZURITE_DIR, "node_modules", "azurite", "dist", "src", "blob", "main.js"),
             "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", location, "--silent",
             "--skipApiVersionCheck", "--disableProductStyleUrl"],
            cwd=AZURITE_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_for_port(port, process, timeout, "Azurite")
            yield AzuriteServer(f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}", process)
        finally:
            _stop(process)


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float, name: str) -> None:
    deadline = time.monotonic() + timeout
    while not port_open("127.0.0.1", port, timeout=0.2):
        if process.poll() is not None or time.monotonic() > deadline:
            unavailable(f"{name} did not start on 127.0.0.1:{port}")
        time.sleep(0.1)


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
