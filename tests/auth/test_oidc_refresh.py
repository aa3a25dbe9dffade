"""SSO sessions re-validated with the provider's refresh token, against a real OpenID Provider.

The provider (oidc-provider) grants refresh tokens to the test client; its admin endpoint disables
accounts, changes groups and revokes grants while it runs. A session is made due by moving its
re-validation time into the past in the database (the interval itself is exercised in Chromium by
tests/e2e/test_sso_revalidation.py).
"""

from __future__ import annotations

import html
import re
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select, update
from starlette.testclient import TestClient

from auth.store import IdentityStore, now_ms
from auth.tables import audit_log, oidc_sessions, sessions
from tests.auth.test_oidc_flow import BASE, CALLBACK, SECRET, at_idp, callback_path, start
from tests.idp import start_idp

pytestmark = pytest.mark.oidc
USERS = {"alice": {"email": "alice@example.com", "groups": ["ml-team", "readers"]},
         "dora": {"email": "dora@example.com", "groups": ["ml-team"]}}
REFRESHING_CLIENT = {"client_id": "mlgate", "client_secret": SECRET, "redirect_uris": [CALLBACK],
                     "post_logout_redirect_uris": [f"{BASE}/login"],
                     "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"]}


def policy(tmp_path, issuer: str) -> str:
    path = tmp_path / "policy.yaml"
    path.write_text(f"""
version: 1
auth:
  oidc:
    providers:
      - name: corp
        issuer: {issuer}
        client_id: mlgate
        client_secret: ${{CORP_SECRET}}
        allowed_groups: [ml-team]
        revalidate_seconds: 5
""")
    return str(path)


@pytest.fixture
def idp(tmp_path):
    # One provider per test: tests change and disable its accounts.
    idp = start_idp(tmp_path / "idp", users={k: dict(v) for k, v in USERS.items()}, clients=[REFRESHING_CLIENT],
                    rotate_refresh_tokens=True)
    yield idp
    idp.stop()


@pytest.fixture
def app_client(app_factory, tmp_path, idp, monkeypatch):
    monkeypatch.setenv("CORP_SECRET", SECRET)
    with TestClient(app_factory(policy_file=policy(tmp_path, idp.issuer)), base_url=BASE,
                    follow_redirects=False) as client:
        yield client


def sign_in(app: TestClient, login: str = "alice") -> None:
    assert app.get(callback_path(at_idp(start(app, "/api/2.0/mlflow/users/current"), login))).status_code == 303
    assert app.get("/api/2.0/mlflow/users/current").status_code == 200


def sso_row(app: TestClient):
    with app.app.state.tracking.engine.connect() as conn:
        return conn.execute(select(oidc_sessions)).one()


def make_due(app: TestClient) -> None:
    """Pretend the session was started long ago and its re-validation time has come."""
    with app.app.state.tracking.engine.begin() as conn:
        conn.execute(update(sessions).values(created_at=now_ms() - 3_600_000))
        conn.execute(update(oidc_sessions).values(revalidate_at=now_ms() - 1000))


def groups_of(app: TestClient, name: str) -> set[str]:
    store = IdentityStore(app.app.state.tracking.engine)
    return set(store.groups_of(store.user_by_name(name).id))


def revoked(app: TestClient) -> bool:
    with app.app.state.tracking.engine.connect() as conn:
        return conn.execute(select(sessions.c.revoked_at)).scalar() is not None


def test_the_refresh_token_is_kept_sealed_on_the_server_never_in_a_cookie_or_the_audit_log(app_client):
    sign_in(app_client)
    row = sso_row(app_client)
    vault = app_client.app.state.identity.sso.vault
    refresh_token = vault.open(row.refresh_token, owner=row.session_id, kind="refresh")
    assert refresh_token  # the provider granted one, and only this session's key opens it
    assert refresh_token not in row.refresh_token
    assert vault.open(row.refresh_token, owner="another-session", kind="refresh") is None
    assert vault.open(row.refresh_token, owner=row.session_id, kind="id") is None
    assert all(refresh_token not in value for value in app_client.cookies.values())
    make_due(app_client)
    assert app_client.get("/api/2.0/mlflow/users/current").status_code == 200
    with app_client.app.state.tracking.engine.connect() as conn:
        audit = " ".join(str(r) for r in conn.execute(select(audit_log)).all())
    assert "session.revalidate" in audit
    assert refresh_token not in audit


