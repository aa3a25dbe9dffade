"""MLflow's own web UI in Chromium for people who sign in through single sign-on (a real OpenID Provider, npm
oidc-provider): alice holds EDIT on team-a's experiment and model through her group's grant, bob holds READ
on team-b's through a grant to his user; a third team's experiment and model are hidden from both.

Each walks every area (the walk of tests/ui/mlflow_ui_walk.py: no 404/405/5xx, script error or CSP refusal,
nothing hidden). Then the editing actions, by clicks on the UI's own buttons and dialogs (create an
experiment, rename a run, register a model, set an alias), work for alice and are refused for bob: the UI
shows the refusal and the server's state, read through the API, is unchanged. The hidden experiment shows
in no search box, experiment picker, compare view or chart. Screenshots: test-output/screenshots/mlflow-ui-sso-*.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from gateway.ui.mlflow_ui import find_build
from tests.browser import chromium_browser, screenshot
from tests.sso_stack import BUTTON, sso_stack
from tests.ui.mlflow_ui_walk import HIDDEN, A, Watch, make_team, post, walk_every_area

pytestmark = [pytest.mark.e2e, pytest.mark.oidc, pytest.mark.browser,
              pytest.mark.skipif(find_build()[0] is None, reason="needs mlgate[mlflow-ui]")]
SECRET = "mlflow-ui-sso-client-secret-0123456789"
USERS = {
    "alice": {"email": "alice@example.com", "email_verified": True, "groups": ["team-a"]},
    "bob": {"email": "bob@example.com", "email_verified": True, "groups": ["team-b"]},
}
GRANTS = [
    '{principal: "group:team-a", resource: "experiment-name:team-a*", permission: EDIT}',
    '{principal: "group:team-a", resource: "model-name:team-a*", permission: EDIT}',
    '{principal: "user:bob", resource: "experiment-name:team-b*", permission: READ}',
    '{principal: "user:bob", resource: "model-name:team-b*", permission: READ}',
]
# Only team-a may create (the default lets every signed-in user create).
CREATE = ('  create:\n    experiments: [{principal: "group:team-a", name: "team-a*"}]\n'
          '    models: [{principal: "group:team-a", name: "team-a*"}]\n')
ROLES = {"alice": "team-a", "bob": "team-b"}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[dict]:
    with sso_stack(tmp_path_factory.mktemp("mlflow-ui-sso"), users=USERS, secret=SECRET,
                   allowed_groups=["team-a", "team-b"], grants=GRANTS, experiments=[], access_extra=CREATE,
                   env={"MLGATE_WEB_UI": "mlflow"}) as (server, idp):
        teams = {name: make_team(server, name) for name in ("team-a", "team-b")}
        secret = post(server, "/experiments/create", {"name": "other-team-secret"})["experiment_id"]
        secret_run = post(server, "/runs/create", {"experiment_id": secret, "run_name": "classified-run"})
        post(server, "/runs/log-metric", {"run_id": secret_run["run"]["info"]["run_id"], "key": "loss",
                                          "value": 0.5, "timestamp": 1_764_000_000_000, "step": 0})
        post(server, "/registered-models/create", {"name": "secret-model"})
        yield {"server": server, "idp": idp, **teams, "secret": secret,
               "secret_run": secret_run["run"]["info"]["run_id"]}


@pytest.fixture(scope="module")
def browser():
    with chromium_browser() as launched:
        yield launched


def _sso_sign_in(browser, url: str, login: str, fragment: str):
    """A fresh context signed in through the IdP, starting from a link into MLflow's UI (its fragment kept)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(f"{url}/{fragment}")
    page.wait_for_url(f"{url}/login?next=/{fragment}")
    page.get_by_text(BUTTON).click()
    page.wait_for_selector("input[name=login]")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "any-password")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    if page.locator("input[name=prompt][value=consent]").count():
        page.click("button[type=submit]")
    page.wait_for_url(f"{url}/{fragment}")
    return page


