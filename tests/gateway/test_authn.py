"""The authentication middleware: 401/429 shapes, Basic, tokens, cache, lockout, sessions, CSRF, backends."""

from __future__ import annotations

import re
import statistics
import time
from importlib.metadata import EntryPoint

import pytest

from auth.principal import Principal
from tests.gateway.authn_support import (
    ADMIN,
    USER_PASSWORD,
    basic,
    bearer,
    create_token,
    create_user,
    make_client,
)

API = "/api/2.0/mlflow/experiments/search?max_results=1"
CURRENT = "/api/2.0/mlflow/users/current"


@pytest.fixture
def client(app_factory, tmp_path):
    with make_client(app_factory, tmp_path) as c:
        yield c


def _assert_401(response, message: str | None = None):
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith('Basic realm="mlgate"')
    body = response.json()
    assert body["error_code"] == "UNAUTHENTICATED"
    if message:
        assert body["message"] == message


# --- anonymous and public --------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/health", "/version", "/api/3.0/mlflow/server-info", "/login"])
def test_public_paths_need_no_credentials(client, path):
    assert client.get(path).status_code == 200


@pytest.mark.parametrize("path", [API, "/api/2.0/mlflow/runs/get?run_id=x", "/ajax-api/2.0/mlflow/users/current",
                                  "/api/2.0/mlflow-artifacts/artifacts?path="])
def test_anonymous_api_requests_are_refused(client, path):
    _assert_401(client.get(path))


def test_anonymous_writes_are_refused_and_change_nothing(client):
    _assert_401(client.post("/api/2.0/mlflow/experiments/create", json={"name": "sneaky"}))
    found = client.get("/api/2.0/mlflow/experiments/get-by-name?experiment_name=sneaky", headers=ADMIN)
    assert found.status_code == 404


def test_a_browser_is_sent_to_the_login_page(client):
    response = client.get("/#/experiments", headers={"Accept": "text/html,application/xhtml+xml"})
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/"


def test_anonymous_callers_learn_nothing_about_which_paths_exist(client):
    # A path no route serves answers anonymous callers like any protected one, not with a 404.
    _assert_401(client.get("/api/2.0/mlflow/no-such-endpoint"))
    _assert_401(client.post("/internal/admin", json={}))
    assert client.get("/api/2.0/mlflow/no-such-endpoint", headers=ADMIN).status_code == 404


def test_the_api_description_needs_a_login(client):
    _assert_401(client.get("/api/openapi.json"))
    document = client.get("/api/openapi.json", headers=ADMIN)
    assert document.status_code == 200
    assert "/api/2.0/mlflow/experiments/create" in document.json()["paths"]


def test_bad_credentials_still_reach_public_pages_but_nothing_else(client):
    wrong = basic("nobody", "not-the-password-1")
    # The sign-in page and the probes work whatever a stale browser or client sends...
    assert client.get("/login", headers=wrong).status_code == 200
    assert client.get("/health", headers=bearer("mlg_" + "A" * 43)).status_code == 200
    # ...and every other operation is refused with the reason the credentials failed.
    _assert_401(client.get(API, headers=bearer("mlg_" + "A" * 43)), "The access token is invalid, expired or revoked.")
    _assert_401(client.post("/api/2.0/mlflow/experiments/create", json={"name": "x"}, headers=wrong))


def test_a_stale_session_cookie_sends_a_browser_to_sign_in_again(client):
    client.cookies.set("mlgate_session", "forged.value.here")
    page = client.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=/"
    assert client.get("/login", headers={"Accept": "text/html"}).status_code == 200


# --- Basic -----------------------------------------------------------------------------------------

def test_basic_credentials_authenticate(client):
    create_user(client, "alice")
    response = client.get(CURRENT, headers=basic("alice", USER_PASSWORD))
    assert response.status_code == 200
    assert response.json()["user"]["username"] == "alice"
    assert response.json()["auth_method"] == "basic"


@pytest.mark.parametrize("headers", [
    basic("alice", "not-the-password-1"),
    basic("nobody-by-that-name", USER_PASSWORD),
])
def test_wrong_password_or_unknown_user_get_the_same_401(client, headers):
    create_user(client, "alice")
    _assert_401(client.get(API, headers=headers), "Invalid username or password.")


@pytest.mark.parametrize("value", ["Basic !!!notbase64", "Basic " + "bm9jb2xvbg==", "Bearer not-a-token"])
def test_malformed_credentials_get_401(client, value):
    _assert_401(client.get(API, headers={"Authorization": value}))


