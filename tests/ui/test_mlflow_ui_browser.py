"""MLflow's own web UI in Chromium against a real server (--web-ui mlflow), as a user with EDIT on one experiment
and as a READ user on another, with a third team's experiment and model hidden from both.

Every area is opened by its ``#/...`` route; on each, no request to the server may be answered 404, 405 or
5xx, no script may fail, the CSP may refuse nothing, and nothing of the hidden experiment may show.
Screenshots: test-output/screenshots/mlflow-ui-<role>-<area>.png. Editing goes through the page's own
fetch (so through mlgate's bar, which adds the session's CSRF token), as the UI's buttons do.
"""

from __future__ import annotations

import time

import httpx
import pytest

from gateway.ui.mlflow_ui import find_build
from tests.browser import chromium_browser, screenshot
from tests.conftest import start_server
from tests.ui.mlflow_ui_walk import AJAX, A, make_team, page_fetch, post, walk_every_area

pytestmark = [pytest.mark.browser, pytest.mark.skipif(find_build()[0] is None, reason="needs mlgate[mlflow-ui]")]
EDITOR_PASSWORD = "Unguessable-Pw-e4f1a"
READER_PASSWORD = "Unguessable-Pw-r8c2d"
# Only the editor may create experiments and models (the default lets every signed-in user create).
POLICY = (b'access:\n  create:\n    experiments: [{principal: "user:editor", name: "*"}]\n'
          b'    models: [{principal: "user:editor", name: "*"}]\n')


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("mlflow-ui")
    policy = workdir / "access.yaml"
    policy.write_bytes(POLICY)
    server = start_server(workdir, f"sqlite:///{workdir / 'mlgate.db'}", "--dev", "--policy", str(policy),
                          env={"MLGATE_WEB_UI": "mlflow"})
    try:
        post(server, "/users/create", {"username": "editor", "password": EDITOR_PASSWORD})
        post(server, "/users/create", {"username": "reader", "password": READER_PASSWORD})
        editor, reader = make_team(server, "team-a", "editor", "EDIT"), make_team(server, "team-b", "reader", "READ")
        secret = post(server, "/experiments/create", {"name": "other-team-secret"})["experiment_id"]
        secret_run = post(server, "/runs/create", {"experiment_id": secret, "run_name": "classified-run"})
        post(server, "/registered-models/create", {"name": "secret-model"})
        post(server, "/model-versions/create", {"name": "secret-model", "run_id": editor["runs"][0],
                                                 "source": f"runs:/{editor['runs'][0]}/model"})
        yield {"server": server, "editor": editor, "reader": reader, "secret": secret,
               "secret_run": secret_run["run"]["info"]["run_id"]}
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser():
    with chromium_browser() as launched:
        yield launched


