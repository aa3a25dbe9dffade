"""The browser sign-in flow against a real OpenID Provider, driven over HTTP: every refusal leaves nothing behind."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from sqlalchemy import select, update
from starlette.testclient import TestClient

from auth.passwords import PasswordHasher
from auth.sessions import CSRF_COOKIE_NAME
from auth.store import IdentityStore, now_ms
from auth.tables import oidc_identities, oidc_sessions, sessions
from tests.auth.idp_login import sign_in_at_idp
from tests.conftest import TEST_ADMIN_PASSWORD, TEST_ADMIN_USERNAME
from tests.idp import rsa_jwks, start_idp
from tests.services import free_port

pytestmark = pytest.mark.oidc
BASE = "http://127.0.0.1:5000"
CALLBACK = f"{BASE}/sso/corp/callback"
SECRET = "corp-client-secret-0123456789"

USERS = {
    "alice": {"email": "alice@example.com", "email_verified": True, "groups": ["ml-team", "readers"]},
    "bob": {"email": "bob@example.com", "groups": ["outsiders"]},
    "carol": {"email": "carol@example.com", "groups": ["ml-team"]},
    "dora": {"email": "dora@example.com", "email_verified": True, "groups": ["ml-team"]},
    "frank": {"email": "frank@example.com", "groups": ["ml-team"]},  # e-mail not verified by the provider
}


@pytest.fixture(scope="module")
def idp(tmp_path_factory):
    idp = start_idp(tmp_path_factory.mktemp("idp"), users=USERS, clients=[{
        "client_id": "mlgate", "client_secret": SECRET, "redirect_uris": [CALLBACK],
        "post_logout_redirect_uris": [f"{BASE}/login"], "grant_types": ["authorization_code"],
        "response_types": ["code"]}])
    yield idp
    idp.stop()


def policy(tmp_path, issuer: str, extra: str = "", *, password_form: bool = True) -> str:
    path = tmp_path / "policy.yaml"
    path.write_text(f"""
version: 1
auth:
  oidc:
    password_form: {str(password_form).lower()}
    providers:
      - name: corp
        display_name: Corp SSO
        issuer: {issuer}
        client_id: mlgate
        client_secret: ${{CORP_SECRET}}
        allowed_groups: [ml-team]
{extra}
""")
    return str(path)


@pytest.fixture
def app_client(app_factory, tmp_path, idp, monkeypatch):
    monkeypatch.setenv("CORP_SECRET", SECRET)
    with TestClient(app_factory(policy_file=policy(tmp_path, idp.issuer)), base_url=BASE,
                    follow_redirects=False) as client:
        yield client


def start(app: TestClient, next_path: str = "/") -> str:
    """Begin a sign-in at mlgate; the provider's authorization URL."""
    response = app.get("/sso/corp/login", params={"next": next_path})
    assert response.status_code == 303
    return response.headers["location"]


def at_idp(url: str, login: str) -> str:
    with httpx.Client(timeout=10) as browser:
        return sign_in_at_idp(browser, url, login, CALLBACK)


def callback_path(url: str, **changes) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    return urlunsplit(("", "", parts.path, urlencode(query), ""))


def user_names(app: TestClient) -> set[str]:
    return {u.username for u in IdentityStore(app.app.state.tracking.engine).list_users()}


def test_login_page_offers_the_provider_and_the_request_uses_pkce_state_and_nonce(app_client):
    page = app_client.get("/login", params={"next": "/x?y=1"})
    assert 'href="/sso/corp/login?next=%2Fx%3Fy%3D1">Sign in with Corp SSO</a>' in page.text
    query = parse_qs(urlsplit(start(app_client)).query)
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43
    assert query["response_type"] == ["code"]
    assert query["redirect_uri"] == [CALLBACK]
    assert len(query["state"][0]) >= 32
    assert len(query["nonce"][0]) >= 32
    assert "mlgate_sso" in app_client.cookies


def test_alice_signs_in_lands_on_next_with_her_groups(app_client):
    callback = at_idp(start(app_client, "/api/2.0/mlflow/users/current"), "alice")
    response = app_client.get(callback_path(callback))
    assert response.status_code == 303
    assert response.headers["location"] == "/api/2.0/mlflow/users/current"
    me = app_client.get("/api/2.0/mlflow/users/current")
    assert me.status_code == 200
    assert me.json()["user"]["username"] == "alice"
    store = IdentityStore(app_client.app.state.tracking.engine)
    user = store.user_by_name("alice")
    assert user.password_hash is None
    assert not user.is_admin
    assert store.groups_of(user.id) == {"ml-team", "readers"}
    # The code was used once; the same callback again finds no sign-in in progress.
    again = app_client.get(callback_path(callback))
    assert again.status_code == 400
    assert "could not be verified" in again.text


