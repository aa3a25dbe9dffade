"""Workspaces in MLflow's own web UI (3.17.2 bundle) behind mlgate, in Chromium, as ordinary users.

How the bundle does workspaces (read from its JS): ``server-info``'s ``workspaces_enabled`` turns them on;
the home page and the sidebar's "Select workspace" list ``GET /ajax-api/3.0/mlflow/workspaces`` (sent with an
empty ``X-MLFLOW-WORKSPACE``); the chosen workspace goes into the route (``#/experiments?workspace=team-a``)
and localStorage (``mlflow.activeWorkspace``), and every XHR carries it as ``X-MLFLOW-WORKSPACE``. mlgate
needs nothing of its own for this: the list is the caller's memberships, and membership decides the header.

alice holds a role in team-a and in team-b; carol only in team-a. alice sees both (and ``default``) and
switching shows one workspace's experiments and models only; an id of the other workspace is missing.
carol never sees team-b: not in the picker, and naming it in the URL or in localStorage gets "not found"
(audited as a denial naming the workspace). mlgate's bar forgets the remembered workspace when another
account signs in on the same browser. Screenshots: test-output/screenshots/mlflow-ui-ws-*.
"""

from __future__ import annotations

import httpx
import pytest

from gateway.ui.mlflow_ui import find_build
from tests.browser import chromium_browser, screenshot
from tests.conftest import start_server
from tests.ui.mlflow_ui_walk import A, Watch

pytestmark = [pytest.mark.browser, pytest.mark.skipif(find_build()[0] is None, reason="needs mlgate[mlflow-ui]")]
A3 = "/api/3.0/mlflow"
PASSWORD = "Unguessable-Pw-7f3e21"
MEMBERS = {"team-a": ["alice", "carol"], "team-b": ["alice"]}


def _admin(server, method: str, path: str, workspace: str | None = None, **kwargs) -> dict:
    headers = {"X-MLFLOW-WORKSPACE": workspace} if workspace else {}
    response = httpx.request(method, f"{server.url}{path}", auth=server.admin_auth, headers=headers, timeout=30,
                             **kwargs)
    assert response.status_code in (200, 201), response.text
    return response.json()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("mlflow-ui-ws")
    server = start_server(workdir, f"sqlite:///{workdir / 'mlgate.db'}", "--dev", "--enable-workspaces",
                          env={"MLGATE_WEB_UI": "mlflow"})
    try:
        for user in ("alice", "carol"):
            _admin(server, "POST", f"{A}/users/create", json={"username": user, "password": PASSWORD})
        ids = {}
        for ws, members in MEMBERS.items():
            _admin(server, "POST", f"{A3}/workspaces", json={"name": ws, "description": f"Team {ws[-1].upper()}"})
            role = _admin(server, "POST", f"{A3}/roles/create", json={"workspace": ws, "name": "members"})["role"]
            for kind in ("experiment", "registered_model"):
                _admin(server, "POST", f"{A3}/roles/permissions/add", json={
                    "role_id": role["id"], "resource_type": kind, "resource_pattern": "*", "permission": "EDIT"})
            for user in members:
                _admin(server, "POST", f"{A3}/roles/assign", json={"role_id": role["id"], "username": user})
            exp = _admin(server, "POST", f"{A}/experiments/create", ws, json={"name": f"{ws}-exp"})["experiment_id"]
            _admin(server, "POST", f"{A}/runs/create", ws, json={"experiment_id": exp, "run_name": f"{ws}-run"})
            _admin(server, "POST", f"{A}/registered-models/create", ws, json={"name": f"{ws}-model"})
            ids[ws] = exp
        # In 'default', where both are members by being signed in, an experiment neither may read.
        _admin(server, "POST", f"{A}/experiments/create", json={"name": "default-secret-exp"})
        yield {"server": server, "ids": ids}
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser():
    with chromium_browser() as launched:
        yield launched


def _sign_in(context, url: str, username: str, fragment: str = "#/"):
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(f"{url}/{fragment}")
    page.wait_for_url(f"{url}/login?next=/{fragment}")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(f"{url}/{fragment}")
    return page


def _picker_options(page) -> list[str]:
    """The workspaces the sidebar's picker offers (opened and closed again)."""
    page.locator("[role=combobox]").first.click()
    page.locator("[role=option]").first.wait_for()
    options = page.locator("[role=option]").all_inner_texts()
    page.keyboard.press("Escape")
    return [o.strip() for o in options]


def _headers_of(requests: list, path: str) -> set:
    return {r.headers.get("x-mlflow-workspace") for r in requests if path in r.url}