def test_the_password_hash_is_verified_once_per_ttl(client):
    create_user(client, "alice")
    hasher = client.app.state.identity.hasher
    before = hasher.verifications
    for _ in range(25):
        assert client.get(API, headers=basic("alice", USER_PASSWORD)).status_code == 200
    assert hasher.verifications == before + 1
    # A wrong password is never served from the cache.
    client.get(API, headers=basic("alice", "not-the-password-1"))
    assert hasher.verifications == before + 2


def test_password_change_ends_the_cached_credential_at_once(client):
    create_user(client, "alice")
    assert client.get(API, headers=basic("alice", USER_PASSWORD)).status_code == 200
    client.patch("/api/2.0/mlflow/users/update-password", json={"username": "alice", "password": "new-secret-value-22"},
                 headers=ADMIN).raise_for_status()
    _assert_401(client.get(API, headers=basic("alice", USER_PASSWORD)))
    assert client.get(API, headers=basic("alice", "new-secret-value-22")).status_code == 200


def test_disabled_user_is_refused(client):
    create_user(client, "alice")
    assert client.get(API, headers=basic("alice", USER_PASSWORD)).status_code == 200
    client.patch("/api/2.0/mlflow/users/update-disabled", json={"username": "alice", "disabled": True},
                 headers=ADMIN).raise_for_status()
    _assert_401(client.get(API, headers=basic("alice", USER_PASSWORD)))


# --- tokens ----------------------------------------------------------------------------------------

def test_bearer_token_and_token_as_basic_password(client):
    create_user(client, "alice")
    token = create_token(client, basic("alice", USER_PASSWORD))
    for headers in (bearer(token), basic("anything", token), basic("", token)):
        response = client.get(CURRENT, headers=headers)
        assert response.status_code == 200, response.text
        assert response.json()["user"]["username"] == "alice"
        assert response.json()["auth_method"] == "token"


def test_revoked_token_is_refused(client):
    create_user(client, "alice")
    token = create_token(client, basic("alice", USER_PASSWORD))
    listed = client.get("/api/2.0/mlflow/users/tokens/list", headers=bearer(token)).json()["tokens"]
    client.post("/api/2.0/mlflow/users/tokens/revoke", json={"token_id": listed[0]["id"]},
                headers=bearer(token)).raise_for_status()
    _assert_401(client.get(API, headers=bearer(token)), "The access token is invalid, expired or revoked.")


def test_expired_token_is_refused(client):
    create_user(client, "alice")
    token = create_token(client, basic("alice", USER_PASSWORD))
    from sqlalchemy import update

    from auth.tables import access_tokens

    with client.app.state.tracking.engine.begin() as conn:
        conn.execute(update(access_tokens).values(expires_at=int(time.time() * 1000) - 1))
    time.sleep(1.1)  # outlive the brief token cache
    _assert_401(client.get(API, headers=bearer(token)))


@pytest.mark.parametrize("query", ["access_token=x", "token=abc", "q=mlg_" + "A" * 43])
def test_a_token_in_the_query_string_is_refused(client, query):
    response = client.get(f"/api/2.0/mlflow/experiments/search?max_results=1&{query}", headers=ADMIN)
    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def test_the_middlewares_own_refusal_carries_nosniff():
    """The refusal is written by the middleware itself (the one refusal writer), not by the app behind it."""
    import anyio

    from gateway.authn import AuthenticationMiddleware

    async def never(scope, receive, send):
        raise AssertionError("the request must not reach the app")

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b""}

    middleware = AuthenticationMiddleware(never, authenticator=None, sessions=None)
    scope = {"type": "http", "method": "GET", "path": "/api/2.0/mlflow/experiments/search",
             "query_string": b"access_token=x", "headers": []}
    anyio.run(middleware, scope, receive, send)
    assert sent[0]["status"] == 400
    assert (b"x-content-type-options", b"nosniff") in sent[0]["headers"]


def test_read_only_token_reads_but_cannot_write(client):
    create_user(client, "alice")
    token = create_token(client, basic("alice", USER_PASSWORD), read_only=True)
    assert client.get(API, headers=bearer(token)).status_code == 200
    assert client.post("/api/2.0/mlflow/experiments/search", json={"max_results": 1},
                       headers=bearer(token)).status_code == 200
    refused = client.post("/api/2.0/mlflow/experiments/create", json={"name": "ro"}, headers=bearer(token))
    assert refused.status_code == 403
    assert refused.json()["error_code"] == "PERMISSION_DENIED"


# --- lockout ---------------------------------------------------------------------------------------

