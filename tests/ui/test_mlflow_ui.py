"""MLflow's own web UI at / (the mlflow-ui extra): who gets it, its files, its CSP, the CSRF token it carries."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from gateway.settings import SettingsError
from gateway.ui import mlflow_ui
from gateway.ui.mlflow_ui import CONTENT_SECURITY_POLICY, find_build, static_path
from tests.conftest import TEST_ADMIN_PASSWORD, TEST_ADMIN_TOKEN
from tests.ui.conftest import BASE, READER_PASSWORD, csrf_of, ok, sign_in

A = "/api/2.0/mlflow"
BUILD, WHY_NOT = find_build()
needs_build = pytest.mark.skipif(BUILD is None, reason=f"{WHY_NOT}")


@pytest.fixture
def app(app_factory):
    return app_factory(web_ui="mlflow")


@pytest.fixture
def api(app):
    with TestClient(app, base_url=BASE) as client:
        client.headers["Authorization"] = f"Bearer {TEST_ADMIN_TOKEN}"
        yield client


def _meta(html: str, name: str) -> str:
    found = re.search(rf'<meta name="{name}" content="([^"]*)">', html)
    assert found, f"no {name} meta"
    return found.group(1)


@needs_build
def test_anonymous_person_is_sent_to_sign_in_and_a_signed_in_one_gets_mlflows_ui(app, api):
    anonymous = TestClient(app, base_url=BASE, follow_redirects=False)
    page = anonymous.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=/"
    assert anonymous.get("/").status_code == 401  # an API client: no page, no redirect

    admin = sign_in(app, "admin", TEST_ADMIN_PASSWORD)
    page = admin.get("/")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY + "; frame-ancestors 'none'"
    assert page.headers["cache-control"] == "no-store"
    html = page.text
    assert '<div id="root"' in html
    assert "<title>MLflow</title>" in html
    # mlgate's bar runs before the bundle (both deferred): it must wrap fetch before the first call.
    assert html.index("/static/mlflow-bar.js") < html.index("static-files/static/js/main.")
    assert html.index('<meta charset="utf-8"/>') < html.index("mlgate-csrf-token")
    assert _meta(html, "mlgate-user") == "admin"
    assert _meta(html, "mlgate-admin") == "1"
    # The token is the session's: a write with it passes, the same write without it does not.
    token = _meta(html, "mlgate-csrf-token")
    assert token == csrf_of(admin.get("/account").text)
    made = admin.post(f"{A}/experiments/create", json={"name": "from-the-ui"}, headers={"X-CSRF-Token": token})
    assert made.status_code == 200, made.text
    refused = admin.post(f"{A}/experiments/create", json={"name": "no-token"})
    assert refused.status_code == 403


@needs_build
def test_the_bar_knows_a_non_admin_and_mlgates_own_pages_stay_reachable(app, api):
    ok(api.post(f"{A}/users/create", json={"username": "reader", "password": READER_PASSWORD}))
    reader = sign_in(app, "reader", READER_PASSWORD)
    html = reader.get("/").text
    assert _meta(html, "mlgate-user") == "reader"
    assert _meta(html, "mlgate-admin") == ""
    own = reader.get("/experiments")
    assert own.status_code == 200
    assert "Experiments" in own.text
    assert 'href="/"' in own.text
    for path in ("/account", "/models", "/prompts"):
        assert reader.get(path).status_code == 200, path
    bar = reader.get("/static/mlflow-bar.js")
    assert bar.status_code == 200
    assert bar.headers["content-type"].startswith("text/javascript")
    assert "X-CSRF-Token" in bar.text


@needs_build
def test_the_bundle_files_are_served_with_their_types_and_cache_lifetimes(app):
    client = TestClient(app, base_url=BASE)  # public code: no sign-in needed
    main_js = re.search(r'src="static-files/(static/js/main\.[0-9a-f]+\.js)"', BUILD.index_rest).group(1)
    script = client.get(f"/static-files/{main_js}")
    assert script.status_code == 200
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert script.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert script.headers["x-content-type-options"] == "nosniff"
    favicon = client.get("/static-files/favicon.ico")
    assert favicon.status_code == 200
    assert favicon.headers["content-type"] == "image/x-icon"
    assert favicon.headers["cache-control"] == "public, max-age=300"
    css = re.search(r'href="static-files/(static/css/main\.[0-9a-f]+\.css)"', BUILD.index_rest).group(1)
    assert client.get(f"/static-files/{css}").headers["content-type"] == "text/css; charset=utf-8"


@needs_build
@pytest.mark.parametrize("path", [
    "../__init__.py", "..%2f..%2f__init__.py", "%2e%2e/%2e%2e/handlers.py", "static/../../../handlers.py",
    "/etc/passwd", "%2fetc%2fpasswd", "static/js", "static", "", ".hidden", "static/./js/x.js",
    "..\\..\\handlers.py", "favicon.ico%00.js", "nothing-here.js",
])
def test_no_path_leaves_the_build_folder(app, path):
    client = TestClient(app, base_url=BASE)
    answer = client.get(f"/static-files/{path}")
    # 404 from the file route, or 401 when the client resolved the dots to a path no route serves.
    assert answer.status_code in (401, 404), (path, answer.status_code)
    assert b"import" not in answer.content
    assert b"root:" not in answer.content


def test_static_path_resolves_only_regular_files_inside_the_root(tmp_path: Path):
    root = tmp_path / "build"
    (root / "static").mkdir(parents=True)
    (root / "static" / "a.js").write_text("x")
    (tmp_path / "secret.txt").write_text("s")
    (root / "static" / "out").symlink_to(tmp_path / "secret.txt")
    assert static_path(root.resolve(), "static/a.js") == (root / "static" / "a.js").resolve()
    for bad in ("static/out", "../secret.txt", "static/../../secret.txt", "static", "/static/a.js",
                "static//a.js", "static\\a.js", ".x", "a" * 600):
        assert static_path(root.resolve(), bad) is None, bad


def test_without_the_build_mlgates_pages_stay_at_the_root(app_factory, monkeypatch):
    monkeypatch.setattr(mlflow_ui, "find_build", lambda: (None, "MLflow's web UI is not installed"))
    app = app_factory(web_ui="auto")
    admin = sign_in(app, "admin", TEST_ADMIN_PASSWORD)
    home = admin.get("/")
    assert home.status_code == 200
    assert 'action="/experiments"' in home.text
    assert "mlgate-bar" not in home.text
    with TestClient(app, base_url=BASE) as api:
        info = api.get("/api/3.0/mlflow/server-info").json()
    assert info["mlgate_web_ui"] == "mlgate"
    assert info["mlflow_ui_version"] is None
    with pytest.raises(SettingsError, match="--web-ui / MLGATE_WEB_UI: mlflow was chosen but MLflow's web UI"):
        app_factory(web_ui="mlflow")


def test_an_unknown_web_ui_setting_is_refused(settings):
    assert any("--web-ui" in p for p in replace(settings, web_ui="react").validate())


@needs_build
def test_server_info_and_the_admin_page_name_the_pinned_ui_version(app, api):
    info = api.get("/api/3.0/mlflow/server-info").json()
    assert info["mlgate_web_ui"] == "mlflow"
    assert info["mlflow_ui_version"] == mlflow_ui.PINNED_VERSION == "3.17.2"
    admin = sign_in(app, "admin", TEST_ADMIN_PASSWORD)
    assert f"MLflow's own UI, version {mlflow_ui.PINNED_VERSION}" in admin.get("/admin").text


def test_sign_in_returns_to_the_fragment_the_login_page_carried(app_factory):
    app = app_factory()
    browser = TestClient(app, base_url=BASE, follow_redirects=False)
    form = browser.get("/login?next=/")
    assert '<script defer src="/static/login.js"></script>' in form.text
    # login.js appends location.hash to the "next" field; the server keeps it in the redirect.
    done = browser.post("/login", data={"username": "admin", "password": TEST_ADMIN_PASSWORD,
                                        "csrf_token": csrf_of(form.text), "next": "/#/experiments/1/runs/abc"},
                        headers={"Origin": BASE})
    assert done.status_code == 303
    assert done.headers["location"] == "/#/experiments/1/runs/abc"
    script = browser.get("/static/login.js")
    assert script.status_code == 200
    assert "location.hash" in script.text
