"""Chromium keeps an SSO session only while the real OpenID Provider confirms it.

mlgate re-validates every 5 seconds here with the refresh token the provider granted at sign-in: a group
added at the provider shows up without signing in again; a user disabled there is signed out at the next
request after the interval, and the browser lands on the sign-in page, which says why.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.browser import chromium_browser, screenshot
from tests.conftest import LiveServer
from tests.idp import IdP
from tests.sso_stack import sign_in, sso_stack

pytestmark = [pytest.mark.e2e, pytest.mark.oidc, pytest.mark.browser]
SECRET = "revalidation-client-secret-0123456789"
INTERVAL = 5
USERS = {"alice": {"email": "alice@example.com", "groups": ["team-a"]},
         "bob": {"email": "bob@example.com", "groups": ["team-a"]}}


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[tuple[LiveServer, IdP]]:
    """An IdP granting refresh tokens, and mlgate re-validating SSO sessions every INTERVAL seconds."""
    with sso_stack(tmp_path_factory.mktemp("sso-revalidation"), users=USERS, secret=SECRET,
                   allowed_groups=["team-a", "team-b"], refresh_tokens=True,
                   provider_extra=f"        revalidate_seconds: {INTERVAL}",
                   grants=['{principal: "group:team-a", resource: "experiment-name:team-a/*", permission: EDIT}',
                           '{principal: "group:team-b", resource: "experiment-name:team-b/*", permission: EDIT}'],
                   experiments=["team-a/exp", "team-b/exp"]) as both:
        yield both


def visible_experiments(page, server: LiveServer) -> list[str]:
    me = page.request.get(f"{server.url}/api/2.0/mlflow/users/current")
    assert me.status == 200, me.text()
    found = page.request.post(f"{server.url}/api/2.0/mlflow/experiments/search", data={"max_results": 100},
                              headers={"X-CSRF-Token": me.json()["csrf_token"]})
    assert found.status == 200, found.text()
    return sorted(e["name"] for e in found.json()["experiments"])


def test_a_group_added_at_the_provider_applies_at_the_next_revalidation(stack):
    server, idp = stack
    with chromium_browser() as browser:
        page = browser.new_context().new_page()
        sign_in(page, server, "alice")
        assert visible_experiments(page, server) == ["team-a/exp"]
        idp.change_account("alice", groups=["team-a", "team-b"])
        time.sleep(INTERVAL + 1)
        # The session is renewed with the provider, without the browser signing in again.
        assert visible_experiments(page, server) == ["team-a/exp", "team-b/exp"]
        page.goto(f"{server.url}/")
        assert page.url == f"{server.url}/"
        assert page.get_by_text("team-b/exp").count() >= 1
        screenshot(page, "sso-revalidated-groups")


def test_a_user_disabled_at_the_provider_is_signed_out_after_the_interval(stack):
    server, idp = stack
    with chromium_browser() as browser:
        page = browser.new_context().new_page()
        sign_in(page, server, "bob")
        assert visible_experiments(page, server) == ["team-a/exp"]
        idp.change_account("bob", disabled=True)
        time.sleep(INTERVAL + 1)
        response = page.request.get(f"{server.url}/api/2.0/mlflow/users/current")
        assert response.status == 401
        assert "no longer confirms your single sign-on session" in response.json()["message"]
        page.goto(f"{server.url}/")
        assert page.url.startswith(f"{server.url}/login")
        assert "no longer confirms your single sign-on session" in page.locator("[role=alert]").inner_text()
        screenshot(page, "sso-revalidation-refused")
        # Enabled again at the provider, the ended session stays ended: bob must sign in again.
        idp.change_account("bob", disabled=False)
        assert page.request.get(f"{server.url}/api/2.0/mlflow/users/current").status == 401