def test_per_user_lockout_with_retry_after_and_recovery(app_factory, tmp_path):
    auth = {"lockout": {"user_max_failures": 3, "address_max_failures": 500, "base_seconds": 2}}
    with make_client(app_factory, tmp_path, auth) as client:
        create_user(client, "alice")
        for _ in range(3):
            _assert_401(client.get(API, headers=basic("alice", "guess-number-xyz")))
        locked = client.get(API, headers=basic("alice", USER_PASSWORD))  # even the right password waits
        assert locked.status_code == 429
        assert locked.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
        assert 1 <= int(locked.headers["retry-after"]) <= 2
        create_user(client, "bob")
        assert client.get(API, headers=basic("bob", USER_PASSWORD)).status_code == 200  # others unaffected
        time.sleep(int(locked.headers["retry-after"]) + 0.2)
        assert client.get(API, headers=basic("alice", USER_PASSWORD)).status_code == 200


def test_per_address_lockout_across_usernames(app_factory, tmp_path):
    auth = {"lockout": {"user_max_failures": 50, "address_max_failures": 4, "base_seconds": 30}}
    with make_client(app_factory, tmp_path, auth, client_addr=("198.51.100.7", 4000)) as client:
        for i in range(4):
            _assert_401(client.get(API, headers=basic(f"spray-{i}", "guess-number-xyz")))
        locked = client.get(API, headers=basic("spray-new", "guess-number-xyz"))
        assert locked.status_code == 429
        assert int(locked.headers["retry-after"]) >= 29


def test_unknown_and_known_usernames_take_the_same_time(app_factory, tmp_path):
    with make_client(app_factory, tmp_path) as client:
        create_user(client, "alice")
        known, unknown = [], []
        for i in range(12):  # interleaved, so drift in machine load hits both samples alike
            for name, sink in (("alice", known), (f"ghost-{i}", unknown)):
                start = time.perf_counter()
                _assert_401(client.get(API, headers=basic(name, f"wrong-password-{i}")))
                sink.append(time.perf_counter() - start)
    known_median, unknown_median = statistics.median(known), statistics.median(unknown)
    # Both pay one bcrypt verification (~50 ms at cost 10). Skipping it for unknown names (MLflow: 3 ms vs 70 ms)
    # would make the ratio < 0.2; a generous band keeps this stable on a loaded machine.
    assert 0.6 < unknown_median / known_median < 1.6, (known_median, unknown_median)


# --- sessions and the login form -------------------------------------------------------------------