def _api(server, method: str, path: str, **kwargs) -> httpx.Response:
    return httpx.request(method, f"{server.url}{A}{path}", auth=server.admin_auth, timeout=30, **kwargs)


def _state(world: dict, team: str) -> dict:
    """What the editing actions could change, read through the API as the administrator."""
    server, t = world["server"], world[team]
    experiments = _api(server, "POST", "/experiments/search", json={"max_results": 1000}).json()["experiments"]
    models = _api(server, "GET", "/registered-models/search", params={"max_results": 1000}).json()
    run = _api(server, "GET", "/runs/get", params={"run_id": t["runs"][0]}).json()["run"]
    model = _api(server, "GET", "/registered-models/get", params={"name": t["model"]}).json()["registered_model"]
    return {"experiments": sorted(e["name"] for e in experiments),
            "models": sorted(m["name"] for m in models.get("registered_models", [])),
            "run_name": run["info"]["run_name"], "aliases": model.get("aliases", [])}


def _dialog(page):
    return page.locator("[role=dialog]").last


def _create_experiment(page, url: str, name: str) -> None:
    page.goto(f"{url}/#/experiments")
    page.get_by_test_id("create-experiment-button").click()
    _dialog(page).locator("#experimentName").fill(name)
    _dialog(page).get_by_role("button", name="Create").click()


def _rename_run(page, url: str, team: dict, name: str) -> None:
    page.goto(f"{url}/#/experiments/{team['exp']}/runs/{team['runs'][0]}")
    page.get_by_test_id("overflow-menu-trigger").click()
    page.get_by_test_id("overflow-rename-button").click()
    field = _dialog(page).locator("input").first
    field.fill(name)
    _dialog(page).get_by_role("button", name="Save").click()


def _register_model(page, url: str, team: dict, name: str) -> None:
    page.goto(f"{url}/#/experiments/{team['exp']}/runs/{team['runs'][1]}/artifacts/model")
    page.get_by_role("button", name="Register model").click()
    _dialog(page).get_by_role("combobox").first.click()
    page.keyboard.press("Enter")  # the list's first option, "Create New Model" (active when the list opens)
    _dialog(page).get_by_placeholder("Input a model name").fill(name)
    _dialog(page).get_by_role("button", name="Register").click()


def _set_alias(page, url: str, team: dict, alias: str) -> None:
    page.goto(f"{url}/#/models/{team['model']}/versions/1")
    page.get_by_role("button", name="Add").click()
    _dialog(page).get_by_role("combobox").first.fill(alias)
    page.keyboard.press("Enter")
    _dialog(page).get_by_role("button", name="Save aliases").click()


EDITS = {  # action -> (do it, what it changes in _state for a team's prefix)
    "create-experiment": (lambda p, u, t, pre: _create_experiment(p, u, f"{pre}-clicked"),
                          lambda s, pre: f"{pre}-clicked" in s["experiments"]),
    "rename-run": (lambda p, u, t, pre: _rename_run(p, u, t, f"{pre}-renamed"),
                   lambda s, pre: s["run_name"] == f"{pre}-renamed"),
    "register-model": (lambda p, u, t, pre: _register_model(p, u, t, f"{pre}-registered"),
                       lambda s, pre: f"{pre}-registered" in s["models"]),
    "set-alias": (lambda p, u, t, pre: _set_alias(p, u, t, "champion"),
                  lambda s, pre: any(a["alias"] == "champion" for a in s["aliases"])),
}


@pytest.mark.parametrize("login", ["alice", "bob"])
def test_every_area_renders_for_an_sso_user(world, browser, login):
    server, team = world["server"], world[ROLES[login]]
    page = _sso_sign_in(browser, server.url, login, f"#/experiments/{team['exp']}/runs/{team['runs'][0]}")
    try:
        page.get_by_text(f"{ROLES[login]}-run-0").first.wait_for()
        assert page.locator("#mlgate-bar").inner_text().split() == ["mlgate", login, "Sign", "out"]
        assert walk_every_area(page, server.url, f"sso-{login}", team, world["secret"], world["secret_run"]) == []
    finally:
        page.context.close()