def _sign_in(browser, url: str, username: str, password: str, fragment: str):
    """A fresh context signed in through /login, starting from a link into MLflow's UI (its fragment kept)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(f"{url}/{fragment}")
    page.wait_for_url(f"{url}/login?next=/{fragment}")  # the browser keeps the fragment through the redirect
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(f"{url}/{fragment}")
    return page


@pytest.mark.parametrize("role", ["editor", "reader"])
def test_every_area_renders_for_a_user_who_sees_one_experiment(world, browser, role):
    server, team = world["server"], world[role]
    started = time.monotonic()
    password = EDITOR_PASSWORD if role == "editor" else READER_PASSWORD
    page = _sign_in(browser, server.url, role, password, f"#/experiments/{team['exp']}/runs/{team['runs'][0]}")
    try:
        page.get_by_text(f"{team['model'].removesuffix('-model')}-run-0").first.wait_for()
        assert page.locator("#mlgate-bar").inner_text().split() == (
            ["mlgate", role, "Sign", "out"]), "mlgate's bar, without Admin for a non-admin"
        assert walk_every_area(page, server.url, role, team, world["secret"], world["secret_run"]) == []
    finally:
        page.context.close()
    print(f"{role}: {time.monotonic() - started:.1f}s")


def test_editing_works_for_edit_and_is_refused_for_read(world, browser):
    server, a, b = world["server"], world["editor"], world["reader"]
    editor = _sign_in(browser, server.url, "editor", EDITOR_PASSWORD, f"#/experiments/{a['exp']}")
    try:
        assert page_fetch(editor, "POST", f"{AJAX}/experiments/create", {"name": "team-a-new"}) == 200
        assert page_fetch(editor, "POST", f"{AJAX}/runs/update",
                      {"run_id": a["runs"][0], "run_name": "renamed-by-editor"}) == 200
        assert page_fetch(editor, "POST", f"{AJAX}/registered-models/create", {"name": "team-a-new-model"}) == 200
        assert page_fetch(editor, "POST", f"{AJAX}/model-versions/create", {
            "name": "team-a-new-model", "source": f"runs:/{a['runs'][0]}/model", "run_id": a["runs"][0]}) == 200
        assert page_fetch(editor, "POST", f"{AJAX}/registered-models/alias",
                      {"name": a["model"], "alias": "champion", "version": "1"}) == 200
        # The UI shows the results.
        editor.goto(f"{server.url}/#/experiments/{a['exp']}/runs/{a['runs'][0]}")
        editor.get_by_text("renamed-by-editor").first.wait_for()
        editor.goto(f"{server.url}/#/models/{a['model']}")
        editor.get_by_text("champion").first.wait_for()
        screenshot(editor, "mlflow-ui-editor-alias-set")
    finally:
        editor.context.close()
    reader = _sign_in(browser, server.url, "reader", READER_PASSWORD, f"#/experiments/{b['exp']}")
    try:
        assert page_fetch(reader, "POST", f"{AJAX}/experiments/create", {"name": "team-b-new"}) == 403
        assert page_fetch(reader, "POST", f"{AJAX}/runs/update",
                      {"run_id": b["runs"][0], "run_name": "renamed-by-reader"}) == 403
        assert page_fetch(reader, "POST", f"{AJAX}/registered-models/create", {"name": "team-b-new-model"}) == 403
        assert page_fetch(reader, "POST", f"{AJAX}/model-versions/create", {
            "name": b["model"], "source": f"runs:/{b['runs'][0]}/model", "run_id": b["runs"][0]}) == 403
        assert page_fetch(reader, "POST", f"{AJAX}/registered-models/alias",
                      {"name": b["model"], "alias": "champion", "version": "1"}) == 403
        # Another team's run: hidden, so "does not exist".
        assert page_fetch(reader, "POST", f"{AJAX}/runs/update",
                      {"run_id": world["secret_run"], "run_name": "x"}) == 404
        reader.goto(f"{server.url}/#/experiments/{b['exp']}/runs/{b['runs'][0]}")
        reader.get_by_text("team-b-run-0").first.wait_for()
        screenshot(reader, "mlflow-ui-reader-run-unchanged")
    finally:
        reader.context.close()


def test_a_write_from_another_origin_is_refused(world, browser):
    server, a = world["server"], world["editor"]
    page = _sign_in(browser, server.url, "editor", EDITOR_PASSWORD, f"#/experiments/{a['exp']}")
    try:
        # localhost is another origin than 127.0.0.1 (both are allowed hosts of this server).
        other = server.url.replace("127.0.0.1", "localhost")
        page.goto(f"{other}/login")
        status = page.evaluate("""async (target) => {
            try {
                const answer = await fetch(target, {method: "POST", credentials: "include",
                    headers: {"Content-Type": "text/plain"}, body: JSON.stringify({name: "cross-site"})});
                return answer.status;
            } catch (e) { return -1; }
        }""", f"{server.url}/ajax-api/2.0/mlflow/experiments/create")
        assert status in (-1, 403)  # refused by the Origin check (or the browser hides the refusal: CORS)
        listed = httpx.get(f"{server.url}{A}/experiments/get-by-name", params={"experiment_name": "cross-site"},
                           auth=server.admin_auth, timeout=30)
        assert listed.status_code == 404
    finally:
        page.context.close()


def test_mlgates_own_runs_table_keeps_short_values_on_one_line(world, browser):
    """mlgate's own runs table (at /experiments/<id> beside MLflow's UI), 8 param and 8 metric columns at
    1400 px: values such as 0.01 and run names stay on one line instead of collapsing to one-character
    columns (issue #19, "Fix in the own UI")."""
    server, a = world["server"], world["editor"]
    run = post(server, "/runs/create", {"experiment_id": a["exp"], "run_name": "resnet-lr-0.03-wide",
                                         "start_time": 1_764_000_000_000})["run"]["info"]["run_id"]
    post(server, "/runs/log-batch", {"run_id": run, "params": [
        {"key": f"param_{i:02d}", "value": "0.01"} for i in range(10)], "metrics": [
        {"key": f"metric_{i:02d}", "value": 0.123456, "timestamp": 1_764_000_000_000, "step": 0} for i in range(10)]})
    page = _sign_in(browser, server.url, "editor", EDITOR_PASSWORD, f"#/experiments/{a['exp']}")
    try:
        page.goto(f"{server.url}/experiments/{a['exp']}")
        row = page.locator("tbody tr", has_text="resnet-lr-0.03-wide")
        row.wait_for()
        screenshot(page, "mlgate-own-runs-table-1400")
        # Lines of text in each cell: the distinct tops of its text's line boxes (the row's height is shared).
        lines = row.evaluate("""tr => [...tr.querySelectorAll("td")].map(td => {
            const tops = new Set();
            const walker = document.createTreeWalker(td, NodeFilter.SHOW_TEXT);
            for (let node = walker.nextNode(); node; node = walker.nextNode()) {
                if (!node.textContent.trim()) { continue; }
                const range = document.createRange();
                range.selectNodeContents(node);
                for (const rect of range.getClientRects()) { tops.add(Math.round(rect.top)); }
            }
            return [td.innerText.trim(), tops.size];
        })""")
        assert lines, "no cells found"
        assert [cell for cell in lines if cell[0] and cell[1] > 1] == [], lines
    finally:
        page.context.close()
