"""Path-traversal exploits against every artifact operation, in-process and over raw sockets.

Each exploit shape from MLflow's advisories (raw, encoded and double-encoded dots and slashes,
backslashes, absolute and drive paths, NUL, empty segments, symlinks planted inside the root) is sent
to GET, PUT, DELETE and list. Every one must be refused with MLflow's error body, and nothing inside
or outside the artifact root may change. The raw-socket half sends bytes exactly as written, because
HTTP clients (httpx included) silently remove ``..`` segments before sending.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import start_server

# CI's PostgreSQL pass leaves these out: they test artifact paths and bytes, not the database.
pytestmark = pytest.mark.database_incidental

RUN = "0123456789abcdef0123456789abcdef"
VICTIM = "fedcba9876543210fedcba9876543210"
BASE = f"1/{RUN}/artifacts"
R = "/api/2.0/mlflow-artifacts"

DOTDOT = "Invalid path: '..' segments are not allowed."
TWICE = "Invalid path: percent-encoded characters must be encoded once, not twice."
BACKSLASH = "Invalid path: backslashes are not allowed."
ABSOLUTE = "Invalid path: absolute paths are not allowed."
DRIVE = "Invalid path: drive letters are not allowed."
CONTROL = "Invalid path: control characters are not allowed."
EMPTY = "Invalid path: empty path segments are not allowed."
SYMLINK = "Invalid path: it passes through a symbolic link, which this server does not follow."
LAYOUT = "Invalid path: Artifact paths must look like"


@dataclass(frozen=True)
class Exploit:
    name: str
    wire: str  # exactly as it appears in the request target (already percent-encoded where intended)
    message: str  # the refusal message (or its prefix)
    raw_only: bool = False  # HTTP client libraries normalise these before sending
    # Starlette's TestClient percent-decodes the path a second time (httpx already decoded it once),
    # so a double-encoded path reaches the in-process app as a single-encoded one.
    in_process_message: str | None = None

    def __str__(self) -> str:
        return self.name


EXPLOITS = [
    Exploit("dotdot-out-of-root", f"{BASE}/../../../../outside/secret.txt", DOTDOT, raw_only=True),
    Exploit("dotdot-into-other-run", f"{BASE}/../../{VICTIM}/artifacts/victim.txt", DOTDOT, raw_only=True),
    Exploit("dotdot-leading", "../outside/secret.txt", DOTDOT, raw_only=True),
    Exploit("encoded-dots", f"{BASE}/%2e%2e/%2e%2e/%2e%2e/%2e%2e/outside/secret.txt", DOTDOT),
    Exploit("encoded-dots-upper-other-run", f"{BASE}/%2E%2E/%2E%2E/{VICTIM}/artifacts/victim.txt", DOTDOT),
    Exploit("half-encoded-dots", f"{BASE}/.%2e/.%2e/{VICTIM}/artifacts/victim.txt", DOTDOT),
    Exploit("encoded-slashes", f"{BASE}/..%2f..%2f..%2f..%2foutside%2fsecret.txt", DOTDOT),
    Exploit("double-encoded-dots", f"{BASE}/%252e%252e/%252e%252e/%252e%252e/%252e%252e/outside/secret.txt",
            TWICE, in_process_message=DOTDOT),
    Exploit("double-encoded-slashes", f"{BASE}/..%252f..%252f..%252f..%252foutside%252fsecret.txt",
            TWICE, in_process_message=DOTDOT),
    Exploit("encoded-backslashes", f"{BASE}/..%5c..%5c..%5c..%5coutside%5csecret.txt", BACKSLASH),
    Exploit("raw-backslashes", f"{BASE}/..\\..\\..\\..\\outside\\secret.txt", BACKSLASH, raw_only=True),
    Exploit("absolute", "/etc/passwd", ABSOLUTE),
    Exploit("encoded-absolute", "%2fetc%2fpasswd", ABSOLUTE),
    Exploit("windows-drive", "C:/Windows/win.ini", DRIVE),
    Exploit("windows-drive-backslash", "C:%5cWindows%5cwin.ini", BACKSLASH),
    Exploit("nul-byte", f"{BASE}/victim.txt%00.png", CONTROL),
    Exploit("empty-segment", f"{BASE}//ok.txt", EMPTY),
    Exploit("symlinked-directory", f"{BASE}/escape/secret.txt", SYMLINK),
    Exploit("symlinked-file", f"{BASE}/link.txt", SYMLINK),
    Exploit("symlinked-experiment", f"2/{RUN}/artifacts/secret.txt", SYMLINK),
    Exploit("artifact-root-itself", "", LAYOUT),
    Exploit("outside-the-layout", "outside.txt", LAYOUT),
    Exploit("experiment-directory", "1", LAYOUT),
]
OPERATIONS = ["get", "put", "delete", "list"]
PAYLOAD = b"PWNED-BY-TRAVERSAL"


def plant(root: Path, outside: Path) -> None:
    """A run with a real file, a victim run, and symlinks inside the root that point outside it."""
    outside.mkdir(parents=True, exist_ok=True)
    (outside / "secret.txt").write_text("top secret")
    run_dir = root / BASE
    run_dir.mkdir(parents=True)
    (run_dir / "ok.txt").write_text("fine")
    os.symlink(outside, run_dir / "escape")
    os.symlink(outside / "secret.txt", run_dir / "link.txt")
    victim = root / "1" / VICTIM / "artifacts"
    victim.mkdir(parents=True)
    (victim / "victim.txt").write_text("victim data")
    os.symlink(outside, root / "2")


def snapshot(*dirs: Path) -> dict[str, tuple]:
    """Every entry under the directories: kind and content hash or link target."""
    state: dict[str, tuple] = {}
    for top in dirs:
        for parent, dirnames, filenames in os.walk(top):
            for name in dirnames + filenames:
                path = Path(parent, name)
                if path.is_symlink():
                    state[str(path)] = ("link", os.readlink(path))
                elif path.is_dir():
                    state[str(path)] = ("dir",)
                else:
                    state[str(path)] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
    return state


def target_of(operation: str, wire: str) -> tuple[str, str]:
    if operation == "list":
        return "GET", f"{R}/artifacts?path={wire}"
    method = {"get": "GET", "put": "PUT", "delete": "DELETE"}[operation]
    return method, f"{R}/artifacts/{wire}"


def assert_refused(status: int, body: bytes, exploit: Exploit, message: str | None = None) -> None:
    assert status == 400, (exploit.name, status, body[:300])
    error = json.loads(body)
    assert set(error) == {"error_code", "message"}
    assert error["error_code"] == "INVALID_PARAMETER_VALUE"
    assert error["message"].startswith(message or exploit.message), error["message"]
    assert b"top secret" not in body
    assert b"victim data" not in body


# --- in-process, through the app factory's TestClient ---------------------------------------------


@pytest.fixture
def planted(client, tmp_path):
    root = Path(client.app.state.tracking.artifact_root)
    outside = tmp_path / "outside"
    plant(root, outside)
    return root, outside


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("exploit", [e for e in EXPLOITS if not e.raw_only], ids=str)
def test_exploit_is_refused_in_process(client, planted, tmp_path, exploit, operation):
    root, outside = planted
    before = snapshot(root, outside)
    method, url = target_of(operation, exploit.wire)
    response = client.request(method, url, content=PAYLOAD if method == "PUT" else None)
    expected = exploit.in_process_message if operation != "list" else None
    assert_refused(response.status_code, response.content, exploit, expected)
    assert snapshot(root, outside) == before
    assert not any(p.is_file() and PAYLOAD in p.read_bytes() for p in tmp_path.rglob("*") if not p.is_symlink())


def test_the_planted_tree_is_reachable_by_honest_requests(client, planted):
    """Control: the refusals above are about the path shape, not a broken fixture."""
    assert client.get(f"{R}/artifacts/{BASE}/ok.txt").content == b"fine"
    listing = client.get(f"{R}/artifacts", params={"path": BASE}).json()
    assert listing == {"files": [{"path": "ok.txt", "is_dir": False, "file_size": 4}]}
    victim = client.get(f"{R}/artifacts/1/{VICTIM}/artifacts/victim.txt")
    assert victim.content == b"victim data"


# --- a real server, raw bytes on a socket -----------------------------------------------------------


@pytest.fixture(scope="module")
def raw_server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("traversal")
    server = start_server(workdir, f"sqlite:///{workdir / 'mlgate.db'}")
    root = workdir / "artifacts"
    outside = workdir / "outside"
    plant(root, outside)
    yield server, root, outside
    server.stop()


def raw_request(server, method: str, target: str, body: bytes = b"") -> tuple[int, bytes]:
    """Send one HTTP/1.1 request, as the server's administrator, with the target bytes unchanged."""
    host, port = server.url.removeprefix("http://").split(":")
    credentials = base64.b64encode(":".join(server.admin_auth).encode()).decode()
    head = (f"{method} {target} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n"
            f"Authorization: Basic {credentials}\r\nContent-Length: {len(body)}\r\n\r\n").encode("latin-1")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(head + body)
        received = bytearray()
        for _ in range(10_000):
            chunk = conn.recv(65536)
            if not chunk:
                break
            received += chunk
    header, _, payload = bytes(received).partition(b"\r\n\r\n")
    return int(header.split(b" ", 2)[1]), payload


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("exploit", EXPLOITS, ids=str)
def test_exploit_is_refused_by_a_real_server(raw_server, exploit, operation):
    server, root, outside = raw_server
    before = snapshot(root, outside)
    method, target = target_of(operation, exploit.wire)
    status, body = raw_request(server, method, target, PAYLOAD if method == "PUT" else b"")
    assert_refused(status, body, exploit)
    assert snapshot(root, outside) == before