def test_a_replayed_code_is_refused_by_the_provider(app_client):
    first = at_idp(start(app_client), "carol")
    assert app_client.get(callback_path(first)).status_code == 303
    app_client.cookies.clear()
    # A new sign-in attempt in this browser, answered with the old (used) code.
    fresh_state = parse_qs(urlsplit(start(app_client)).query)["state"][0]
    replay = app_client.get(callback_path(first, state=fresh_state))
    assert replay.status_code == 401
    assert "already used or expired" in replay.text
    assert "mlgate_session" not in replay.headers.get("set-cookie", "")


def test_a_tampered_state_is_refused_and_creates_nothing(app_client):
    callback = at_idp(start(app_client), "alice")
    before = user_names(app_client)
    response = app_client.get(callback_path(callback, state="x" * 43))
    assert response.status_code == 400
    assert "does not match this browser" in response.text
    # The same look as the sign-in page (its stylesheet, which the CSP allows), and a way back to it.
    assert '<link rel="stylesheet" href="/static/ui.css">' in response.text
    assert "style-src 'self'" in response.headers["content-security-policy"]
    assert '<a href="/login">' in response.text
    assert user_names(app_client) == before
    assert "mlgate_session" not in app_client.cookies


def test_a_user_outside_the_allowed_groups_gets_a_clear_page_and_no_account(app_client):
    response = app_client.get(callback_path(at_idp(start(app_client), "bob")))
    assert response.status_code == 403
    assert "not in a group that may use mlgate" in response.text
    assert "bob" not in user_names(app_client)
    with app_client.app.state.tracking.engine.connect() as conn:
        assert conn.execute(oidc_identities.select()).all() == []


def test_a_same_named_local_account_is_not_taken_over(app_client):
    # A provider user must not become a local account just by sharing its name.
    store = IdentityStore(app_client.app.state.tracking.engine)
    store.create_user("carol", None)
    response = app_client.get(callback_path(at_idp(start(app_client), "carol")))
    assert response.status_code == 403
    assert "already exists and is not linked" in response.text


def test_next_never_leaves_mlgate(app_client):
    callback = at_idp(start(app_client, "https://evil.example/steal"), "alice")
    assert app_client.get(callback_path(callback)).headers["location"] == "/"