def test_a_member_of_two_workspaces_switches_between_them(world, browser):
    server, ids = world["server"], world["ids"]
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = _sign_in(context, server.url, "alice")
    watch, sent = Watch(server.url), []
    watch.attach(page)
    page.on("request", lambda request: sent.append(request))
    try:
        page.get_by_text("Select a workspace to start experiments").wait_for()
        assert _picker_options(page) == ["default", "team-a", "team-b"]
        assert _headers_of(sent, "/ajax-api/3.0/mlflow/workspaces") == {""}, "the list is asked outside any workspace"

        for ws, other in (("team-a", "team-b"), ("team-b", "team-a")):
            page.goto(f"{server.url}/#/")
            page.locator("[role=combobox]").first.click()
            page.locator("[role=option]", has_text=ws).click()
            page.wait_for_url(f"**workspace={ws}")
            sent.clear()
            page.goto(f"{server.url}/#/experiments?workspace={ws}")
            page.get_by_text(f"{ws}-exp").first.wait_for()
            page.wait_for_timeout(500)
            screenshot(page, f"mlflow-ui-ws-alice-{ws}-experiments")
            text = page.inner_text("body")
            assert f"{other}-exp" not in text
            assert "default-secret-exp" not in text
            assert _headers_of(sent, "/experiments/search") == {ws}
            assert page.evaluate("localStorage.getItem('mlflow.activeWorkspace')") == ws
            page.goto(f"{server.url}/#/models?workspace={ws}")
            page.get_by_text(f"{ws}-model").first.wait_for()
            assert f"{other}-model" not in page.inner_text("body")
            page.goto(f"{server.url}/#/experiments/{ids[ws]}/runs?workspace={ws}")
            page.get_by_text(f"{ws}-run").first.wait_for()
            assert watch.take() == []
            # The other workspace's experiment, by its id, from this workspace: missing, nothing of it shows.
            page.goto(f"{server.url}/#/experiments/{ids[other]}/runs?workspace={ws}")
            page.wait_for_timeout(2500)
            screenshot(page, f"mlflow-ui-ws-alice-{other}-from-{ws}")
            text = page.inner_text("body")
            assert f"{other}-exp" not in text
            assert f"{other}-run" not in text
            assert any(p.startswith("404 ") for p in watch.take()), "the other workspace's id is not found"
    finally:
        context.close()


def test_a_member_of_one_workspace_never_sees_the_other(world, browser):
    server, ids = world["server"], world["ids"]
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = _sign_in(context, server.url, "carol")
    sent = []
    page.on("request", lambda request: sent.append(request))
    try:
        page.get_by_text("Select a workspace to start experiments").wait_for()
        assert _picker_options(page) == ["default", "team-a"]
        assert "team-b" not in page.inner_text("body")

        # Named in the route: the server answers "not found" to every call made in it.
        page.goto(f"{server.url}/#/experiments?workspace=team-b")
        page.get_by_text("Workspace 'team-b' not found.").first.wait_for()
        screenshot(page, "mlflow-ui-ws-carol-team-b-by-url")
        assert "team-b-exp" not in page.inner_text("body")
        # Remembered in localStorage (as if carol had edited it), then the models page.
        page.evaluate("localStorage.setItem('mlflow.activeWorkspace', 'team-b')")
        sent.clear()
        page.goto(f"{server.url}/#/models")
        page.wait_for_timeout(2500)
        screenshot(page, "mlflow-ui-ws-carol-team-b-by-storage")
        assert "team-b-model" not in page.inner_text("body")
        assert "team-b" in _headers_of(sent, "/registered-models/search"), "the bundle did send team-b"
        # The experiment by its id, from team-a where carol is a member.
        page.goto(f"{server.url}/#/experiments/{ids['team-b']}/runs?workspace=team-a")
        page.wait_for_timeout(2500)
        assert "team-b-exp" not in page.inner_text("body")
        assert "team-b-run" not in page.inner_text("body")
        # Her own workspace works.
        page.goto(f"{server.url}/#/experiments?workspace=team-a")
        page.get_by_text("team-a-exp").first.wait_for()
    finally:
        context.close()
    denials = _admin(server, "GET", "/api/2.0/mlgate/audit/list",
                     params={"actor": "carol", "outcome": "denied", "workspace": "team-b"})["records"]
    assert denials
    assert all("not a member of workspace 'team-b'" in r["reason"] for r in denials)


def test_the_next_account_on_the_browser_does_not_start_in_the_previous_ones_workspace(world, browser):
    server = world["server"]
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        page = _sign_in(context, server.url, "alice", "#/experiments?workspace=team-b")
        page.get_by_text("team-b-exp").first.wait_for()
        assert page.evaluate("localStorage.getItem('mlflow.activeWorkspace')") == "team-b"
        # The bar's sign-out (a form post from MLflow's page: refused as cross-site without its Referrer-Policy).
        page.locator("#mlgate-bar button", has_text="Sign out").click()
        page.wait_for_url(f"{server.url}/login")
        page.close()
        watch = Watch(server.url)
        page = _sign_in(context, server.url, "carol")
        watch.attach(page)
        page.get_by_text("Select a workspace to start experiments").wait_for()
        page.goto(f"{server.url}/#/experiments")
        page.wait_for_timeout(2000)
        assert page.evaluate("localStorage.getItem('mlflow.activeWorkspace')") != "team-b"
        assert "team-b" not in page.inner_text("body")
        assert watch.take() == [], "carol's calls do not name alice's workspace"
    finally:
        context.close()