def _csrf_field(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _login(client, username: str, password: str, next_path: str = "/"):
    page = client.get("/login")
    return client.post("/login", data={"username": username, "password": password, "next": next_path,
                                       "csrf_token": _csrf_field(page.text)})


def test_login_form_session_csrf_and_logout(client):
    create_user(client, "alice")
    response = _login(client, "alice", USER_PASSWORD, "/#/experiments")
    assert response.status_code == 303
    assert response.headers["location"] == "/#/experiments"
    set_cookie = next(v for v in response.headers.get_list("set-cookie") if v.startswith("mlgate_session="))
    assert "HttpOnly" in set_cookie
    assert "SameSite=lax" in set_cookie.replace("Lax", "lax")
    current = client.get(CURRENT)
    assert current.json()["auth_method"] == "session"
    csrf = current.json()["csrf_token"]
    # A cookie-authenticated write needs the session's CSRF token.
    refused = client.post("/api/2.0/mlflow/experiments/create", json={"name": "via-cookie"})
    assert refused.status_code == 403
    made = client.post("/api/2.0/mlflow/experiments/create", json={"name": "via-cookie"},
                       headers={"X-CSRF-Token": csrf})
    assert made.status_code == 200, made.text
    old_cookie = client.cookies.get("mlgate_session")
    assert client.post("/logout", data={"csrf_token": "forged"}).status_code == 403
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 303
    client.cookies.set("mlgate_session", old_cookie)
    _assert_401(client.get(CURRENT))


def test_login_form_refuses_missing_csrf_and_wrong_password(client):
    create_user(client, "alice")
    no_csrf = client.post("/login", data={"username": "alice", "password": USER_PASSWORD})
    assert no_csrf.status_code == 403
    assert "mlgate_session" not in no_csrf.headers.get("set-cookie", "")
    wrong = _login(client, "alice", "not-the-password-1")
    assert wrong.status_code == 401
    assert "Invalid username or password." in wrong.text


def test_login_page_escapes_what_it_echoes(client):
    page = client.get("/login", params={"next": '/"><script>alert(1)</script>'})
    assert "<script>alert(1)" not in page.text
    failed = _login(client, '<img src=x onerror=alert(1)>', "whatever-password-1")
    assert "<img src=x" not in failed.text
    assert "&lt;img src=x" in failed.text


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/\\evil.example"])
def test_login_redirects_only_to_local_paths(client, target):
    create_user(client, "alice")
    assert _login(client, "alice", USER_PASSWORD, target).headers["location"] == "/"


def test_session_cookie_is_secure_outside_dev_mode(app_factory, tmp_path):
    # Secure cookies travel over HTTPS only, so this client speaks HTTPS (as a TLS proxy would).
    with make_client(app_factory, tmp_path, dev_mode=False, base_url="https://127.0.0.1:5000") as client:
        create_user(client, "alice")
        response = _login(client, "alice", USER_PASSWORD)
        cookie = next(v for v in response.headers.get_list("set-cookie") if v.startswith("mlgate_session="))
        assert "Secure" in cookie


# --- other backends --------------------------------------------------------------------------------

TRUSTED = {"methods": ["trusted_header", "bearer", "basic"],
           "trusted_header": {"header": "X-Remote-User", "proxies": ["203.0.113.0/24"]}}


def test_trusted_header_from_a_trusted_proxy(app_factory, tmp_path):
    with make_client(app_factory, tmp_path, TRUSTED, client_addr=("203.0.113.5", 1234)) as client:
        create_user(client, "alice")
        response = client.get(CURRENT, headers={"X-Remote-User": "alice"})
        assert response.status_code == 200
        assert response.json()["auth_method"] == "trusted_header"
        _assert_401(client.get(CURRENT, headers={"X-Remote-User": "nobody"}))


def test_trusted_header_from_anyone_else_is_ignored(app_factory, tmp_path):
    with make_client(app_factory, tmp_path, TRUSTED, client_addr=("198.51.100.9", 1234)) as client:
        create_user(client, "alice")
        _assert_401(client.get(CURRENT, headers={"X-Remote-User": "alice"}))


class HeaderKeyBackend:
    """A custom backend as a deployment would ship it: ``X-Api-Key: <user>-key`` (test only)."""

    name = "api_key"

    def __init__(self, identity):
        self.identity = identity

    def authenticate(self, conn):
        value = conn.headers.get("x-api-key")
        if not value or not value.endswith("-key"):
            return None
        user = self.identity.store.user_by_name(value.removesuffix("-key"))
        if user is None:
            return None
        return Principal(id=user.id, kind="user", name=user.username, is_admin=False, groups=frozenset(),
                         auth_method="api_key")


def test_custom_backend_from_an_entry_point(app_factory, tmp_path, monkeypatch):
    import auth.backends

    plugin = EntryPoint(name="api_key", value=f"{__name__}:HeaderKeyBackend", group="mlgate.auth_backends")
    monkeypatch.setattr(auth.backends, "entry_points",
                        lambda group: [plugin] if group == "mlgate.auth_backends" else [])
    with make_client(app_factory, tmp_path, {"methods": ["api_key", "bearer", "basic"]}) as client:
        create_user(client, "alice")
        response = client.get(CURRENT, headers={"X-Api-Key": "alice-key"})
        assert response.status_code == 200
        assert response.json()["auth_method"] == "api_key"


def test_unknown_method_fails_at_startup(app_factory, tmp_path):
    from gateway.settings import SettingsError

    with pytest.raises(SettingsError, match="no backend named 'carrier_pigeon'"):
        make_client(app_factory, tmp_path, {"methods": ["carrier_pigeon"]})


def test_websockets_are_refused_outside_public_paths(client):
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect("/api/2.0/mlflow/anything"):
        pass
    assert info.value.code == 1008


def test_with_redis_a_change_on_one_app_reaches_another(app_factory, tmp_path):
    from tests.services import REDIS_URL, require_redis

    require_redis()
    with make_client(app_factory, tmp_path, redis_url=REDIS_URL) as first, \
            make_client(app_factory, tmp_path, redis_url=REDIS_URL) as second:
        assert second.app.state.identity.invalidation.push_enabled
        create_user(first, "alice")
        assert second.get(CURRENT, headers=basic("alice", USER_PASSWORD)).status_code == 200
        first.patch("/api/2.0/mlflow/users/update-password", json={"username": "alice", "password": "changed-value-77"},
                    headers=ADMIN).raise_for_status()
        deadline = time.monotonic() + 2
        while second.get(CURRENT, headers=basic("alice", USER_PASSWORD)).status_code == 200:
            assert time.monotonic() < deadline, "the change did not reach the other app within 2 s"
            time.sleep(0.02)
        assert second.get(CURRENT, headers=basic("alice", "changed-value-77")).status_code == 200


def test_login_form_lockout_answers_429_with_retry_after(app_factory, tmp_path):
    auth = {"lockout": {"user_max_failures": 2, "address_max_failures": 500, "base_seconds": 60}}
    with make_client(app_factory, tmp_path, auth) as client:
        create_user(client, "alice")
        for _ in range(2):
            assert _login(client, "alice", "not-the-password-1").status_code == 401
        locked = _login(client, "alice", USER_PASSWORD)
        assert locked.status_code == 429
        assert 59 <= int(locked.headers["retry-after"]) <= 60
        assert "mlgate_session" not in locked.headers.get("set-cookie", "")
