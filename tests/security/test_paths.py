"""Advisory classes about the file system and outbound requests, against a real server.

Path traversal in artifact paths and in model-version ``source``, local file read through an experiment's
``artifact_location``, and SSRF through artifact URIs and sources. Every exploit is refused, nothing
changes on disk (inside or outside the artifact root) or in the database, and no outbound connection
is ever made.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
from urllib.parse import unquote, urlsplit

import httpx
import pytest

from tests.security.conftest import SECRET_TEXT, A, Listener, R, Unchanged, plant_secret

# The server follows MLGATE_TEST_BACKEND: CI runs this module again on PostgreSQL.
pytestmark = pytest.mark.backend_switch

# How a client can spell one parent-directory step once the server has decoded the URL once: plain, percent-
# encoded (either case, one or both dots), and followed by an encoded slash or backslash.
_UPS = ("../", "%2e%2e/", "%2E%2E/", ".%2e/", "%2e./", "..%2f", "..%2F", "..%5c", "%2e%2e%5c")
# Every spelling climbs 1 to 6 levels, so from any artifact directory (a run's is 3 below the artifact root, a
# logged model's 4, a version's source 4) some shape lands on one of the planted secret.txt files.
DOT_SHAPES = [up * depth + "secret.txt" for up in _UPS for depth in range(1, 7)]
# Encoded twice: '%252e' arrives as '%2e' after the one decoding every server does.
DOUBLE_ENCODED = [("%252e%252e/" * depth) + "secret.txt" for depth in (1, 4, 6)] + ["..%252fsecret.txt"]
ABSOLUTE = ["/etc/passwd", "%2fetc%2fpasswd", "//etc/passwd", "C:%5cWindows%5cwin.ini"]
# Shapes sent in a query string or the URL path byte for byte; every one must be refused with exactly 400.
TRAVERSALS = DOT_SHAPES + DOUBLE_ENCODED + ABSOLUTE


@pytest.fixture(scope="module")
def world(server):
    """An admin-owned experiment, run (with one artifact), registered model version and logged model.

    Secrets are planted at every level between the artifact root and the artifact directories (the workdir and
    the root itself hold theirs already), so a traversal of any depth that escapes finds one to read.
    """
    admin = httpx.Client(base_url=server.url, auth=server.admin_auth, timeout=30)
    exp = admin.post(f"{A}/experiments/create", json={"name": "sec-paths"}).json()["experiment_id"]
    run = admin.post(f"{A}/runs/create", json={"experiment_id": exp}).json()["run"]["info"]["run_id"]
    put = admin.put(f"{R}/artifacts/{exp}/{run}/artifacts/model/MLmodel", content=b"flavors: {}\n")
    assert put.status_code == 200, put.text
    assert admin.post(f"{A}/registered-models/create", json={"name": "sec-model"}).status_code == 200
    made = admin.post(f"{A}/model-versions/create", json={
        "name": "sec-model", "source": f"mlflow-artifacts:/{exp}/{run}/artifacts/model", "run_id": run})
    assert made.status_code == 200, made.text
    logged = admin.post(f"{A}/logged-models", json={"experiment_id": exp})
    assert logged.status_code == 200, logged.text
    model_id = logged.json()["model"]["info"]["model_id"]
    root = server.workdir / "artifacts"
    plant_secret(root / exp, "experiment")
    plant_secret(root / exp / run, "run")
    plant_secret(root / exp / "models", "models")
    plant_secret(root / exp / "models" / model_id, "logged-model")
    yield admin, exp, run, made.json()["model_version"]["version"], model_id
    admin.close()


def test_every_planted_secret_is_reachable_by_some_shape(server, world):
    # The test's own premise: resolving each dot shape naively (as a vulnerable server would) from each artifact
    # directory the tests attack reaches every planted secret, so a server that followed '..' would leak one.
    _, exp, run, _, model_id = world
    root = server.workdir / "artifacts"
    starts = [root / exp / run / "artifacts", root / exp / run / "artifacts" / "model",
              root / exp / "models" / model_id / "artifacts"]
    reached = set()
    for start in starts:
        for shape in DOT_SHAPES:
            plain = unquote(shape).replace("\\", "/")
            target = os.path.normpath(start / plain)
            if os.path.isfile(target):
                reached.add(target)
    assert set(_planted(server)) == reached


def _planted(server) -> dict[str, str]:
    """The planted secrets (path -> content); files named secret.txt inside an artifacts directory are not."""
    return {str(p): p.read_text() for p in server.workdir.rglob("secret.txt")
            if "artifacts" not in p.relative_to(server.workdir).parts[1:-1]}


def _raw(server, method: str, target: str, body: bytes | None = None) -> tuple[int, bytes]:
    """Send ``target`` byte for byte (httpx would normalise dot segments away before sending)."""
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    creds = base64.b64encode(":".join(server.admin_auth).encode()).decode()
    try:
        conn.request(method, target, body=body, headers={"Authorization": f"Basic {creds}"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _no_leak(body: bytes, what) -> None:
    assert SECRET_TEXT.encode() not in body, what
    assert b"root:x:" not in body, what
    assert b"[fonts]" not in body, what


def _refused(status: int, body: bytes, what=None) -> None:
    """Exactly the documented refusal: 400 INVALID_PARAMETER_VALUE, and no secret in the body."""
    _no_leak(body, what)
    assert status == 400, (what, status, body[:300])
    assert json.loads(body)["error_code"] == "INVALID_PARAMETER_VALUE", (what, body[:300])


def test_path_traversal_artifact_proxy(server, world):
    _, exp, run, *_ = world
    unchanged = Unchanged(server)
    base = f"{R}/artifacts/{exp}/{run}/artifacts/"
    for shape in TRAVERSALS:
        for method in ("GET", "PUT", "DELETE"):
            _refused(*_raw(server, method, base + shape, b"pwned" if method == "PUT" else None), (method, shape))
        for prefix in (f"{exp}/{run}/artifacts/", ""):
            _refused(*_raw(server, "GET", f"{R}/artifacts?path={prefix}{shape}"), ("list", prefix, shape))
        _refused(*_raw(server, "POST", f"{R}/mpu/create/{exp}/{run}/artifacts/{shape}", b"{}"), ("mpu", shape))
    unchanged.check()


def test_path_traversal_run_artifact_endpoints(server, world):
    _, _exp, run, version, logged_model = world
    unchanged = Unchanged(server)
    model = f"{A}/logged-models/{logged_model}/artifacts"
    for shape in TRAVERSALS:
        # The shape goes into the query string as is: the server decodes it once ('%2e' -> '.', '%252e' -> '%2e').
        for route in (f"/get-artifact?run_id={run}&path=", f"/get-artifact?run_uuid={run}&path=",
                      f"{A}/artifacts/list?run_id={run}&path=",
                      f"/model-versions/get-artifact?name=sec-model&version={version}&path=",
                      f"{model}/files?artifact_file_path=", f"{model}/directories?artifact_directory_path="):
            _refused(*_raw(server, "GET", route + shape), (route, shape))
    unchanged.check()


def test_path_traversal_ui_artifact_browser(server, world):
    _, _, run, *_ = world
    unchanged = Unchanged(server)
    for shape in [*TRAVERSALS, "model/../../..", "model/%2e%2e/%2e%2e"]:
        status, body = _raw(server, "GET", f"/runs/{run}?path={shape}")
        # The run page reports the bad path and lists nothing from outside the run's artifacts.
        assert status in (200, 400, 404), (shape, status)
        page = body.decode()
        assert "Invalid path" in page, shape
        _no_leak(body, shape)
        for outside in ("mlgate.db", "server.log"):
            assert outside not in page, (shape, outside)
    unchanged.check()


def test_path_traversal_lookalike_segments_stay_inside_the_run(server, world):
    # Fullwidth dots, overlong UTF-8 and '.' segments are not '..': if accepted they must name files
    # inside this run's artifact directory and nowhere else, and the database does not change.
    _, exp, run, *_ = world
    run_dir = f"artifacts/{exp}/{run}/artifacts/"
    unchanged = Unchanged(server)
    before = {k: v for k, v in unchanged.before[0].items() if not k.startswith(run_dir)}
    secrets_before = _planted(server)
    base = f"{R}/artifacts/{exp}/{run}/artifacts/"
    for shape in ("%ef%bc%8e%ef%bc%8e/%ef%bc%8e%ef%bc%8e/secret.txt", "%c0%ae%c0%ae/%c0%ae%c0%ae/secret.txt",
                  "x/./y.txt", "..%00/secret.txt", "....//....//secret.txt", "...%2f...%2fsecret.txt"):
        status, body = _raw(server, "PUT", base + shape, b"planted")
        assert status in (200, 400), (shape, status, body)
    disk, db = unchanged._state()
    assert {k: v for k, v in disk.items() if not k.startswith(run_dir)} == before
    assert db == unchanged.before[1], "database changed"
    assert _planted(server) == secrets_before
    assert len(secrets_before) == 6, secrets_before


SOURCES = [
    "file:///etc/passwd",
    "file:/etc",
    "/etc",
    "/etc/passwd",
    "../../secret.txt",
    "file:%2e%2e/%2e%2e/secret.txt",
    "mlflow-artifacts:/../../secret.txt",
    "mlflow-artifacts:/{exp}/{run}/artifacts/../../../../secret.txt",
    "mlflow-artifacts:/{exp}/{run}/artifacts/%2e%2e/%2e%2e/%2e%2e/%2e%2e/secret.txt",
    "runs:/{run}/../../../secret.txt",
    "models:/sec-model/1/../../..",
    "C:\\Windows\\win.ini",
    "\\\\attacker\\share\\model",
]


def test_path_traversal_model_version_source(server, world):
    admin, exp, run, *_ = world
    unchanged = Unchanged(server)
    for template in SOURCES:
        source = template.format(exp=exp, run=run)
        made = admin.post(f"{A}/model-versions/create", json={"name": "sec-model", "source": source, "run_id": run})
        _refused(made.status_code, made.content)
        assert made.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    unchanged.check()


LOCATIONS = ["file:///etc", "file:/etc", "/etc", "/tmp", "../outside", "relative/dir", "./", "~/.ssh",
             "file:///{workdir}", "{workdir}", "mlflow-artifacts:/../..", "mlflow-artifacts:/%2e%2e/%2e%2e"]


def test_local_file_read_artifact_location(server, world):
    admin, *_ = world
    unchanged = Unchanged(server)
    for i, template in enumerate(LOCATIONS):
        location = template.format(workdir=server.workdir)
        made = admin.post(f"{A}/experiments/create", json={"name": f"lfr-{i}", "artifact_location": location})
        _refused(made.status_code, made.content)
        assert made.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert admin.get(f"{A}/experiments/get-by-name", params={"experiment_name": f"lfr-{i}"}).status_code == 404
    unchanged.check()


@pytest.fixture
def canary():
    """A loopback listener that must never see a connection."""
    listener = Listener()
    yield listener
    listener.close()


def test_ssrf_artifact_location_and_sources(server, world, canary):
    admin, exp, run, *_ = world
    targets = ["http://169.254.169.254/latest/meta-data/iam/security-credentials/",
               f"http://127.0.0.1:{canary.port}/model", f"https://127.0.0.1:{canary.port}/model",
               f"mlflow-artifacts://127.0.0.1:{canary.port}/{exp}/{run}/artifacts",
               f"http://localhost:{canary.port}/", f"ftp://127.0.0.1:{canary.port}/x", "gopher://127.0.0.1:6379/_INFO"]
    unchanged = Unchanged(server)
    for i, uri in enumerate(targets):
        made = admin.post(f"{A}/experiments/create", json={"name": f"ssrf-{i}", "artifact_location": uri})
        _refused(made.status_code, made.content)
    unchanged.check()
    assert canary.connections == 0


def test_ssrf_model_version_remote_source_is_never_fetched(server, world, canary):
    # MLflow clients register versions whose files live in remote stores, so a remote `source` is kept as
    # metadata; the server itself must never fetch it: its artifact endpoints refuse and nothing connects.
    admin, *_ = world
    sources = [f"http://127.0.0.1:{canary.port}/model", f"mlflow-artifacts://127.0.0.1:{canary.port}/1/x/artifacts"]
    for source in sources:
        made = admin.post(f"{A}/model-versions/create", json={"name": "sec-model", "source": source})
        if made.status_code != 200:
            _refused(made.status_code, made.content)
            continue
        version = made.json()["model_version"]["version"]
        unchanged = Unchanged(server)
        for path in ("MLmodel", "", "model.pkl"):
            got = admin.get("/model-versions/get-artifact", params={"name": "sec-model", "version": version,
                                                                    "path": path})
            _refused(got.status_code, got.content)
        uri = admin.get(f"{A}/model-versions/get-download-uri", params={"name": "sec-model", "version": version})
        assert uri.status_code == 200
        assert uri.json()["artifact_uri"] == source
        unchanged.check()
    assert canary.connections == 0
