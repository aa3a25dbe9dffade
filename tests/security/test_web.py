"""Advisory classes about browsers and credentials, against a real server.

XSS through run names, tags and artifacts served as HTML/SVG; DNS rebinding; CSRF; unprotected routes;
and token and session attacks. Each exploit is refused and changes nothing on disk or in the database.
"""

from __future__ import annotations

import re

import httpx
import pytest

from tests.security.conftest import A, R, Unchanged, make_user

# The server follows MLGATE_TEST_BACKEND: CI runs this module again on PostgreSQL.
pytestmark = pytest.mark.backend_switch

PUBLIC = {"/health", "/ready", "/version", "/api/3.0/mlflow/server-info"}


def _cookie(response: httpx.Response, name: str) -> str | None:
    """A cookie's value from Set-Cookie (read by hand: the server marks cookies Secure, we speak plain HTTP)."""
    for header in response.headers.get_list("set-cookie"):
        key, _, rest = header.partition("=")
        if key.strip() == name:
            return rest.split(";", 1)[0]
    return None


def login(server, username: str, password: str) -> tuple[str, str]:
    """Sign in through the login form; returns (session cookie value, the session's CSRF token)."""
    with httpx.Client(base_url=server.url, timeout=30) as browser:
        page = browser.get("/login")
        form_token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        done = browser.post("/login", data={"username": username, "password": password, "csrf_token": form_token,
                                            "next": "/"},
                            headers={"Cookie": f"mlgate_csrf={_cookie(page, 'mlgate_csrf')}"})
        assert done.status_code == 303, done.text
        session = _cookie(done, "mlgate_session")
        assert session
        me = browser.get(f"{A}/users/current", headers={"Cookie": f"mlgate_session={session}"})
        assert me.status_code == 200, me.text
        return session, me.json()["csrf_token"]


