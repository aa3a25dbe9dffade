"""Token and session attacks against a real mlgate server and a real OpenID Provider (oidc-provider).

Each forgery is sent to a real ``mlgate server`` process that trusts a real IdP for machine JWTs and
browser sign-in. Forged JWTs are signed with the IdP's own private key (we hand the IdP its JWKS), so
exactly one property of each token is wrong, and a correctly signed twin is accepted (the control).
Every refusal is a 401 (400 for a credential in the URL) with MLflow's JSON body and no secret in it,
and nothing changed: no user provisioned, no row written, no file written.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest
import sqlalchemy as sa
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.auth.idp_login import sign_in_at_idp
from tests.conftest import LiveServer, start_server
from tests.idp import IdP, rsa_jwks, start_idp
from tests.security.conftest import A, Unchanged, make_user
from tests.services import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.oidc]
BROWSER_SECRET = "browser-client-secret-0123456789-abcdef"
BOT_SECRET = "bot-client-secret-0123456789-abcdef"
USERS = {"alice": {"email": "alice@example.com", "email_verified": True, "groups": ["team-a"]}}


@dataclass
class Stack:
    """The running pair, and the IdP's private signing key."""

    server: LiveServer
    idp: IdP
    key: RSAKey

    @property
    def callback(self) -> str:
        return f"{self.server.url}/sso/corp/callback"


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    """One IdP (browser client + client-credentials bot) and one mlgate trusting it (--dev: http cookies)."""
    workdir = tmp_path_factory.mktemp("sec-tokens")
    (workdir / "server").mkdir()
    port = free_port()  # the IdP's registered redirect URI names mlgate's port exactly
    base = f"http://127.0.0.1:{port}"
    jwks = rsa_jwks("idp-key-1")
    idp = start_idp(workdir / "idp", users=USERS, jwks=jwks, clients=[
        {"client_id": "mlgate", "client_secret": BROWSER_SECRET, "redirect_uris": [f"{base}/sso/corp/callback"],
         "grant_types": ["authorization_code"], "response_types": ["code"]},
        {"client_id": "ci-bot", "client_secret": BOT_SECRET, "grant_types": ["client_credentials"],
         "response_types": [], "redirect_uris": [], "x-groups": ["team-a"]},
    ])
    policy = workdir / "policy.yaml"
    # Many refusals from one address in a few seconds: lift the per-address lockout so every forgery is
    # judged on its own (the lockout has its own tests), not answered 429 after the twentieth.
    policy.write_text(f"""
version: 1
auth:
  lockout: {{address_max_failures: 100000, user_max_failures: 1000}}
  oidc:
    providers:
      - name: corp
        issuer: {idp.issuer}
        client_id: mlgate
        client_secret: ${{CORP_SECRET}}
        allowed_groups: [team-a]
        audience: {idp.api_audience}
        service_accounts: {{ci-bot: ci-bot}}
access:
  grants:
    - {{principal: "group:team-a", resource: "experiment-name:team-a/*", permission: EDIT}}
  create:
    experiments:
      - {{principal: "group:team-a", name: "team-a/*"}}
""")
    try:
        server = start_server(workdir / "server", f"sqlite:///{workdir / 'mlgate.db'}", "--dev",
                              "--policy", str(policy), port=port, env={"CORP_SECRET": BROWSER_SECRET})
    except Exception:
        idp.stop()
        raise
    yield Stack(server, idp, RSAKey.import_key(jwks["keys"][0]))
    server.stop()
    idp.stop()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def _sign(claims: dict, key: RSAKey, kid: str) -> str:
    return jwt.encode({"alg": "RS256", "typ": "at+jwt", "kid": kid}, claims, key, algorithms=["RS256"])


