"""Chromium signs in through a real OpenID Provider: alice lands signed in, sees what her groups grant,
mints a personal access token and signs out of mlgate and the provider with the layout's button; an outsider
gets a clear page; forged ID tokens slipped into the provider's real token response are refused."""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.browser import chromium_browser, screenshot
from tests.conftest import LiveServer
from tests.idp import IdP
from tests.sso_stack import BUTTON, sign_in, sso_stack

pytestmark = [pytest.mark.e2e, pytest.mark.oidc, pytest.mark.browser]
SECRET = "browser-client-secret-0123456789"
USERS = {
    "alice": {"email": "alice@example.com", "email_verified": True, "groups": ["team-a"]},
    "mallory": {"email": "mallory@example.com", "groups": ["outsiders"]},
    "dave": {"email": "dave@example.com", "email_verified": True, "groups": ["team-a"]},
    "erin": {"email": "erin@example.com", "email_verified": True, "groups": ["team-a"]},
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[tuple[LiveServer, IdP]]:
    """One IdP and one mlgate server (--dev: http cookies) with a team-a grant."""
    with sso_stack(tmp_path_factory.mktemp("sso-browser"), users=USERS, secret=SECRET, allowed_groups=["team-a"],
                   grants=['{principal: "group:team-a", resource: "experiment-name:team-a/*", permission: EDIT}'],
                   experiments=["team-a/exp", "secret/exp"]) as both:
        yield both


def test_alice_signs_in_sees_her_groups_experiments_mints_a_token_and_signs_out(stack):
    server, idp = stack
    with chromium_browser() as browser:
        context = browser.new_context()
        page = context.new_page()
        sign_in(page, server, "alice")
        assert page.url == f"{server.url}/api/2.0/mlflow/users/current"
        me = page.request.get(f"{server.url}/api/2.0/mlflow/users/current").json()
        assert me["user"]["username"] == "alice"
        found = page.request.post(f"{server.url}/api/2.0/mlflow/experiments/search", data={"max_results": 100},
                                  headers={"X-CSRF-Token": me["csrf_token"]}).json()
        assert [e["name"] for e in found["experiments"]] == ["team-a/exp"]
        minted = page.request.post(f"{server.url}/api/2.0/mlflow/users/tokens/create",
                                   data={"name": "laptop", "expires_in_days": 1},
                                   headers={"X-CSRF-Token": me["csrf_token"]})
        assert minted.status == 200
        token = minted.json()["token"]
        cli = httpx.get(f"{server.url}/api/2.0/mlflow/experiments/get-by-name",
                        params={"experiment_name": "team-a/exp"}, headers={"Authorization": f"Bearer {token}"},
                        timeout=30)
        assert cli.status_code == 200

        # The layout's "Sign out" button (what a person clicks) ends mlgate's session and the provider's.
        page.goto(f"{server.url}/")
        page.click("header form[action='/logout'] button")
        # RP-initiated logout: the provider asks, then returns to mlgate's login page.
        page.wait_for_selector("text=Yes, sign me out")
        screenshot(page, "sso-idp-logout")
        page.get_by_text("Yes, sign me out").click()
        page.wait_for_url(f"{server.url}/login")
        assert page.request.get(f"{server.url}/api/2.0/mlflow/users/current").status == 401
        # The provider's session is over too: signing in again asks for the login name.
        page.get_by_text("Sign in with Corp SSO").click()
        page.wait_for_selector("input[name=login]")
        assert page.url.startswith(idp.issuer)
        context.close()


def test_a_user_outside_the_allowed_groups_gets_a_clear_page(stack):
    server, _ = stack
    with chromium_browser() as browser:
        page = browser.new_page()
        sign_in(page, server, "mallory")
        assert page.locator("h1").inner_text() == "You cannot sign in to mlgate"
        assert "not in a group that may use mlgate" in page.locator("[role=alert]").inner_text()
        screenshot(page, "sso-refused")
        assert page.request.get(f"{server.url}/api/2.0/mlflow/users/current").status == 401
    users = httpx.get(f"{server.url}/api/2.0/mlflow/users/list", auth=server.admin_auth, timeout=30).json()
    assert "mallory" not in str(users)


def test_the_password_form_beside_the_provider_button_works_in_chromium(stack):
    # Chromium sends "Origin: null" with form posts under a no-referrer policy; the form must still work.
    server, _ = stack
    with chromium_browser() as browser:
        page = browser.new_page()
        page.goto(f"{server.url}/login?next=/api/2.0/mlflow/users/current")
        assert page.get_by_text("Sign in with Corp SSO").count() == 1
        page.fill("#username", server.admin_username)
        page.fill("#password", server.admin_password)
        page.click("form[action='/login'] button[type=submit]")
        page.wait_for_url(f"{server.url}/api/2.0/mlflow/users/current")
        assert page.request.get(f"{server.url}/api/2.0/mlflow/users/current").json()["user"]["username"] == "admin"


def test_the_page_asked_for_query_string_included_is_where_sso_lands(stack):
    server, _ = stack
    with chromium_browser() as browser:
        page = browser.new_page()
        page.goto(f"{server.url}/?filter=name LIKE 'team-a%'")
        assert page.url.startswith(f"{server.url}/login?next=")
        page.get_by_text(BUTTON).click()
        page.wait_for_selector("input[name=login]")
        page.fill("input[name=login]", "erin")
        page.fill("input[name=password]", "any-password")
        page.click("button[type=submit]")
        page.wait_for_load_state()
        if page.locator("input[name=prompt][value=consent]").count():
            page.click("button[type=submit]")
        page.wait_for_url(f"{server.url}/?*")
        assert parse_qs(urlsplit(page.url).query) == {"filter": ["name LIKE 'team-a%'"]}
        assert page.get_by_text("team-a/exp").count() >= 1


FORGERIES = {
    "another audience": ({"aud": "another-client"}, "RS256", "meant for another audience"),
    "expired": ({"exp": "past", "iat": "past"}, "RS256", "has expired"),
    "alg none": ({}, "none", "algorithm 'none' is not accepted"),
    "HS256 keyed with the public key": ({}, "HS256-public-key", "algorithm 'HS256' is not accepted"),
}


@pytest.mark.parametrize("case", FORGERIES)
def test_a_forged_id_token_in_the_providers_answer_is_refused_and_creates_nothing(stack, case):
    # The real provider signs dave in and answers mlgate's real code exchange, but with a forged ID token.
    server, idp = stack
    claims, alg, reason = FORGERIES[case]
    past = int(time.time()) - 3600
    idp.forge_next_id_token({k: past if v == "past" else v for k, v in claims.items()}, alg)
    with chromium_browser() as browser:
        context = browser.new_context()
        page = context.new_page()
        sign_in(page, server, "dave")
        assert page.url.startswith(f"{server.url}/sso/corp/callback")
        assert page.locator("h1").inner_text() == "The identity provider's answer was refused"
        assert reason in page.locator("[role=alert]").inner_text()
        assert "mlgate_session" not in {c["name"] for c in context.cookies()}
        assert page.request.get(f"{server.url}/api/2.0/mlflow/users/current").status == 401
        context.close()
    users = httpx.get(f"{server.url}/api/2.0/mlflow/users/list", auth=server.admin_auth, timeout=30).json()
    assert "dave" not in str(users)