def test_raw_socket_control_requests_succeed(raw_server):
    """Control: the same harness reads and writes honest paths on the same server."""
    server, root, _ = raw_server
    status, body = raw_request(server, "GET", f"{R}/artifacts/{BASE}/ok.txt")
    assert (status, body) == (200, b"fine")
    status, _ = raw_request(server, "PUT", f"{R}/artifacts/{BASE}/new%20file.txt", b"hello")
    assert status == 200
    assert (root / BASE / "new file.txt").read_bytes() == b"hello"
    status, _ = raw_request(server, "DELETE", f"{R}/artifacts/{BASE}/new%20file.txt")
    assert status == 200
    assert not (root / BASE / "new file.txt").exists()


def test_encoded_slash_stays_inside_the_named_run(raw_server):
    """``%2F`` is decoded before routing: it may add depth inside the run, never leave it."""
    server, root, _ = raw_server
    status, _ = raw_request(server, "PUT", f"{R}/artifacts/{BASE}/sub%2Finner.txt", b"deep")
    assert status == 200
    assert (root / BASE / "sub" / "inner.txt").read_bytes() == b"deep"
    status, _ = raw_request(server, "DELETE", f"{R}/artifacts/{BASE}/sub")
    assert status == 200


# --- the by-run endpoints: the path is relative to the run's artifact directory ---------------------

