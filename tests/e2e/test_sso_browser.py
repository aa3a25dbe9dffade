"""Chromium signs in through a real OpenID Provider: alice lands signed in, sees what her groups grant,
mints a personal access token and signs out of mlgate and the provider; an outsider gets a clear page."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.browser import chromium_browser, screenshot
from tests.conftest import LiveServer
from tests.idp import IdP
from tests.sso_stack import sign_in, sso_stack

pytestmark = [pytest.mark.e2e, pytest.mark.oidc, pytest.mark.browser]
SECRET = "browser-client-secret-0123456789"
USERS = {
    "alice": {"email": "alice@example.com", "email_verified": True, "groups": ["team-a"]},
    "mallory": {"email": "mallory@example.com", "groups": ["outsiders"]},
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

        page.goto(f"{server.url}/sso/logout")
        page.get_by_role("button", name="Sign out").click()
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
