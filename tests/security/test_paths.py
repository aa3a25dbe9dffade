"""Advisory classes about the file system and outbound requests, against a real server.

Path traversal in artifact paths and in model-version ``source``, local file read through an experiment's
``artifact_location``, and SSRF through artifact URIs and sources. Every exploit is refused, nothing
changes on disk (inside or outside the artifact root) or in the database, and no outbound connection
is ever made.
"""

from __future__ import annotations

import base64
import http.client
from urllib.parse import urlsplit

import httpx
import pytest

from tests.security.conftest import SECRET_TEXT, A, Listener, R, Unchanged

# Raw traversal shapes: dot segments, encoded once, encoded twice, backslashes, absolute paths.
TRAVERSALS = [
    "../../../secret.txt",
    "%2e%2e/%2e%2e/%2e%2e/secret.txt",
    "%252e%252e/%252e%252e/%252e%252e/secret.txt",
    "..%5c..%5c..%5csecret.txt",
    "..\\..\\..\\secret.txt",
    "/etc/passwd",
    "%2fetc%2fpasswd",
]


@pytest.fixture(scope="module")
def world(server):
    """An admin-owned experiment, run (with one artifact), registered model version and logged model."""
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
    yield admin, exp, run, made.json()["model_version"]["version"], logged.json()["model"]["info"]["model_id"]
    admin.close()


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


def _refused(status: int, body: bytes) -> None:
    assert 400 <= status < 500, (status, body[:200])
    assert SECRET_TEXT.encode() not in body
    assert b"root:" not in body


def test_path_traversal_artifact_proxy(server, world):
    _, exp, run, *_ = world
    unchanged = Unchanged(server)
    base = f"{R}/artifacts/{exp}/{run}/artifacts/"
    for shape in TRAVERSALS:
        target = base + shape.replace("\\", "%5c") if "\\" in shape else base + shape
        for method in ("GET", "PUT", "DELETE"):
            _refused(*_raw(server, method, target, b"pwned" if method == "PUT" else None))
        for prefix in (f"{exp}/{run}/artifacts/", ""):
            _refused(*_raw(server, "GET", f"{R}/artifacts?path={prefix}{shape.replace(chr(92), '%5c')}"))
        _refused(*_raw(server, "POST", f"{R}/mpu/create/{exp}/{run}/artifacts/{shape.lstrip('/')}", b"{}"))
    unchanged.check()


def test_path_traversal_run_artifact_endpoints(server, world):
    admin, _exp, run, version, logged_model = world
    unchanged = Unchanged(server)
    for shape in TRAVERSALS:
        for route, params in (
            ("/get-artifact", {"run_id": run}),
            ("/get-artifact", {"run_uuid": run}),
            (f"{A}/artifacts/list", {"run_id": run}),
            ("/model-versions/get-artifact", {"name": "sec-model", "version": version}),
        ):
            # httpx percent-encodes the query value once, so '%2e' arrives literally and '..' arrives decoded.
            response = admin.get(route, params={**params, "path": shape})
            _refused(response.status_code, response.content)
        model = f"{A}/logged-models/{logged_model}/artifacts"
        for route, name in ((f"{model}/files", "artifact_file_path"), (f"{model}/directories",
                                                                         "artifact_directory_path")):
            response = admin.get(route, params={name: shape})
            _refused(response.status_code, response.content)
    unchanged.check()


def test_path_traversal_ui_artifact_browser(server, world):
    admin, _, run, *_ = world
    unchanged = Unchanged(server)
    for shape in [*TRAVERSALS, "model/../../..", "model/%2e%2e/%2e%2e"]:
        page = admin.get(f"/runs/{run}", params={"path": shape})
        # The run page reports the bad path and lists nothing from outside the run's artifacts.
        assert page.status_code in (200, 400, 404), (shape, page.status_code)
        assert "Invalid path" in page.text, shape
        for outside in ("mlgate.db", "server.log", "root:x:", SECRET_TEXT):
            assert outside not in page.text, (shape, outside)
    unchanged.check()


def test_path_traversal_lookalike_segments_stay_inside_the_run(server, world):
    # Fullwidth dots, overlong UTF-8 and '.' segments are not '..': if accepted they must name files
    # inside this run's artifact directory and nowhere else.
    _, exp, run, *_ = world
    run_dir = f"artifacts/{exp}/{run}/artifacts/"
    before = {k: v for k, v in Unchanged(server).before[0].items() if not k.startswith(run_dir)}
    base = f"{R}/artifacts/{exp}/{run}/artifacts/"
    for shape in ("%ef%bc%8e%ef%bc%8e/%ef%bc%8e%ef%bc%8e/secret.txt", "%c0%ae%c0%ae/%c0%ae%c0%ae/secret.txt",
                  "x/./y.txt", "..%00/secret.txt", "....//....//secret.txt"):
        status, body = _raw(server, "PUT", base + shape, b"planted")
        assert status in (200, 400), (shape, status, body)
    after = Unchanged(server).before
    assert {k: v for k, v in after[0].items() if not k.startswith(run_dir)} == before
    assert (server.workdir / "secret.txt").read_text() == SECRET_TEXT


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
