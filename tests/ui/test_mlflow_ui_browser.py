"""MLflow's own web UI in Chromium against a real server (--web-ui mlflow), as a user with EDIT on one experiment
and as a READ user on another, with a third team's experiment and model hidden from both.

Every area is opened by its ``#/...`` route; on each, no request to the server may be answered 404, 405 or
5xx, no script may fail, the CSP may refuse nothing, and nothing of the hidden experiment may show.
Screenshots: test-output/screenshots/mlflow-ui-<role>-<area>.png. Editing goes through the page's own
fetch (so through mlgate's bar, which adds the session's CSRF token), as the UI's buttons do.
"""

from __future__ import annotations

import json
import os
import time

import httpx
import pytest

from gateway.ui.mlflow_ui import find_build
from tests.browser import chromium_browser, screenshot
from tests.conftest import start_server
from tests.tracking.otlp_builders import export_request, make_span, new_otel_trace_id

pytestmark = [pytest.mark.browser, pytest.mark.skipif(find_build()[0] is None, reason="needs mlgate[mlflow-ui]")]
A = "/api/2.0/mlflow"
AJAX = "/ajax-api/2.0/mlflow"
EDITOR_PASSWORD = "Unguessable-Pw-e4f1a"
READER_PASSWORD = "Unguessable-Pw-r8c2d"
# Only the editor may create experiments and models (the default lets every signed-in user create).
POLICY = (b'access:\n  create:\n    experiments: [{principal: "user:editor", name: "*"}]\n'
          b'    models: [{principal: "user:editor", name: "*"}]\n')
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")
MLMODEL = b"artifact_path: model\nflavors:\n  python_function:\n    loader_module: mlflow.pyfunc.model\n" \
          b"mlflow_version: 3.17.2\nmodel_uuid: 0a1b2c\nsignature:\n  inputs: '[{\"type\": \"double\", " \
          b"\"name\": \"x\"}]'\n  outputs: '[{\"type\": \"double\"}]'\n"
HIDDEN = ("other-team-secret", "secret-model", "classified-run")