def _hs256_with_public_key(claims: dict, key: RSAKey) -> str:
    # Algorithm confusion: a verifier that lets the token choose HMAC would use the public key as the secret.
    header = _b64(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": key.kid}).encode())
    payload = _b64(json.dumps(claims).encode())
    signature = hmac.new(key.as_pem(private=False), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def _forgeries(stack: Stack) -> dict[str, str]:
    """Each attack on one real access token from the IdP; the name says which property is wrong."""
    real = _claims(stack.idp.client_credentials_token("ci-bot"))
    now = int(time.time())
    key, kid = stack.key, stack.key.kid
    other = RSAKey.generate_key(2048, parameters={"kid": "attacker-key"})
    impostor = RSAKey.generate_key(2048, parameters={"kid": kid})
    return {
        "alg none": f"{_b64(json.dumps({'alg': 'none', 'kid': kid}).encode())}.{_b64(json.dumps(real).encode())}.",
        "alg none, no kid": f"{_b64(json.dumps({'alg': 'none'}).encode())}.{_b64(json.dumps(real).encode())}.",
        "HS256 keyed with the IdP's public key": _hs256_with_public_key(real, key),
        "foreign kid (a key the IdP does not publish)": _sign(real, other, "attacker-key"),
        "the IdP's kid, signed by another key": _sign(real, impostor, kid),
        "wrong iss": _sign({**real, "iss": "http://127.0.0.1:1/evil"}, key, kid),
        "wrong aud": _sign({**real, "aud": "http://some-other-api"}, key, kid),
        "expired": _sign({**real, "iat": now - 7200, "exp": now - 3600}, key, kid),
        "nbf in the future beyond the leeway": _sign({**real, "nbf": now + 3600}, key, kid),
        "iat in the future beyond the leeway": _sign({**real, "iat": now + 3600, "exp": now + 7200}, key, kid),
        "claims tampered after signing": ".".join([*_sign(real, key, kid).split(".")[:1],
                                                   _b64(json.dumps({**real, "sub": "admin"}).encode()),
                                                   _sign(real, key, kid).split(".")[2]]),
    }


ERROR_CODES = {400: "INVALID_PARAMETER_VALUE", 401: "UNAUTHENTICATED"}


def _assert_refused(response: httpx.Response, secret: str, status: int | tuple[int, ...] = 401) -> None:
    """MLflow's error body, the right status, and the credential nowhere in the answer."""
    statuses = status if isinstance(status, tuple) else (status,)
    assert response.status_code in statuses, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error_code", "message"}, body
    assert body["error_code"] == ERROR_CODES[response.status_code]
    assert secret not in response.text
    for part in secret.split("."):
        assert len(part) < 8 or part not in response.text
    if response.status_code == 401:
        assert response.headers["www-authenticate"].startswith(("Basic", "Bearer"))


def _users(server: LiveServer) -> set[str]:
    engine = sa.create_engine(server.backend_store_uri)
    try:
        with engine.connect() as conn:
            return set(conn.execute(sa.text("SELECT username FROM auth_users")).scalars())
    finally:
        engine.dispose()


def test_forged_jwts_are_refused_and_change_nothing(stack):
    server = stack.server
    url = f"{server.url}{A}/experiments/create"
    # Control: the IdP's real token, and our own re-signing of its claims with the IdP's key, both work,
    # so each refusal below is about the one property the forgery changed.
    real = stack.idp.client_credentials_token("ci-bot")
    resigned = _sign(_claims(real), stack.key, stack.key.kid)
    for token in (real, resigned):
        made = httpx.post(url, json={"name": f"team-a/control-{uuid.uuid4().hex[:8]}"},
                          headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert made.status_code == 200, made.text
    forgeries = _forgeries(stack)
    users = _users(server)
    unchanged = Unchanged(server)
    for label, token in forgeries.items():
        for method, path, body in (("POST", f"{A}/experiments/create", {"name": f"team-a/forged-{label}"}),
                                   ("GET", f"{A}/users/current", None)):
            response = httpx.request(method, server.url + path, json=body, timeout=30,
                                     headers={"Authorization": f"Bearer {token}"})
            try:
                _assert_refused(response, token)
            except AssertionError as exc:
                raise AssertionError(f"{label}: {exc}") from exc
    unchanged.check()
    assert _users(server) == users
    log = server.log()
    for token in forgeries.values():
        assert token not in log


def _cookie(response: httpx.Response, name: str) -> str | None:
    for header in response.headers.get_list("set-cookie"):
        key, _, rest = header.partition("=")
        if key.strip() == name:
            value = rest.split(";", 1)[0]
            return value or None
    return None


def _session_count(server: LiveServer) -> int:
    engine = sa.create_engine(server.backend_store_uri)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM auth_sessions")).scalar_one()
    finally:
        engine.dispose()


def _begin(browser: httpx.Client) -> str:
    started = browser.get("/sso/corp/login", params={"next": "/"})
    assert started.status_code == 303, started.text
    return started.headers["location"]


def _with_state(url: str, state: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query["state"] = state
    return urlunsplit(("", "", parts.path, urlencode(query), ""))


def test_replayed_authorization_code_is_refused_and_starts_no_session(stack):
    server = stack.server
    with httpx.Client(base_url=server.url, timeout=30) as victim, httpx.Client(timeout=30) as at_idp:
        callback = sign_in_at_idp(at_idp, _begin(victim), "alice", stack.callback)
        first = victim.get(callback)
        assert first.status_code == 303, first.text
        assert _cookie(first, "mlgate_session")
        sessions = _session_count(server)
        users = _users(server)
        unchanged = Unchanged(server)
        code = parse_qs(urlsplit(callback).query)["code"][0]
        # The same browser replays the very same callback (code + state): its sign-in is over.
        again = victim.get(callback)
        assert again.status_code in (400, 401), again.text
        assert _cookie(again, "mlgate_session") is None
        assert code not in again.text
    # An attacker who captured the callback URL starts their own sign-in and answers it with the used code.
    with httpx.Client(base_url=server.url, timeout=30) as attacker:
        own_state = parse_qs(urlsplit(_begin(attacker)).query)["state"][0]
        stolen = attacker.get(_with_state(callback, own_state))
        assert stolen.status_code == 401, stolen.text
        assert _cookie(stolen, "mlgate_session") is None
        assert code not in stolen.text
        # ... or replays it byte for byte without the victim's sign-in cookie.
        verbatim = attacker.get(callback)
        assert verbatim.status_code in (400, 401), verbatim.text
        assert _cookie(verbatim, "mlgate_session") is None
    assert _session_count(server) == sessions
    assert _users(server) == users
    unchanged.check()
    assert code not in server.log()


def _login(server: LiveServer, username: str, password: str) -> tuple[str, str]:
    """Sign in through the password form; (session cookie, the session's CSRF token)."""
    with httpx.Client(base_url=server.url, timeout=30) as browser:
        page = browser.get("/login")
        form_token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        done = browser.post("/login", data={"username": username, "password": password,
                                            "csrf_token": form_token, "next": "/"})
        assert done.status_code == 303, done.text
        session = _cookie(done, "mlgate_session")
        me = browser.get(f"{A}/users/current")
        assert me.status_code == 200, me.text
        return session, me.json()["csrf_token"]


def test_tampered_and_logged_out_session_cookies_are_refused(stack):
    server = stack.server
    bob = make_user(server, "bob-cookie")
    session, csrf = _login(server, bob.username, bob.password)
    payload, _, signature = session.rpartition(".")
    variants = {
        "flipped signature": payload + "." + signature[:-1] + ("A" if signature[-1] != "A" else "B"),
        "no signature": payload,
        "signature of another cookie": _login(server, bob.username, bob.password)[0].rpartition(".")[0]
        + "." + signature,
        "truncated": session[: len(session) // 2],
        "admin": "admin",
    }
    unchanged = Unchanged(server)
    for label, forged in variants.items():
        for method, path in (("GET", f"{A}/users/current"), ("POST", f"{A}/experiments/create")):
            response = httpx.request(method, server.url + path, json={"name": f"cookie-{label}"}, timeout=30,
                                     headers={"Cookie": f"mlgate_session={forged}", "X-CSRF-Token": csrf})
            assert response.status_code == 401, (label, path, response.text)
            assert response.json()["error_code"] == "UNAUTHENTICATED"
            assert forged not in response.text or len(forged) < 8
    unchanged.check()
    out = httpx.post(server.url + "/logout", data={"csrf_token": csrf},
                     headers={"Cookie": f"mlgate_session={session}"}, timeout=30)
    assert out.status_code == 303
    unchanged = Unchanged(server)
    for method, path in (("GET", f"{A}/users/current"), ("POST", f"{A}/experiments/create"),
                         ("GET", "/experiments/0")):
        response = httpx.request(method, server.url + path, json={"name": "after-logout"}, timeout=30,
                                 headers={"Cookie": f"mlgate_session={session}", "X-CSRF-Token": csrf,
                                          "Accept": "application/json"})
        assert response.status_code == 401, (path, response.text)
        assert session not in response.text
    unchanged.check()


def test_revoked_personal_access_token_is_refused(stack):
    server = stack.server
    carol = make_user(server, "carol-pat")
    assert httpx.get(server.url + f"{A}/users/current", headers=carol.headers, timeout=30).status_code == 200
    listed = httpx.get(server.url + f"{A}/users/tokens/list", params={"username": carol.username},
                       auth=server.admin_auth, timeout=30).json()
    token_id = next(iter(listed.values()))[0]["id"]
    revoked = httpx.post(server.url + f"{A}/users/tokens/revoke", json={"token_id": token_id},
                         auth=server.admin_auth, timeout=30)
    assert revoked.status_code == 200, revoked.text
    unchanged = Unchanged(server)
    for method, path in (("GET", f"{A}/users/current"), ("POST", f"{A}/experiments/create"),
                         ("POST", f"{A}/users/tokens/create")):
        response = httpx.request(method, server.url + path, json={"name": "after-revoke"}, timeout=30,
                                 headers=carol.headers)
        _assert_refused(response, carol.token)
    unchanged.check()


def test_token_in_query_string_never_authenticates_and_is_not_logged(stack):
    server = stack.server
    dave = make_user(server, "dave-query")
    jwt_token = stack.idp.client_credentials_token("ci-bot")
    unchanged = Unchanged(server)
    for token in (dave.token, jwt_token):
        for name in ("access_token", "token", "api_key", "private_token", "q"):
            for method, path in (("GET", f"{A}/users/current"), ("POST", f"{A}/experiments/create")):
                response = httpx.request(method, server.url + path, params={name: token}, timeout=30,
                                         json={"name": "team-a/from-query"})
                # The well-known names are refused outright (RFC 6750 section 5.3); a credential under
                # another name is simply not one: unauthenticated.
                _assert_refused(response, token, status=400 if name != "q" else (400, 401))
        # Next to a valid header the URL credential is still refused: it would already sit in proxy logs.
        both = httpx.get(server.url + f"{A}/users/current", params={"access_token": token}, headers=dave.headers,
                         timeout=30)
        _assert_refused(both, token, status=400)
    unchanged.check()
    log = server.log()
    assert dave.token not in log
    assert jwt_token not in log


def _raw(server: LiveServer, request: bytes) -> tuple[int, bytes]:
    """Send bytes exactly as written; (status, whole answer)."""
    host, port = urlsplit(server.url).hostname, urlsplit(server.url).port
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1]), data


def test_basic_credentials_in_the_url_never_authenticate(stack):
    server = stack.server
    erin = make_user(server, "erin-url")
    host = urlsplit(server.url).netloc
    unchanged = Unchanged(server)
    # Userinfo in an absolute-form request target (RFC 9110 section 4.2.4: deprecated, must not be trusted).
    for user, password in ((erin.username, erin.password), (server.admin_username, server.admin_password)):
        for method, path, body in ((b"GET", "users/current", b""), (b"POST", "experiments/create", b'{"name": "u"}')):
            target = f"http://{user}:{password}@{host}{A}/{path}".encode()
            status, answer = _raw(server, method + b" " + target + b" HTTP/1.1\r\nHost: " + host.encode()
                                  + b"\r\nContent-Type: application/json\r\nContent-Length: "
                                  + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
            assert status in (400, 401), answer[:300]
            assert password.encode() not in answer
        # The same credentials as query parameters.
        response = httpx.post(server.url + f"{A}/experiments/create", timeout=30, json={"name": "from-url"},
                              params={"username": user, "password": password})
        assert response.status_code in (400, 401), response.text
        assert password not in response.text
    unchanged.check()
    log = server.log()
    assert erin.password not in log
    assert server.admin_password not in log