def test_a_due_session_is_renewed_with_the_provider_and_group_changes_there_apply(app_client, idp):
    sign_in(app_client)
    assert groups_of(app_client, "alice") == {"ml-team", "readers"}
    first = sso_row(app_client)
    idp.change_account("alice", groups=["ml-team", "modellers"])
    make_due(app_client)
    me = app_client.get("/api/2.0/mlflow/users/current")
    assert me.status_code == 200, me.text
    assert groups_of(app_client, "alice") == {"ml-team", "modellers"}  # replace mode: readers is gone
    renewed = sso_row(app_client)
    assert renewed.revalidate_at > now_ms()
    assert renewed.refreshing_until is None
    assert renewed.refresh_token != first.refresh_token  # the provider rotated it; the new one is kept
    assert not revoked(app_client)  # the group change ended other sessions, not this one
    # The interval passes again: the rotated token works, so the session carries on.
    time.sleep(5.5)
    idp.change_account("alice", groups=["ml-team"])
    assert app_client.get("/api/2.0/mlflow/users/current").status_code == 200
    assert groups_of(app_client, "alice") == {"ml-team"}


@pytest.mark.parametrize("change", ["disable", "revoke"])
def test_a_user_disabled_or_a_grant_revoked_at_the_provider_loses_the_session(app_client, idp, change):
    sign_in(app_client)
    if change == "disable":
        idp.change_account("alice", disabled=True)
    else:
        idp.change_account("alice", revoke_grants=True)
    make_due(app_client)
    response = app_client.get("/api/2.0/mlflow/users/current")
    assert response.status_code == 401
    assert response.json()["error_code"] == "UNAUTHENTICATED"
    assert "no longer confirms your single sign-on session" in response.json()["message"]
    assert revoked(app_client)
    assert sso_row(app_client).refresh_token is None  # nothing left to use
    # The browser is sent to the sign-in page, which says why.
    page = app_client.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 303
    assert page.headers["location"].startswith("/login")
    login = app_client.get("/login")
    assert "no longer confirms your single sign-on session" in login.text
    # And the session stays ended when the provider would agree again.
    if change == "disable":
        idp.change_account("alice", disabled=False)
    assert app_client.get("/api/2.0/mlflow/users/current").status_code == 401


def test_a_user_removed_from_the_allowed_groups_loses_the_session_and_nothing_changes(app_client, idp):
    sign_in(app_client)
    idp.change_account("alice", groups=["readers"])
    make_due(app_client)
    response = app_client.get("/api/2.0/mlflow/users/current")
    assert response.status_code == 401
    assert "not in a group that may use mlgate" in response.json()["message"]
    assert revoked(app_client)
    assert groups_of(app_client, "alice") == {"ml-team", "readers"}  # refused before anything was written


def test_an_unreachable_provider_fails_closed_without_ending_the_session(app_client, idp):
    sign_in(app_client)
    make_due(app_client)
    before = sso_row(app_client)
    idp.stop()
    response = app_client.get("/api/2.0/mlflow/users/current")
    assert response.status_code == 401
    assert "could not be reached to confirm your single sign-on session" in response.json()["message"]
    after = sso_row(app_client)
    assert after.revalidate_at == before.revalidate_at  # not extended
    assert after.refreshing_until is None  # and not left claimed
    assert after.refresh_token == before.refresh_token
    assert not revoked(app_client)
    assert "could not be reached" in app_client.get("/login").text
    # Every further request is refused too while the provider is away.
    assert app_client.get("/api/2.0/mlflow/users/current").status_code == 401


def test_a_session_without_a_refresh_token_still_signs_in_again(app_factory, tmp_path, monkeypatch):
    client = {**REFRESHING_CLIENT, "grant_types": ["authorization_code"]}
    provider = start_idp(tmp_path / "idp", users=USERS, clients=[client])
    monkeypatch.setenv("CORP_SECRET", SECRET)
    try:
        with TestClient(app_factory(policy_file=policy(tmp_path, provider.issuer)), base_url=BASE,
                        follow_redirects=False) as app:
            sign_in(app)
            assert sso_row(app).refresh_token is None
            make_due(app)
            response = app.get("/api/2.0/mlflow/users/current")
            assert response.status_code == 401
            assert "confirmed by the identity provider again" in response.json()["message"]
            assert revoked(app)
    finally:
        provider.stop()