def _post(server, path: str, body: dict) -> dict:
    response = httpx.post(f"{server.url}{A}{path}", json=body, auth=server.admin_auth, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def _put(server, path: str, body: bytes) -> None:
    response = httpx.put(f"{server.url}/api/2.0/mlflow-artifacts/artifacts/{path}", content=body,
                         auth=server.admin_auth, timeout=30)
    assert response.status_code == 200, response.text


def _team(server, name: str, user: str, permission: str) -> dict:
    """An experiment with two runs (params, metric curves, a dataset, artifacts), a model, a trace."""
    exp = _post(server, "/experiments/create", {"name": name})["experiment_id"]
    _post(server, "/experiments/permissions/create", {"experiment_id": exp, "username": user,
                                                       "permission": permission})
    runs = []
    for i, lr in enumerate(("0.01", "0.1")):
        run = _post(server, "/runs/create", {"experiment_id": exp, "run_name": f"{name}-run-{i}",
                                             "start_time": 1_764_000_000_000 + i})["run"]["info"]["run_id"]
        _post(server, "/runs/log-batch", {"run_id": run, "params": [{"key": "lr", "value": lr}], "metrics": [
            {"key": "loss", "value": 1.0 / (s + 1 + i), "timestamp": 1_764_000_000_000 + s, "step": s}
            for s in range(25)]})
        _post(server, "/runs/log-inputs", {"run_id": run, "datasets": [{
            "tags": [{"key": "mlflow.data.context", "value": "training"}],
            "dataset": {"name": f"{name}-data", "digest": "3f2a", "source_type": "local", "source": "{}"}}]})
        for path, body in (("summary.txt", b"top-1 accuracy: 0.91\n"), ("plots/loss.png", PNG),
                           ("model/MLmodel", MLMODEL)):
            _put(server, f"{exp}/{run}/artifacts/{path}", body)
        _post(server, "/runs/update", {"run_id": run, "status": "FINISHED", "end_time": 1_764_000_090_000})
        runs.append(run)
    model = f"{name}-model"
    _post(server, "/registered-models/create", {"name": model})
    _post(server, "/model-versions/create", {"name": model, "source": f"runs:/{runs[0]}/model", "run_id": runs[0]})
    _post(server, "/registered-models/permissions/create", {"name": model, "username": user,
                                                            "permission": permission})
    logged = httpx.post(f"{server.url}/api/2.0/mlflow/logged-models", auth=server.admin_auth, timeout=30, json={
        "experiment_id": exp, "name": f"{name}-agent", "source_run_id": runs[0]})
    assert logged.status_code == 200, logged.text
    tid, root, child = new_otel_trace_id(), os.urandom(8), os.urandom(8)
    start = time.time_ns() - 60 * 10**9  # recent: the traces list opens on the last days
    spans = [make_span(tid, root, "agent", start_ns=start, end_ns=start + 900_000_000, attributes={
                 "mlflow.spanType": '"AGENT"', "mlflow.spanInputs": '{"question": "what is mlgate?"}',
                 "mlflow.spanOutputs": '{"answer": "a gateway"}'}),
             make_span(tid, child, "retrieve", parent=root, start_ns=start + 10**8, end_ns=start + 3 * 10**8,
                       attributes={"mlflow.spanType": '"RETRIEVER"'})]
    sent = httpx.post(f"{server.url}/v1/traces", content=export_request(*spans).SerializeToString(),
                      headers={"content-type": "application/x-protobuf", "x-mlflow-experiment-id": exp},
                      auth=server.admin_auth, timeout=30)
    assert sent.status_code == 200, sent.text
    return {"exp": exp, "runs": runs, "model": model, "trace": "tr-" + tid.hex(),
            "logged_model": logged.json()["model"]["info"]["model_id"]}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("mlflow-ui")
    policy = workdir / "access.yaml"
    policy.write_bytes(POLICY)
    server = start_server(workdir, f"sqlite:///{workdir / 'mlgate.db'}", "--dev", "--policy", str(policy),
                          env={"MLGATE_WEB_UI": "mlflow"})
    try:
        _post(server, "/users/create", {"username": "editor", "password": EDITOR_PASSWORD})
        _post(server, "/users/create", {"username": "reader", "password": READER_PASSWORD})
        editor, reader = _team(server, "team-a", "editor", "EDIT"), _team(server, "team-b", "reader", "READ")
        secret = _post(server, "/experiments/create", {"name": "other-team-secret"})["experiment_id"]
        secret_run = _post(server, "/runs/create", {"experiment_id": secret, "run_name": "classified-run"})
        _post(server, "/registered-models/create", {"name": "secret-model"})
        _post(server, "/model-versions/create", {"name": "secret-model", "run_id": editor["runs"][0],
                                                 "source": f"runs:/{editor['runs'][0]}/model"})
        yield {"server": server, "editor": editor, "reader": reader, "secret": secret,
               "secret_run": secret_run["run"]["info"]["run_id"]}
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser():
    with chromium_browser() as launched:
        yield launched


class Watch:
    """What no page may show: a request the server answered 404/405/5xx, a script error, a CSP refusal."""

    def __init__(self, origin: str):
        self.origin = origin
        self.problems: list[str] = []

    def attach(self, page) -> None:
        page.on("response", self._response)
        page.on("pageerror", lambda error: self.problems.append(f"script error: {error}"))
        page.on("console", lambda m: self.problems.append(m.text) if "Content Security Policy" in m.text else None)

    def _response(self, response) -> None:
        if response.url.startswith(self.origin) and (response.status in (404, 405) or response.status >= 500):
            self.problems.append(f"{response.status} {response.request.method} {response.url}")

    def take(self) -> list[str]:
        found, self.problems = self.problems, []
        return found


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


def _areas(team: dict) -> list[tuple[str, str, str]]:
    """(area, route, text that shows once the page has loaded)."""
    exp, run, other = team["exp"], team["runs"][0], team["runs"][1]
    name = team["model"].removesuffix("-model")
    compare = f"/#/compare-runs?runs={json.dumps([run, other])}&experiments={json.dumps([exp])}"
    return [
        ("home", "/", "Welcome"),
        ("experiments", "/#/experiments", name),
        ("runs", f"/#/experiments/{exp}/runs", f"{name}-run-1"),
        ("runs-chart", f"/#/experiments/{exp}/runs?compareRunsMode=CHART", "loss"),
        ("run", f"/#/experiments/{exp}/runs/{run}", f"{name}-run-0"),
        ("run-metrics", f"/#/experiments/{exp}/runs/{run}/model-metrics", "loss"),
        ("run-artifacts", f"/#/experiments/{exp}/runs/{run}/artifacts/summary.txt", "top-1 accuracy"),
        ("run-image", f"/#/experiments/{exp}/runs/{run}/artifacts/plots/loss.png", "loss.png"),
        ("compare", compare, f"{name}-run-1"),
        ("models", "/#/models", team["model"]),
        ("model", f"/#/models/{team['model']}", "Version 1"),
        ("model-version", f"/#/models/{team['model']}/versions/1", "Version 1"),
        ("logged-models", f"/#/experiments/{exp}/models", f"{name}-agent"),
        ("logged-model", f"/#/experiments/{exp}/models/{team['logged_model']}", f"{name}-agent"),
        ("traces", f"/#/experiments/{exp}/traces", "what is mlgate?"),
        ("trace", f"/#/experiments/{exp}/traces?selectedEvaluationId={team['trace']}", "a gateway"),
        ("prompts", "/#/prompts", "Prompts"),
        ("evaluation", f"/#/experiments/{exp}/evaluation-runs", "Evaluation"),
        ("datasets", f"/#/experiments/{exp}/datasets", "Datasets"),
    ]


def _walk(page, watch: Watch, url: str, role: str, team: dict) -> list[str]:
    failures = []
    for area, route, shows in _areas(team):
        page.goto("about:blank")
        page.goto(f"{url}{route}")
        try:
            page.get_by_text(shows).first.wait_for(timeout=20_000)
        except Exception:
            failures.append(f"{role}/{area}: {shows!r} never showed")
        page.wait_for_timeout(800)  # let the page's later requests (charts, previews) arrive
        screenshot(page, f"mlflow-ui-{role}-{area}")
        text = page.inner_text("body")
        failures += [f"{role}/{area}: the hidden {h!r} shows" for h in HIDDEN if h in text]
        failures += [f"{role}/{area}: {p}" for p in watch.take()]
    return failures


def _fetch(page, method: str, path: str, body: dict | None = None) -> int:
    """Status of a same-origin request made by the page's own fetch (mlgate's bar adds the CSRF token)."""
    return page.evaluate("""async ([method, path, body]) => {
        const init = {method, headers: {"Content-Type": "application/json"}};
        if (body !== null) { init.body = JSON.stringify(body); }
        return (await fetch(path, init)).status;
    }""", [method, path, body])


@pytest.mark.parametrize("role", ["editor", "reader"])
def test_every_area_renders_for_a_user_who_sees_one_experiment(world, browser, role):
    server, team = world["server"], world[role]
    started = time.monotonic()
    password = EDITOR_PASSWORD if role == "editor" else READER_PASSWORD
    page = _sign_in(browser, server.url, role, password, f"#/experiments/{team['exp']}/runs/{team['runs'][0]}")
    watch = Watch(server.url)
    watch.attach(page)
    try:
        page.get_by_text(f"{team['model'].removesuffix('-model')}-run-0").first.wait_for()
        assert page.locator("#mlgate-bar").inner_text().split() == (
            ["mlgate", role, "Sign", "out"]), "mlgate's bar, without Admin for a non-admin"
        failures = _walk(page, watch, server.url, role, team)
        # The hidden experiment, its run and the hidden model answer like missing ones.
        secret, secret_run = world["secret"], world["secret_run"]
        page.goto(f"{server.url}/#/experiments/{secret}/runs/{secret_run}")
        page.wait_for_timeout(3000)
        screenshot(page, f"mlflow-ui-{role}-hidden-run")
        assert not any(h in page.inner_text("body") for h in HIDDEN)
        watch.take()  # the UI's own calls for the hidden run were answered "does not exist" (404), as MLflow does
        assert failures == []
    finally:
        page.context.close()
    print(f"{role}: {time.monotonic() - started:.1f}s")


def test_editing_works_for_edit_and_is_refused_for_read(world, browser):
    server, a, b = world["server"], world["editor"], world["reader"]
    editor = _sign_in(browser, server.url, "editor", EDITOR_PASSWORD, f"#/experiments/{a['exp']}")
    try:
        assert _fetch(editor, "POST", f"{AJAX}/experiments/create", {"name": "team-a-new"}) == 200
        assert _fetch(editor, "POST", f"{AJAX}/runs/update",
                      {"run_id": a["runs"][0], "run_name": "renamed-by-editor"}) == 200
        assert _fetch(editor, "POST", f"{AJAX}/registered-models/create", {"name": "team-a-new-model"}) == 200
        assert _fetch(editor, "POST", f"{AJAX}/model-versions/create", {
            "name": "team-a-new-model", "source": f"runs:/{a['runs'][0]}/model", "run_id": a["runs"][0]}) == 200
        assert _fetch(editor, "POST", f"{AJAX}/registered-models/alias",
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
        assert _fetch(reader, "POST", f"{AJAX}/experiments/create", {"name": "team-b-new"}) == 403
        assert _fetch(reader, "POST", f"{AJAX}/runs/update",
                      {"run_id": b["runs"][0], "run_name": "renamed-by-reader"}) == 403
        assert _fetch(reader, "POST", f"{AJAX}/registered-models/create", {"name": "team-b-new-model"}) == 403
        assert _fetch(reader, "POST", f"{AJAX}/model-versions/create", {
            "name": b["model"], "source": f"runs:/{b['runs'][0]}/model", "run_id": b["runs"][0]}) == 403
        assert _fetch(reader, "POST", f"{AJAX}/registered-models/alias",
                      {"name": b["model"], "alias": "champion", "version": "1"}) == 403
        # Another team's run: hidden, so "does not exist".
        assert _fetch(reader, "POST", f"{AJAX}/runs/update",
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
    run = _post(server, "/runs/create", {"experiment_id": a["exp"], "run_name": "resnet-lr-0.03-wide",
                                         "start_time": 1_764_000_000_000})["run"]["info"]["run_id"]
    _post(server, "/runs/log-batch", {"run_id": run, "params": [
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