@pytest.mark.parametrize("login", ["alice", "bob"])
def test_editing_by_clicks_works_for_edit_and_is_refused_for_read(world, browser, login):
    server, prefix = world["server"], ROLES[login]
    team = world[prefix]
    page = _sso_sign_in(browser, server.url, login, f"#/experiments/{team['exp']}")
    answers: list[tuple[int, str]] = []
    page.on("response", lambda r: answers.append((r.status, r.url)) if r.request.method == "POST" else None)
    try:
        for action, (act, changed) in EDITS.items():
            before = _state(world, prefix)
            answers.clear()
            act(page, server.url, team, prefix)
            page.wait_for_timeout(2500)
            screenshot(page, f"mlflow-ui-sso-{login}-{action}")
            after = _state(world, prefix)
            writes = [status for status, url in answers if "/ajax-api/" in url and "/search" not in url
                      and "ui-telemetry" not in url]
            if login == "alice":
                assert changed(after, prefix), (action, after)
                assert writes, (action, answers)
                assert all(s == 200 for s in writes), (action, answers)
            else:
                assert after == before, (action, after)
                assert 403 in writes, (action, answers)
                # The UI says so (MLflow shows the server's message in the dialog or a notification).
                assert "permission denied" in page.inner_text("body").lower(), action
            page.keyboard.press("Escape")
    finally:
        page.context.close()


def test_the_hidden_experiment_shows_in_no_search_picker_compare_or_chart(world, browser):
    server = world["server"]
    secret, secret_run = world["secret"], world["secret_run"]
    for login, prefix in ROLES.items():
        team = world[prefix]
        page = _sso_sign_in(browser, server.url, login, "#/experiments")
        watch = Watch(server.url)
        watch.attach(page)
        try:
            # The experiment list's search box, for the hidden name and for everything.
            for query in ("other-team", "secret", ""):
                page.goto(f"{server.url}/#/experiments")
                box = page.get_by_test_id("search-experiment-input")
                box.fill(query)
                box.press("Enter")
                page.wait_for_timeout(1500)
                names = page.get_by_test_id("experiment-list-item-link").all_inner_texts()
                assert not any(h in n for n in names for h in HIDDEN), (login, query, names)
                assert (prefix in names) == (query == ""), (login, query, names)
            # The experiment picker: select every listed experiment and compare them.
            page.get_by_test_id("search-experiment-input").fill("")
            page.get_by_test_id("search-experiment-input").press("Enter")
            page.wait_for_timeout(1000)
            boxes = page.get_by_test_id("experiment-list-item-check-box").all()
            if len(boxes) >= 2:  # MLflow's UI compares two or more (bob sees one experiment)
                for box in boxes:
                    box.check()
                page.get_by_test_id("compare-experiment-button").click()
                page.get_by_text(f"{prefix}-run-1").first.wait_for()  # (run 0 may have been renamed by a click)
                screenshot(page, f"mlflow-ui-sso-{login}-picker-compare")
            # Compare views and charts asked (by URL) for the hidden experiment and run beside the user's own.
            for route in (
                f"/#/compare-experiments/s?experiments={json.dumps([team['exp'], secret])}",
                f"/#/compare-experiments/s?experiments={json.dumps([team['exp'], secret])}&compareRunsMode=CHART",
                f"/#/compare-runs?runs={json.dumps([team['runs'][0], secret_run])}"
                f"&experiments={json.dumps([team['exp'], secret])}",
                f"/#/experiments/{team['exp']}/runs?compareRunsMode=CHART",
            ):
                page.goto("about:blank")
                page.goto(f"{server.url}{route}")
                page.wait_for_timeout(3000)
                text = page.inner_text("body")
                assert not any(h in text for h in HIDDEN), (login, route)
            screenshot(page, f"mlflow-ui-sso-{login}-hidden-nowhere")
            # The hidden experiment's own calls answer "does not exist" (404, as MLflow answers a missing one).
            assert [p for p in watch.take() if not p.startswith("404 ")] == []
        finally:
            page.context.close()