BY_RUN_EXPLOITS = [
    Exploit("dotdot-into-other-run", f"../../{VICTIM}/artifacts/victim.txt", DOTDOT),
    Exploit("dotdot-out-of-root", "../../../../outside/secret.txt", DOTDOT),
    Exploit("encoded-slashes", f"..%2f..%2f{VICTIM}%2fartifacts%2fvictim.txt", DOTDOT),
    Exploit("double-encoded-dots", "%252e%252e/%252e%252e/outside/secret.txt", TWICE),
    Exploit("backslashes", "..%5c..%5coutside%5csecret.txt", BACKSLASH),
    Exploit("absolute", "/etc/passwd", ABSOLUTE),
    Exploit("windows-drive", "C:/Windows/win.ini", DRIVE),
    Exploit("nul-byte", "ok.txt%00.png", CONTROL),
    Exploit("symlinked-directory", "escape/secret.txt", SYMLINK),
    Exploit("symlinked-file", "link.txt", SYMLINK),
]


@pytest.fixture
def planted_run(client, planted):
    """The planted run directory also exists as a run row, so the by-run endpoints resolve it."""
    from tracking.db.tables import experiments, runs

    with client.app.state.tracking.engine.begin() as conn:
        conn.execute(experiments.insert().values(
            experiment_id=1, name="traversal", artifact_location="mlflow-artifacts:/1", lifecycle_stage="active",
            creation_time=0, last_update_time=0,
        ))
        conn.execute(runs.insert().values(
            run_uuid=RUN, name="r", experiment_id=1, user_id="u", status="RUNNING", start_time=0,
            lifecycle_stage="active", artifact_uri=f"mlflow-artifacts:/{BASE}",
        ))
    return planted


@pytest.mark.parametrize("endpoint", ["/get-artifact", "/api/2.0/mlflow/artifacts/list"])
@pytest.mark.parametrize("exploit", BY_RUN_EXPLOITS, ids=str)
def test_exploit_is_refused_by_the_by_run_endpoints(client, planted_run, exploit, endpoint):
    root, outside = planted_run
    before = snapshot(root, outside)
    response = client.get(f"{endpoint}?run_id={RUN}&path={exploit.wire}")
    assert_refused(response.status_code, response.content, exploit)
    assert snapshot(root, outside) == before


def test_by_run_control_requests_succeed(client, planted_run):
    """Control: the run resolves and its honest files are served."""
    assert client.get(f"/get-artifact?run_id={RUN}&path=ok.txt").content == b"fine"
    listing = client.get(f"/api/2.0/mlflow/artifacts/list?run_id={RUN}").json()
    assert listing["files"] == [{"path": "ok.txt", "is_dir": False, "file_size": 4}]
