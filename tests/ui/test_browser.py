"""The UI in Chromium against a real server: sign in with the form, browse to a run, and no XSS fires."""

from __future__ import annotations

import httpx
import pytest

from tests.browser import chromium_browser, screenshot
from tests.conftest import start_server

A = "/api/2.0/mlflow"
EVIL_NAME = "<img src=x onerror=alert(1)>"
EVIL_TAG = "</script><script>alert(2)</script>"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # --dev: the session cookie is not Secure, so it travels over this test's plain http.
    workdir = tmp_path_factory.mktemp("ui-browser")
    live = start_server(workdir, f"sqlite:///{workdir / 'mlgate.db'}", "--dev")
    yield live
    live.stop()


def _post(server, path: str, body: dict) -> dict:
    response = httpx.post(f"{server.url}{A}{path}", json=body, auth=server.admin_auth, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_sign_in_browse_and_hostile_names_render_as_text(server):
    exp = _post(server, "/experiments/create", {"name": "vision-baselines"})["experiment_id"]
    parent = _post(server, "/runs/create", {"experiment_id": exp, "run_name": "sweep",
                                            "start_time": 1_764_000_000_000})["run"]["info"]["run_id"]
    run = _post(server, "/runs/create", {"experiment_id": exp, "run_name": EVIL_NAME,
                                         "start_time": 1_764_000_100_000})["run"]["info"]["run_id"]
    _post(server, "/runs/log-batch", {
        "run_id": run,
        "params": [{"key": "lr", "value": "0.01"}, {"key": "model", "value": "resnet50"}],
        "tags": [{"key": "note", "value": EVIL_TAG}, {"key": "mlflow.parentRunId", "value": parent}],
        "metrics": [{"key": k, "value": v, "timestamp": 1_764_000_100_000 + s, "step": s}
                    for s in range(30) for k, v in (("loss", 2.0 / (s + 1)), ("accuracy", 0.5 + s / 70))],
    })
    _post(server, "/runs/update", {"run_id": run, "status": "FINISHED", "end_time": 1_764_000_262_000})
    put = httpx.put(f"{server.url}/api/2.0/mlflow-artifacts/artifacts/{exp}/{run}/artifacts/summary.txt",
                    content=b"all good", auth=server.admin_auth, timeout=30)
    assert put.status_code == 200, put.text

    dialogs: list[str] = []
    with chromium_browser() as browser:
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        # An unauthenticated browser is sent to the sign-in form, and back to the page after it.
        page.goto(f"{server.url}/")
        assert "/login" in page.url
        assert page.evaluate("getComputedStyle(document.body).margin") == "0px"  # the stylesheet loaded
        screenshot(page, "ui-login")
        page.fill("#username", server.admin_username)
        page.fill("#password", server.admin_password)
        page.click("form[action='/login'] button[type=submit]")
        page.wait_for_url(f"{server.url}/")
        assert page.locator("table a", has_text="vision-baselines").count() == 1
        screenshot(page, "ui-experiments")

        page.click("text=vision-baselines")
        page.wait_for_url(f"**/experiments/{exp}")
        link = page.locator(f"a[href='/runs/{run}']")
        assert link.inner_text() == EVIL_NAME  # shown as text, not parsed as an element
        assert page.locator("th", has_text="loss").count() == 1  # metrics are columns
        screenshot(page, "ui-runs")

        link.click()
        page.wait_for_url(f"**/runs/{run}")
        assert page.locator("h1").inner_text() == EVIL_NAME
        assert page.locator("td", has_text=EVIL_TAG).count() == 1
        assert page.locator("img").count() == 0
        assert page.locator("svg polyline").count() == 2  # loss and accuracy histories
        assert page.locator(f"a[href='/runs/{parent}']").count() == 1
        download = page.locator("a", has_text="Download")
        assert download.get_attribute("href") == f"/download-artifact?run_id={run}&path=summary.txt"
        assert page.request.get(f"{server.url}/download-artifact?run_id={run}&path=summary.txt").body() == b"all good"
        assert page.request.get(f"{server.url}/get-artifact?run_id={run}&path=summary.txt").body() == b"all good"
        screenshot(page, "ui-run")

        # The layout's sign-out button carries the session's CSRF token: it ends the session.
        page.click("header form[action='/logout'] button")
        page.wait_for_url("**/login")
        page.goto(f"{server.url}/")
        assert "/login" in page.url
    assert dialogs == []