def test_an_unreachable_provider_gets_a_clear_page(app_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("CORP_SECRET", SECRET)
    app = app_factory(policy_file=policy(tmp_path, f"http://127.0.0.1:{free_port()}"))
    with TestClient(app, base_url=BASE, follow_redirects=False) as client:
        response = client.get("/sso/corp/login")
        assert response.status_code == 502
        assert "identity provider is unreachable" in response.text
        assert client.get("/sso/nope/login").status_code == 404


def test_an_sso_session_must_pass_through_the_provider_again_after_the_interval(app_client):
    callback = at_idp(start(app_client, "/api/2.0/mlflow/users/current"), "alice")
    assert app_client.get(callback_path(callback)).status_code == 303
    assert app_client.get("/api/2.0/mlflow/users/current").status_code == 200
    engine = app_client.app.state.tracking.engine
    two_hours_ago = now_ms() - 7_200_000
    with engine.begin() as conn:
        conn.execute(update(sessions).values(created_at=two_hours_ago))
        conn.execute(update(oidc_sessions).values(revalidate_at=two_hours_ago + 3_600_000))
    response = app_client.get("/api/2.0/mlflow/users/current")
    assert response.status_code == 401
    assert "confirmed by the identity provider again" in response.json()["message"]
    with engine.connect() as conn:
        assert conn.execute(select(sessions.c.revoked_at)).scalar() is not None


def test_group_changes_at_the_provider_apply_at_the_next_login(app_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("CORP_SECRET", SECRET)
    port, jwks = free_port(), rsa_jwks()
    clients = [{"client_id": "mlgate", "client_secret": SECRET, "redirect_uris": [CALLBACK],
                "grant_types": ["authorization_code"], "response_types": ["code"]}]

    def login_with(groups: list[str]) -> frozenset[str]:
        provider = start_idp(tmp_path / f"idp-{len(groups)}", clients=clients, port=port, jwks=jwks,
                             users={"alice": {"groups": groups}})
        try:
            callback = at_idp(start(client), "alice")
            assert client.get(callback_path(callback)).status_code == 303
        finally:
            provider.stop()
        store = IdentityStore(client.app.state.tracking.engine)
        return store.groups_of(store.user_by_name("alice").id)

    app = app_factory(policy_file=policy(tmp_path, f"http://127.0.0.1:{port}"))
    with TestClient(app, base_url=BASE, follow_redirects=False) as client:
        assert login_with(["ml-team", "readers"]) == {"ml-team", "readers"}
        assert login_with(["ml-team"]) == {"ml-team"}


def test_a_provider_gone_before_the_callback_gets_a_clear_page_and_nothing_is_created(app_factory, tmp_path,
                                                                                          monkeypatch):
    # The person signed in at the provider, which then became unreachable before mlgate could redeem the code.
    monkeypatch.setenv("CORP_SECRET", SECRET)
    provider = start_idp(tmp_path / "idp", users=USERS, clients=[{
        "client_id": "mlgate", "client_secret": SECRET, "redirect_uris": [CALLBACK],
        "grant_types": ["authorization_code"], "response_types": ["code"]}])
    try:
        app = app_factory(policy_file=policy(tmp_path, provider.issuer))
        with TestClient(app, base_url=BASE, follow_redirects=False) as client:
            callback = at_idp(start(client), "alice")
            provider.stop()
            response = client.get(callback_path(callback))
            assert response.status_code == 502
            assert "<h1>The identity provider is unreachable</h1>" in response.text
            assert 'href="/login"' in response.text  # where to start again
            assert "code=" not in response.text  # the code is not echoed
            assert "mlgate_session" not in response.headers.get("set-cookie", "")
            assert "alice" not in user_names(client)
            with client.app.state.tracking.engine.connect() as conn:
                assert conn.execute(oidc_identities.select()).all() == []
                assert conn.execute(sessions.select()).all() == []
    finally:
        provider.stop()


@pytest.fixture
def strict_client(app_factory, tmp_path, idp, monkeypatch):
    """mlgate trusting the IdP with an e-mail domain rule and linking of passwordless local accounts."""
    monkeypatch.setenv("CORP_SECRET", SECRET)
    extra = "        allowed_email_domains: [example.com]\n        link_existing_users: true"
    with TestClient(app_factory(policy_file=policy(tmp_path, idp.issuer, extra)), base_url=BASE,
                    follow_redirects=False) as client:
        yield client


def test_an_email_domain_rule_needs_an_address_the_provider_verified(strict_client):
    refused = strict_client.get(callback_path(at_idp(start(strict_client), "frank")))
    assert refused.status_code == 403
    assert "verified e-mail address is not in a domain" in refused.text
    assert "frank" not in user_names(strict_client)
    assert strict_client.get(callback_path(at_idp(start(strict_client), "alice"))).status_code == 303


def test_linking_never_takes_over_an_account_with_a_password(strict_client):
    store = IdentityStore(strict_client.app.state.tracking.engine)
    store.create_user("dora", PasswordHasher(rounds=4, min_length=8).hash("dora-local-password"))
    refused = strict_client.get(callback_path(at_idp(start(strict_client), "dora")))
    assert refused.status_code == 403
    assert "already exists and is not linked" in refused.text
    with strict_client.app.state.tracking.engine.connect() as conn:
        assert conn.execute(oidc_identities.select()).all() == []
    # A passwordless, non-admin account (made for the person by an administrator) is linked.
    store.update_user(store.user_by_name("dora").id, password_hash=None)
    assert strict_client.get(callback_path(at_idp(start(strict_client), "dora"))).status_code == 303
    assert strict_client.get("/api/2.0/mlflow/users/current").json()["user"]["username"] == "dora"


def test_a_wrong_client_secret_is_reported_as_misconfiguration_not_an_outage(app_factory, tmp_path, idp,
                                                                              monkeypatch):
    monkeypatch.setenv("CORP_SECRET", "not-the-registered-secret-000")
    with TestClient(app_factory(policy_file=policy(tmp_path, idp.issuer)), base_url=BASE,
                    follow_redirects=False) as client:
        response = client.get(callback_path(at_idp(start(client), "alice")))
    assert response.status_code == 502
    assert "<h1>Single sign-on is misconfigured</h1>" in response.text
    assert "invalid_client" in response.text
    assert "not-the-registered-secret" not in response.text


def test_an_sso_only_deployment_has_no_password_form_and_refuses_password_posts(app_factory, tmp_path, idp,
                                                                                 monkeypatch):
    monkeypatch.setenv("CORP_SECRET", SECRET)
    app = app_factory(policy_file=policy(tmp_path, idp.issuer, password_form=False))
    with TestClient(app, base_url=BASE, follow_redirects=False) as client:
        page = client.get("/login")
        assert page.status_code == 200
        assert 'action="/login"' not in page.text
        assert "Sign in with Corp SSO" in page.text
        token = client.cookies.get(CSRF_COOKIE_NAME)  # a valid double-submit token: only the switch refuses
        refused = client.post("/login", data={"csrf_token": token, "username": TEST_ADMIN_USERNAME,
                                               "password": TEST_ADMIN_PASSWORD, "next": "/"})
        assert refused.status_code == 403
        assert "Password sign-in is turned off" in refused.text
        assert "mlgate_session" not in refused.headers.get("set-cookie", "")
        # The provider still signs people in.
        assert client.get(callback_path(at_idp(start(client), "alice"))).status_code == 303


def test_two_providers_side_by_side_each_sign_their_own_users_in(app_factory, tmp_path, idp, monkeypatch):
    monkeypatch.setenv("CORP_SECRET", SECRET)
    partner_callback = f"{BASE}/sso/partner/callback"
    partner = start_idp(tmp_path / "partner-idp", users={"paula": {"groups": ["ml-team"]},
                                                         "alice": {"groups": ["ml-team"]}},
                        clients=[{"client_id": "mlgate", "client_secret": SECRET, "redirect_uris": [partner_callback],
                                  "grant_types": ["authorization_code"], "response_types": ["code"]}])
    try:
        second = f"""      - name: partner
        display_name: Partner SSO
        issuer: {partner.issuer}
        client_id: mlgate
        client_secret: ${{CORP_SECRET}}"""
        app = app_factory(policy_file=policy(tmp_path, idp.issuer, second))
        with TestClient(app, base_url=BASE, follow_redirects=False) as client:
            page = client.get("/login").text
            assert "Sign in with Corp SSO" in page
            assert "Sign in with Partner SSO" in page
            assert client.get(callback_path(at_idp(start(client), "alice"))).status_code == 303
            client.cookies.clear()
            went = client.get("/sso/partner/login")
            with httpx.Client(timeout=10) as browser:
                back = sign_in_at_idp(browser, went.headers["location"], "paula", partner_callback)
            assert client.get(callback_path(back)).status_code == 303
            assert client.get("/api/2.0/mlflow/users/current").json()["user"]["username"] == "paula"
            # Another provider's "alice" is another person: she does not get corp's alice account.
            client.cookies.clear()
            went = client.get("/sso/partner/login")
            with httpx.Client(timeout=10) as browser:
                back = sign_in_at_idp(browser, went.headers["location"], "alice", partner_callback)
            refused = client.get(callback_path(back))
            assert refused.status_code == 403
            assert "already exists and is not linked" in refused.text
    finally:
        partner.stop()


def test_a_sign_in_started_at_another_host_goes_to_the_registered_one(app_factory, tmp_path, monkeypatch):
    """localhost vs 127.0.0.1: with redirect_uri set, the browser is sent to the registered host first,
    instead of the provider's raw redirect_uri error page."""
    monkeypatch.setenv("CORP_SECRET", SECRET)
    extra = "        redirect_uri: http://localhost:5000/sso/corp/callback"
    app = app_factory(policy_file=policy(tmp_path, f"http://127.0.0.1:{free_port()}", extra),
                      allowed_hosts=("127.0.0.1", "localhost"))
    with TestClient(app, base_url=BASE, follow_redirects=False) as client:
        moved = client.get("/sso/corp/login", params={"next": "/#/experiments/1"})
        assert moved.status_code == 303
        assert moved.headers["location"] == "http://localhost:5000/sso/corp/login?next=%2F%23%2Fexperiments%2F1"
    with TestClient(app, base_url="http://localhost:5000", follow_redirects=False) as client:
        # At the registered host the flow goes on (here to the unreachable provider's page).
        assert client.get("/sso/corp/login").status_code == 502


def test_a_redirect_uri_must_be_this_providers_callback(app_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("CORP_SECRET", SECRET)
    extra = "        redirect_uri: http://localhost:5000/sso/other/callback"
    with pytest.raises(Exception, match="must be an http\\(s\\) URL whose path is /sso/corp/callback"):
        app_factory(policy_file=policy(tmp_path, "http://127.0.0.1:1", extra))