def test_logout_sends_the_id_token_hint_and_the_provider_accepts_it(app_client, idp):
    sign_in(app_client)
    token = app_client.get("/api/2.0/mlflow/users/current").json()["csrf_token"]
    response = app_client.post("/sso/logout", data={"csrf_token": token}, headers={"X-CSRF-Token": token})
    assert response.status_code == 303
    target = response.headers["location"]
    assert target.startswith(f"{idp.issuer}/session/end")
    query = parse_qs(urlsplit(target).query)
    assert query["post_logout_redirect_uri"] == [f"{BASE}/login"]
    assert query["id_token_hint"][0].count(".") == 2
    assert sso_row(app_client).refresh_token is None  # forgotten with the session
    # The provider validates the hint and shows its sign-out confirmation (not an error page).
    confirm = httpx.get(target, timeout=10)
    assert confirm.status_code == 200
    assert "logout" in confirm.text.lower()
    assert "error" not in confirm.text.lower()


def test_the_layouts_logout_also_forgets_the_refresh_token_and_sends_the_browser_to_the_provider(app_client, idp):
    sign_in(app_client)
    assert sso_row(app_client).refresh_token is not None
    token = app_client.get("/api/2.0/mlflow/users/current").json()["csrf_token"]
    response = app_client.post("/logout", data={"csrf_token": token}, headers={"X-CSRF-Token": token})
    # A page, not a redirect: the UI's CSP (form-action 'self') would block a cross-origin redirect.
    assert response.status_code == 200
    assert 'http-equiv="refresh"' in response.text
    target = html.unescape(re.search(r'<a href="([^"]+)">', response.text).group(1))
    assert target.startswith(f"{idp.issuer}/session/end")
    query = parse_qs(urlsplit(target).query)
    assert query["post_logout_redirect_uri"] == [f"{BASE}/login"]
    assert query["id_token_hint"][0].count(".") == 2
    assert sso_row(app_client).refresh_token is None
    assert revoked(app_client)
    assert "mlgate_session" not in app_client.cookies  # the cookie is deleted on that page too
    assert app_client.get("/api/2.0/mlflow/users/current").status_code == 401
    confirm = httpx.get(target, timeout=10)
    assert confirm.status_code == 200
    assert "error" not in confirm.text.lower()


def test_concurrent_requests_in_two_processes_renew_once_and_the_rotating_provider_keeps_the_grant(
        app_factory, tmp_path, idp, monkeypatch):
    # Two apps on one database stand for two server processes. With rotation, a refresh token used twice
    # makes the provider revoke the whole grant (RFC 9700 section 4.14.2): only one request may use it.
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setenv("CORP_SECRET", SECRET)
    path = policy(tmp_path, idp.issuer)
    with TestClient(app_factory(policy_file=path), base_url=BASE, follow_redirects=False) as first, \
            TestClient(app_factory(policy_file=path), base_url=BASE, follow_redirects=False) as second:
        sign_in(first)
        second.cookies.set("mlgate_session", first.cookies["mlgate_session"])
        make_due(first)
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda c: c.get("/api/2.0/mlflow/users/current").status_code,
                                     [first, second] * 4))
        assert statuses == [200] * 8
        assert not revoked(first)
        with first.app.state.tracking.engine.connect() as conn:
            renewals = conn.execute(select(audit_log.c.outcome).where(
                audit_log.c.action == "session.revalidate")).scalars().all()
        assert renewals == ["success"]
        # The grant survived: the next renewal, from the other process, works with the rotated token.
        time.sleep(5.5)
        assert second.get("/api/2.0/mlflow/users/current").status_code == 200
        assert not revoked(first)


def test_additive_group_sync_keeps_mlgate_groups_at_renewal(app_factory, tmp_path, idp, monkeypatch):
    monkeypatch.setenv("CORP_SECRET", SECRET)
    path = tmp_path / "additive.yaml"
    path.write_text(open(policy(tmp_path, idp.issuer)).read().replace(
        "revalidate_seconds: 5", "revalidate_seconds: 5\n        group_sync: additive"))
    with TestClient(app_factory(policy_file=str(path)), base_url=BASE, follow_redirects=False) as app:
        sign_in(app)
        idp.change_account("alice", groups=["ml-team", "modellers"])
        make_due(app)
        assert app.get("/api/2.0/mlflow/users/current").status_code == 200
        # Added at the provider: applied; removed there ("readers"): kept, as additive promises.
        assert groups_of(app, "alice") == {"ml-team", "readers", "modellers"}
