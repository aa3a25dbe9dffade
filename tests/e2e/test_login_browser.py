"""A person signs in with the password form in Chromium, stays signed in across a reload, signs out,
and the old session cookie is useless afterwards."""

from __future__ import annotations

import httpx
import pytest

from tests.browser import chromium_browser, screenshot
from tests.conftest import start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # --dev: the session cookie is not Secure, so it travels over this test's plain http.
    workdir = tmp_path_factory.mktemp("login-browser")
    live = start_server(workdir, f"sqlite:///{workdir / 'mlgate.db'}", "--dev")
    yield live
    live.stop()


def test_form_login_survives_reload_and_logout_kills_the_cookie(server):
    current = f"{server.url}/api/2.0/mlflow/users/current"
    with chromium_browser() as browser:
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"{server.url}/login?next=/api/2.0/mlflow/users/current")
        screenshot(page, "login-form")
        page.fill("#username", server.admin_username)
        page.fill("#password", server.admin_password)
        page.click("form[action='/login'] button[type=submit]")
        page.wait_for_url(current)
        assert '"username":"admin"' in page.content().replace(" ", "")

        page.reload()
        assert '"username":"admin"' in page.content().replace(" ", "")
        cookies = {c["name"]: c for c in context.cookies()}
        session = cookies["mlgate_session"]
        assert session["httpOnly"] is True
        assert session["sameSite"] == "Lax"
        old_cookie = session["value"]

        page.goto(f"{server.url}/sso/logout")
        page.click("form[action='/sso/logout'] button[type=submit]")
        page.wait_for_load_state()
        assert page.request.get(current).status == 401
        assert "mlgate_session" not in {c["name"] for c in context.cookies()} or \
            {c["name"]: c for c in context.cookies()}["mlgate_session"]["value"] != old_cookie

    # The cookie captured before logout was revoked on the server, not just deleted in the browser.
    replay = httpx.get(current, cookies={"mlgate_session": old_cookie}, timeout=30)
    assert replay.status_code == 401
    assert replay.json()["error_code"] == "UNAUTHENTICATED"