@pytest.fixture(scope="module")
def admin(server):
    """An httpx client authenticated as the admin with HTTP Basic."""
    with httpx.Client(base_url=server.url, auth=server.admin_auth, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def run_ids(admin):
    """An experiment and run to aim at."""
    exp = admin.post(f"{A}/experiments/create", json={"name": "sec-web"}).json()["experiment_id"]
    run = admin.post(f"{A}/runs/create", json={"experiment_id": exp}).json()["run"]["info"]["run_id"]
    return exp, run


XSS = '<script>alert(document.domain)</script><img src=x onerror=alert(1)>'
PAYLOADS = {
    "page.html": (b"<html><body><script>alert(document.cookie)</script></body></html>", "text/html"),
    "image.svg": (b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>',
                  "image/svg+xml"),
    "page.htm": (b"<script>fetch('/api/2.0/mlflow/users/tokens/create')</script>", "text/html"),
    "data.txt": (b"<html><script>alert(3)</script></html>", "text/plain"),
}


def _assert_inert_download(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"].startswith("attachment")
    assert response.headers["x-content-type-options"] == "nosniff"
    csp = response.headers["content-security-policy"]
    assert "sandbox" in csp
    assert "default-src 'none'" in csp


def test_xss_run_names_tags_and_html_artifacts(server, admin, run_ids):
    exp, run = run_ids
    assert admin.post(f"{A}/runs/update", json={"run_id": run, "run_name": XSS}).status_code == 200
    assert admin.post(f"{A}/runs/set-tag", json={"run_id": run, "key": "note", "value": XSS}).status_code == 200
    # Names and tags come back only as JSON, never as a page a browser would render.
    got = admin.get(f"{A}/runs/get", params={"run_id": run})
    assert got.headers["content-type"].startswith("application/json")
    assert got.headers["x-content-type-options"] == "nosniff"
    assert got.json()["run"]["info"]["run_name"] == XSS
    assert admin.post(f"{A}/runs/log-parameter", json={"run_id": run, "key": "p", "value": XSS}).status_code == 200
    hostile_exp = admin.post(f"{A}/experiments/create", json={"name": "exp" + XSS}).json()["experiment_id"]
    for name, (body, _) in PAYLOADS.items():
        assert admin.put(f"{R}/artifacts/{exp}/{run}/artifacts/{name}", content=body).status_code == 200
    unchanged = Unchanged(server)
    # The web UI renders the same values as text: escaped, under a CSP that forbids inline script.
    for path in (f"/runs/{run}", f"/experiments/{exp}", f"/experiments/{hostile_exp}", "/"):
        page = admin.get(path)
        assert page.status_code == 200, path
        assert "<script>alert" not in page.text, path
        assert "<img src=x" not in page.text, path
        assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "&lt;script&gt;alert(document.domain)" in admin.get(f"/runs/{run}").text
    for name, (body, _) in PAYLOADS.items():
        for response in (admin.get(f"{R}/artifacts/{exp}/{run}/artifacts/{name}"),
                         admin.get("/get-artifact", params={"run_id": run, "path": name}),
                         admin.get(f"/ajax-api/2.0/mlflow-artifacts/artifacts/{exp}/{run}/artifacts/{name}")):
            _assert_inert_download(response)
            assert response.content == body
    # The login page reflects `next` and the username only escaped.
    page = httpx.get(server.url + "/login", params={"next": '"><script>alert(1)</script>'})
    assert "<script>alert(1)" not in page.text
    # Our own HTML pages forbid inline scripts, so an injection that slipped through would still not run.
    assert "script-src 'self'" in page.headers["content-security-policy"]
    unchanged.check()


@pytest.mark.parametrize("host", ["10.rebind.evil.example", "localhost.evil.example", "127.0.0.1.nip.io",
                                  "evil.example:5000", "169.254.169.254"])
def test_dns_rebinding_host_header(server, admin, run_ids, host):
    exp, run = run_ids
    unchanged = Unchanged(server)
    for method, path, body in (("GET", f"{A}/experiments/search", None),
                               ("POST", f"{A}/experiments/create", {"name": "rebound"}),
                               ("GET", "/get-artifact", None),
                               ("PUT", f"{R}/artifacts/{exp}/{run}/artifacts/rebound.txt", None),
                               ("GET", "/version", None)):
        response = admin.request(method, path, json=body, headers={"Host": host},
                                 params={"run_id": run, "path": "page.html"} if path == "/get-artifact" else None)
        assert response.status_code == 400, (host, path, response.status_code)
        assert response.json()["error_code"] == "BAD_REQUEST"
    # /health and /ready alone answer any Host (load-balancer and orchestrator probes); they reveal nothing
    # (readiness names failed checks only) and change nothing.
    assert admin.get("/health", headers={"Host": host}).status_code == 200
    ready = admin.get("/ready", headers={"Host": host})
    assert ready.status_code == 200, ready.text
    assert str(server.workdir) not in ready.text
    assert server.backend_store_uri not in ready.text
    unchanged.check()


@pytest.fixture(scope="module")
def alice(server):
    """A non-admin user with a password (for browser sessions) and a token."""
    actor = make_user(server, "alice-web")
    return actor, actor.password


def test_csrf_cookie_session_writes(server, alice):
    _, password = alice
    session, csrf = login(server, "alice-web", password)
    cookie = {"Cookie": f"mlgate_session={session}"}
    unchanged = Unchanged(server)
    attempts = [
        {**cookie, "X-CSRF-Token": csrf, "Origin": "https://evil.example"},
        {**cookie, "X-CSRF-Token": csrf, "Origin": "null"},
        {**cookie, "X-CSRF-Token": csrf, "Sec-Fetch-Site": "cross-site"},
        {**cookie},  # same-site script without the session's CSRF token
        {**cookie, "X-CSRF-Token": "0" * 43},
    ]
    for headers in attempts:
        response = httpx.post(server.url + f"{A}/experiments/create", json={"name": "csrf-made"}, headers=headers)
        assert response.status_code == 403, (headers.keys(), response.text)
        assert "error_code" in response.json()
    # A classic cross-site HTML form post (no JSON, no token).
    form = httpx.post(server.url + f"{A}/experiments/create", data={"name": "csrf-form"},
                      headers={**cookie, "Origin": "https://evil.example"})
    assert form.status_code == 403
    # Login CSRF: a form post to /login without the double-submit token starts no session.
    forged = httpx.post(server.url + "/login", data={"username": "alice-web", "password": password, "next": "/"})
    assert forged.status_code == 403
    assert _cookie(forged, "mlgate_session") is None
    # Logout CSRF: without the session's token the session survives.
    out = httpx.post(server.url + "/logout", headers=cookie)
    assert out.status_code == 403
    assert httpx.get(server.url + f"{A}/users/current", headers=cookie).status_code == 200
    unchanged.check()
    # Control: the same request with the token and no cross-site markers is accepted, so the refusals above
    # were about CSRF and not a broken session.
    allowed = httpx.post(server.url + f"{A}/experiments/create", json={"name": "csrf-control"},
                         headers={**cookie, "X-CSRF-Token": csrf})
    assert allowed.status_code == 200, allowed.text


def _routes(admin) -> list[tuple[str, str]]:
    """Every documented (method, path) with path parameters filled in."""
    doc = admin.get("/api/openapi.json")
    assert doc.status_code == 200, doc.text
    out = []
    for path, ops in doc.json()["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        for method in ops:
            out.append((method.upper(), concrete))
            if concrete.startswith("/api/"):
                out.append((method.upper(), "/ajax-api/" + concrete[len("/api/"):]))
    assert len(out) > 100
    return out


def test_unprotected_routes_refuse_anonymous(server, admin):
    routes = _routes(admin)
    extra = [("GET", "/api/openapi.json"), ("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/redoc"),
             ("POST", "/graphql"), ("POST", "/ajax-api/graphql"), ("GET", "/graphql"),
             ("POST", "/v1/traces"), ("GET", "/api/2.0/mlflow/users/list"),
             ("POST", "/api/2.0/mlflow/users/create"), ("GET", "/metrics")]
    unchanged = Unchanged(server)
    with httpx.Client(base_url=server.url, timeout=30) as anonymous:
        for method, path in routes + extra:
            response = anonymous.request(method, path, content=b"{}", headers={"Content-Type": "application/json"})
            if path in PUBLIC or path.replace("/ajax-api/", "/api/", 1) in PUBLIC:
                assert response.status_code == 200, (method, path)
            else:
                assert response.status_code == 401, (method, path, response.status_code)
                assert "www-authenticate" in response.headers
        for path in ("/health", "/version", "/api/3.0/mlflow/server-info", "/login"):
            assert anonymous.get(path).status_code == 200
        # The web UI's pages (outside the OpenAPI document) need a login too.
        for path in ("/", "/experiments/0", "/runs/" + "0" * 32, "/runs/" + "0" * 32 + "?path=../.."):
            assert anonymous.get(path).status_code == 401, path
    unchanged.check()


def test_unprotected_routes_admin_api_refuses_non_admin(server, admin):
    bob = make_user(server, "bob-web")
    unchanged = Unchanged(server)
    for method, path in _routes(admin):
        if "/mlgate/" not in path:
            continue
        response = httpx.request(method, server.url + path, json={}, headers=bob.headers)
        assert response.status_code in (403, 404), (method, path, response.status_code)
    unchanged.check()


def test_token_in_query_string_refused(server, admin):
    bob = make_user(server, "bob-query")
    unchanged = Unchanged(server)
    for name in ("access_token", "token", "api_key", "auth"):
        response = httpx.get(server.url + f"{A}/experiments/search", params={name: bob.token, "max_results": 1})
        assert response.status_code in (400, 401), (name, response.status_code)
    # Even alongside a valid header, a credential in the URL is refused (it leaks into logs and histories).
    both = httpx.get(server.url + f"{A}/experiments/search", params={"token": bob.token}, headers=bob.headers)
    assert both.status_code in (400, 401)
    unchanged.check()


def test_revoked_token_refused(server, admin):
    bob = make_user(server, "bob-revoke")
    assert httpx.get(server.url + f"{A}/users/current", headers=bob.headers).status_code == 200
    listed = admin.get(f"{A}/users/tokens/list", params={"username": "bob-revoke"}).json()
    token_id = next(iter(listed.values()))[0]["id"]
    assert admin.post(f"{A}/users/tokens/revoke", json={"token_id": token_id}).status_code == 200
    unchanged = Unchanged(server)
    for method, path in (("GET", f"{A}/users/current"), ("POST", f"{A}/experiments/create")):
        response = httpx.request(method, server.url + path, json={"name": "after-revoke"}, headers=bob.headers)
        assert response.status_code == 401, (path, response.status_code)
    unchanged.check()


def _tamper(value: str) -> list[str]:
    """Variants of a signed cookie an attacker could forge: a flipped character, a swapped payload, none."""
    flipped = value[:-2] + ("A" if value[-2] != "A" else "B") + value[-1]
    head, _, tail = value.partition(".")
    return [flipped, value[:len(value) // 2], "x" + value, head, "." + tail, "admin", ""]


def test_tampered_session_cookie_and_after_logout(server, alice):
    _, password = alice
    session, csrf = login(server, "alice-web", password)
    unchanged = Unchanged(server)
    for forged in _tamper(session):
        response = httpx.get(server.url + f"{A}/users/current", headers={"Cookie": f"mlgate_session={forged}"})
        assert response.status_code == 401, forged
    unchanged.check()
    out = httpx.post(server.url + "/logout", data={"csrf_token": csrf},
                     headers={"Cookie": f"mlgate_session={session}"})
    assert out.status_code == 303
    unchanged = Unchanged(server)
    for method, path in (("GET", f"{A}/users/current"), ("POST", f"{A}/experiments/create")):
        response = httpx.request(method, server.url + path, json={"name": "after-logout"},
                                 headers={"Cookie": f"mlgate_session={session}", "X-CSRF-Token": csrf})
        assert response.status_code == 401, (path, response.status_code)
    unchanged.check()
