"""Walking MLflow's own web UI in Chromium: the data a team's pages show, the areas and what each shows once
loaded, and the watch that fails a page on a request mlgate answered 404/405/5xx, a script error or a CSP
refusal. Shared by the password-user and the SSO-user browser tests (test_mlflow_ui_browser*.py)."""

from __future__ import annotations

import json
import os
import time

import httpx

from tests.browser import screenshot
from tests.tracking.otlp_builders import export_request, make_span, new_otel_trace_id

A = "/api/2.0/mlflow"
AJAX = "/ajax-api/2.0/mlflow"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")
MLMODEL = b"artifact_path: model\nflavors:\n  python_function:\n    loader_module: mlflow.pyfunc.model\n" \
          b"mlflow_version: 3.17.2\nmodel_uuid: 0a1b2c\nsignature:\n  inputs: '[{\"type\": \"double\", " \
          b"\"name\": \"x\"}]'\n  outputs: '[{\"type\": \"double\"}]'\n"
HIDDEN = ("other-team-secret", "secret-model", "classified-run")


def post(server, path: str, body: dict) -> dict:
    """The JSON answer of an administrator's API call (fails unless 200)."""
    response = httpx.post(f"{server.url}{A}{path}", json=body, auth=server.admin_auth, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def put_artifact(server, path: str, body: bytes) -> None:
    """Upload an artifact as the administrator."""
    response = httpx.put(f"{server.url}/api/2.0/mlflow-artifacts/artifacts/{path}", content=body,
                         auth=server.admin_auth, timeout=30)
    assert response.status_code == 200, response.text


def make_team(server, name: str, user: str | None = None, permission: str | None = None) -> dict:
    """An experiment with two runs (params, metric curves, a dataset, artifacts), a model, a trace; with
    ``user``, that account gets ``permission`` on the experiment and the model (otherwise the policy grants)."""
    exp = post(server, "/experiments/create", {"name": name})["experiment_id"]
    if user:
        post(server, "/experiments/permissions/create", {"experiment_id": exp, "username": user,
                                                          "permission": permission})
    runs = []
    for i, lr in enumerate(("0.01", "0.1")):
        run = post(server, "/runs/create", {"experiment_id": exp, "run_name": f"{name}-run-{i}",
                                             "start_time": 1_764_000_000_000 + i})["run"]["info"]["run_id"]
        post(server, "/runs/log-batch", {"run_id": run, "params": [{"key": "lr", "value": lr}], "metrics": [
            {"key": "loss", "value": 1.0 / (s + 1 + i), "timestamp": 1_764_000_000_000 + s, "step": s}
            for s in range(25)]})
        post(server, "/runs/log-inputs", {"run_id": run, "datasets": [{
            "tags": [{"key": "mlflow.data.context", "value": "training"}],
            "dataset": {"name": f"{name}-data", "digest": "3f2a", "source_type": "local", "source": "{}"}}]})
        for path, body in (("summary.txt", b"top-1 accuracy: 0.91\n"), ("plots/loss.png", PNG),
                           ("model/MLmodel", MLMODEL)):
            put_artifact(server, f"{exp}/{run}/artifacts/{path}", body)
        post(server, "/runs/update", {"run_id": run, "status": "FINISHED", "end_time": 1_764_000_090_000})
        runs.append(run)
    model = f"{name}-model"
    post(server, "/registered-models/create", {"name": model})
    post(server, "/model-versions/create", {"name": model, "source": f"runs:/{runs[0]}/model", "run_id": runs[0]})
    if user:
        post(server, "/registered-models/permissions/create", {"name": model, "username": user,
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


def areas(team: dict) -> list[tuple[str, str, str]]:
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


def walk(page, watch: Watch, url: str, role: str, team: dict) -> list[str]:
    failures = []
    for area, route, shows in areas(team):
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


def page_fetch(page, method: str, path: str, body: dict | None = None) -> int:
    """Status of a same-origin request made by the page's own fetch (mlgate's bar adds the CSRF token)."""
    return page.evaluate("""async ([method, path, body]) => {
        const init = {method, headers: {"Content-Type": "application/json"}};
        if (body !== null) { init.body = JSON.stringify(body); }
        return (await fetch(path, init)).status;
    }""", [method, path, body])


def walk_every_area(page, url: str, role: str, team: dict, secret: str, secret_run: str) -> list[str]:
    """Walk every area as the signed-in ``page``, then open the hidden experiment's run by its link; returns
    what went wrong (empty when every page loaded cleanly and nothing hidden showed)."""
    watch = Watch(url)
    watch.attach(page)
    failures = walk(page, watch, url, role, team)
    # The hidden experiment, its run and the hidden model answer like missing ones.
    page.goto(f"{url}/#/experiments/{secret}/runs/{secret_run}")
    page.wait_for_timeout(3000)
    screenshot(page, f"mlflow-ui-{role}-hidden-run")
    text = page.inner_text("body")
    failures += [f"{role}/hidden-run: the hidden {h!r} shows" for h in HIDDEN if h in text]
    watch.take()  # the UI's own calls for the hidden run were answered "does not exist" (404), as MLflow does
    return failures
