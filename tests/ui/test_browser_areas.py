"""Every UI area in Chromium against a real server, as an admin, as a READ user and as a user with no grants.

Each test asserts what is shown and what is not, saves screenshots (test-output/screenshots/ui-*.png), and
fails if any JavaScript dialog opens: run, tag, model, trace and span names are hostile markup.
"""

from __future__ import annotations

import os

import httpx
import pytest

from tests.browser import chromium_browser, screenshot
from tests.conftest import start_server
from tests.tracking.otlp_builders import export_request, make_span, new_otel_trace_id

pytestmark = [pytest.mark.browser]
A = "/api/2.0/mlflow"
EVIL = "<img src=x onerror=alert(1)>"
EVIL_TAG = "</script><script>alert(2)</script>"
READER_PASSWORD = "Unguessable-Pw-5e1b2c"
NOBODY_PASSWORD = "Another-Unguessable-9d3f"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


def _post(server, path: str, body: dict) -> dict:
    response = httpx.post(f"{server.url}{A}{path}", json=body, auth=server.admin_auth, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def _run(server, exp: str, name: str, start: int, **batch) -> str:
    run = _post(server, "/runs/create", {"experiment_id": exp, "run_name": name,
                                         "start_time": start})["run"]["info"]["run_id"]
    if batch:
        _post(server, "/runs/log-batch", {"run_id": run, **batch})
    _post(server, "/runs/update", {"run_id": run, "status": "FINISHED", "end_time": start + 95_000})
    return run


def _curve(key: str, f, n: int = 40) -> list[dict]:
    return [{"key": key, "value": f(s), "timestamp": 1_764_000_000_000 + s, "step": s} for s in range(n)]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A real server (--dev: plain-http cookies) with users, experiments, runs, artifacts, models and traces."""
    workdir = tmp_path_factory.mktemp("ui-areas")
    server = start_server(workdir, f"sqlite:///{workdir / 'mlgate.db'}", "--dev")
    try:
        _post(server, "/users/create", {"username": "reader", "password": READER_PASSWORD})
        _post(server, "/users/create", {"username": "nobody", "password": NOBODY_PASSWORD})
        exp = _post(server, "/experiments/create", {"name": "vision-baselines"})["experiment_id"]
        secret = _post(server, "/experiments/create", {"name": "secret-exp"})["experiment_id"]
        _post(server, "/experiments/permissions/create", {"experiment_id": exp, "username": "reader",
                                                           "permission": "READ"})
        t0 = 1_764_000_000_000
        parent = _run(server, exp, "sweep", t0)
        runs = [_run(server, exp, name, t0 + (i + 1) * 100_000,
                     params=[{"key": "lr", "value": lr}, {"key": "model", "value": "resnet50"}],
                     metrics=[*_curve("loss", lambda s, k=i: 2.0 / (s + 1 + k)),
                              *_curve("accuracy", lambda s, k=i: 0.5 + s / (90 + 20 * k))],
                     tags=[{"key": "note", "value": EVIL_TAG}, {"key": "mlflow.parentRunId", "value": parent}])
                for i, (name, lr) in enumerate([(EVIL, "0.01"), ("resnet-lr-0.03", "0.03"), ("resnet-lr-0.1", "0.1")])]
        _post(server, "/runs/log-inputs", {"run_id": runs[0], "datasets": [{
            "tags": [{"key": "mlflow.data.context", "value": "training"}],
            "dataset": {"name": "imagenet-subset", "digest": "9f2b41c0", "source_type": "s3",
                        "source": '{"uri": "s3://datasets/imagenet-subset"}'}}]})
        for path, body in (("summary.txt", b"top-1 accuracy: 0.91\n"), ("config/params.json", b'{"lr": 0.01}'),
                           ("plots/loss.png", PNG)):
            put = httpx.put(f"{server.url}/api/2.0/mlflow-artifacts/artifacts/{exp}/{runs[0]}/artifacts/{path}",
                            content=body, auth=server.admin_auth, timeout=30)
            assert put.status_code == 200, put.text
        hidden_run = _run(server, secret, "classified-run", t0)
        for name in ("churn-classifier", EVIL, "secret-model"):
            _post(server, "/registered-models/create", {"name": name, "tags": [{"key": "owner", "value": EVIL_TAG}]})
            _post(server, "/model-versions/create", {"name": name, "source": f"runs:/{runs[1]}/model",
                                                     "run_id": runs[1]})
        _post(server, "/registered-models/alias", {"name": "churn-classifier", "alias": "champion", "version": "1"})
        for name in ("churn-classifier", EVIL):
            _post(server, "/registered-models/permissions/create", {"name": name, "username": "reader",
                                                                    "permission": "READ"})
        tid, ids = new_otel_trace_id(), [os.urandom(8) for _ in range(4)]
        start = 1_764_000_000_000_000_000
        spans = [make_span(tid, ids[0], "agent", start_ns=start, end_ns=start + 900_000_000),
                 make_span(tid, ids[1], "retrieve", parent=ids[0], start_ns=start + 50_000_000,
                           end_ns=start + 300_000_000),
                 make_span(tid, ids[2], EVIL, parent=ids[1], start_ns=start + 60_000_000, end_ns=start + 200_000_000),
                 make_span(tid, ids[3], "answer", parent=ids[0], start_ns=start + 320_000_000,
                           end_ns=start + 880_000_000, error=True)]
        sent = httpx.post(f"{server.url}/v1/traces", content=export_request(*spans).SerializeToString(),
                          headers={"content-type": "application/x-protobuf", "x-mlflow-experiment-id": exp},
                          auth=server.admin_auth, timeout=30)
        assert sent.status_code == 200, sent.text
        evil_tid = new_otel_trace_id()  # a trace whose name (its root span's) is hostile markup
        sent = httpx.post(f"{server.url}/v1/traces", content=export_request(make_span(
            evil_tid, os.urandom(8), EVIL, start_ns=start + 10**9, end_ns=start + 2 * 10**9)).SerializeToString(),
            headers={"content-type": "application/x-protobuf", "x-mlflow-experiment-id": exp},
            auth=server.admin_auth, timeout=30)
        assert sent.status_code == 200, sent.text
        yield {"server": server, "exp": exp, "secret": secret, "runs": runs, "parent": parent,
               "hidden_run": hidden_run, "trace": "tr-" + tid.hex()}
    finally:
        server.stop()


def _browser_page(browser, dialogs: list[str], width: int = 1280, height: int = 900):
    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    return page


def _sign_in(page, url: str, username: str, password: str) -> None:
    page.goto(f"{url}/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(f"{url}/")


def _fits(page) -> bool:
    """No horizontal scrolling of the whole page (wide tables scroll inside their own box)."""
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_admin_uses_every_area(world):
    server, exp, runs = world["server"], world["exp"], world["runs"]
    url = server.url
    dialogs: list[str] = []
    with chromium_browser() as browser:
        page = _browser_page(browser, dialogs)
        _sign_in(page, url, server.admin_username, server.admin_password)
        assert page.locator("header nav a", has_text="Admin").count() == 1
        assert page.locator("table a", has_text="secret-exp").count() == 1

        # Runs table -> select two runs -> Compare (a GET form; the script only updates the label).
        page.goto(f"{url}/experiments/{exp}")
        page.check(f"input[name=runs][value='{runs[0]}']")
        page.check(f"input[name=runs][value='{runs[1]}']")
        assert page.locator("#compare-button").inner_text() == "Compare 2 runs"
        screenshot(page, "ui-admin-runs-selected")
        page.click("#compare-button")
        page.wait_for_url("**/compare?runs=*")
        assert page.locator("h1").inner_text() == "Compare 2 runs"
        assert page.locator("table.compare th a", has_text=EVIL).count() == 1  # escaped, shown as text
        assert page.locator("tr.differs th", has_text="lr").count() == 1
        assert page.locator("tr.differs th", has_text="model").count() == 0
        assert page.locator("figure.chart").count() == 2
        assert page.locator("figure.chart").first.locator("polyline").count() == 2  # one curve per run
        screenshot(page, "ui-admin-compare")

        # Run page: datasets, parent link, artifacts with previews.
        page.goto(f"{url}/runs/{runs[0]}")
        assert page.locator("h1").inner_text() == EVIL
        assert page.locator("td", has_text=EVIL_TAG).count() == 1
        assert page.locator("#datasets + .table-wrap td:text-is('imagenet-subset')").count() == 1
        assert page.locator("span.pill", has_text="training").count() == 1
        assert page.locator(f"a[href='/runs/{world['parent']}']").count() == 1
        screenshot(page, "ui-admin-run")
        page.click("a[href*='preview?path=summary.txt']")
        assert "top-1 accuracy: 0.91" in page.locator("pre.preview").inner_text()
        page.goto(f"{url}/runs/{runs[0]}?path=plots#artifacts")
        page.click("a[href*='preview?path=plots%2Floss.png'], a[href*='preview?path=plots/loss.png']")
        image = page.locator("figure.preview-image img")
        image.wait_for()
        assert page.evaluate("document.querySelector('figure.preview-image img').naturalWidth") == 1
        screenshot(page, "ui-admin-preview-image")

        # Models, a model page, prompts.
        page.goto(f"{url}/models")
        assert page.locator("table a", has_text="secret-model").count() == 1
        assert page.locator("table a", has_text=EVIL).count() == 1
        screenshot(page, "ui-admin-models")
        page.click("table a:text-is('churn-classifier')")
        page.wait_for_url("**/model?name=churn-classifier")
        assert page.locator(".pill", has_text="@champion").count() >= 1
        assert page.locator(f"a[href='/runs/{runs[1]}']").count() == 1
        screenshot(page, "ui-admin-model")

        # Traces of the experiment and the span tree.
        page.goto(f"{url}/experiments/{exp}")
        page.click("nav.tabs a:text-is('Traces')")
        page.wait_for_url(f"**/experiments/{exp}/traces")
        page.click(f"a[href='/traces/{world['trace']}']")
        names = page.locator("td.span-name").all_inner_texts()
        assert [n.lstrip("└") for n in names] == ["agent", "retrieve", EVIL, "answer"]
        classes = [page.locator("td.span-name").nth(i).get_attribute("class") for i in range(4)]
        assert classes == ["span-name depth-0", "span-name depth-1", "span-name depth-2", "span-name depth-1"]
        assert page.locator("td", has_text="900.0 ms").count() == 1
        assert page.locator(".status-ERROR").count() >= 1
        screenshot(page, "ui-admin-trace")

        # Account and the admin pages.
        page.goto(f"{url}/account")
        assert page.locator(".pill", has_text="administrator").count() == 1
        screenshot(page, "ui-admin-account")
        page.goto(f"{url}/admin")
        page.fill("form[action='/admin/users/create'] input[name=username]", "carol")
        page.fill("form[action='/admin/users/create'] input[name=password]", "Unguessable-Pw-c31x")
        page.click("form[action='/admin/users/create'] button")
        page.wait_for_url("**/admin?done=user")
        assert page.locator("td:text-is('carol')").count() == 1
        screenshot(page, "ui-admin-users")
        page.goto(f"{url}/admin/groups")
        page.fill("form[action='/admin/groups/create'] input[name=name]", "team-vision")
        page.click("form[action='/admin/groups/create'] button")
        page.wait_for_url("**/admin/groups?done=group")
        page.fill("input[list=usernames]", "carol")
        page.click("form[action='/admin/groups/member'] button:text-is('Add')")
        page.wait_for_url("**/admin/groups?done=member")
        assert page.locator("form.chip span", has_text="carol").count() == 1
        screenshot(page, "ui-admin-groups")
        page.goto(f"{url}/admin/grants?experiment_id={exp}")
        page.fill("form.form-row input[name=subject]", "group:team-vision")
        page.select_option("form.form-row select[name=permission]", "EDIT")
        page.click("form.form-row button")
        page.wait_for_url(f"**/admin/grants?experiment_id={exp}&done=grant")
        rows = page.locator("h2:has-text('Who can see') + .table-wrap tbody tr").all_inner_texts()
        assert any(r.startswith("carol") and "EDIT" in r for r in rows)
        assert any(r.startswith("reader") and "READ" in r for r in rows)
        assert not any(r.startswith("nobody") for r in rows)
        screenshot(page, "ui-admin-grants")
        page.goto(f"{url}/admin/audit?action=grant")
        assert page.locator("td", has_text="group:team-vision experiment:").count() >= 1
        screenshot(page, "ui-admin-audit")
        page.goto(f"{url}/admin/policy")
        assert "team-vision" in page.locator("pre.preview").last.inner_text()
        screenshot(page, "ui-admin-policy")
    assert dialogs == []


def test_read_user_sees_only_what_is_granted(world):
    server, exp = world["server"], world["exp"]
    url = server.url
    dialogs: list[str] = []
    with chromium_browser() as browser:
        page = _browser_page(browser, dialogs)
        _sign_in(page, url, "reader", READER_PASSWORD)
        assert page.locator("table a", has_text="vision-baselines").count() == 1
        assert page.locator("text=secret-exp").count() == 0
        assert page.locator("header nav a", has_text="Admin").count() == 0
        screenshot(page, "ui-reader-experiments")
        page.goto(f"{url}/models")
        assert page.locator("table a", has_text="churn-classifier").count() == 1
        assert page.locator("table a", has_text=EVIL).count() == 1
        assert page.locator("text=secret-model").count() == 0
        screenshot(page, "ui-reader-models")
        page.goto(f"{url}/experiments/{exp}/traces")
        assert page.locator(f"a[href='/traces/{world['trace']}']").count() == 1
        assert page.locator(f"td:text-is('{EVIL}')").count() == 1  # the hostile trace name, as text
        screenshot(page, "ui-reader-traces")
        page.goto(f"{url}/account")
        access = page.locator("h2#access + .table-wrap").inner_text()
        assert "vision-baselines" in access
        assert "READ" in access
        assert "secret-exp" not in access
        screenshot(page, "ui-reader-account")
        # Hidden things answer like missing ones; admin pages refuse as the admin API does.
        for path in (f"/runs/{world['hidden_run']}", f"/experiments/{world['secret']}", "/model?name=secret-model"):
            response = page.goto(f"{url}{path}")
            assert response.status == 404, path
            assert page.locator("h1").inner_text() == "Not found"
        assert page.goto(f"{url}/admin").status == 403
        screenshot(page, "ui-reader-admin-refused")
    assert dialogs == []


def test_user_without_grants_sees_nothing(world):
    server = world["server"]
    url = server.url
    dialogs: list[str] = []
    with chromium_browser() as browser:
        page = _browser_page(browser, dialogs)
        _sign_in(page, url, "nobody", NOBODY_PASSWORD)
        assert page.locator("td.muted", has_text="No experiments to show.").count() == 1
        screenshot(page, "ui-nobody-experiments")
        page.goto(f"{url}/models")
        assert page.locator("td.muted", has_text="No registered models to show.").count() == 1
        page.goto(f"{url}/account")
        assert page.locator("text=You cannot see any experiment or registered model yet.").count() == 1
        screenshot(page, "ui-nobody-account")
        assert page.goto(f"{url}/experiments/{world['exp']}").status == 404
        assert page.goto(f"{url}/traces/{world['trace']}").status == 404
        assert page.goto(f"{url}/compare?runs={world['runs'][0]}&runs={world['runs'][1]}").status == 404
    assert dialogs == []


def test_progress_bar_keyboard_focus_and_laptop_widths(world):
    server, exp = world["server"], world["exp"]
    url = server.url
    dialogs: list[str] = []
    with chromium_browser() as browser:
        page = _browser_page(browser, dialogs)
        _sign_in(page, url, server.admin_username, server.admin_password)
        # Following a link starts the progress bar at once (read in the same task as the click, before the
        # next page replaces this one); the next page starts with it hidden.
        state = page.evaluate("""() => {
            const bar = document.getElementById('progress');
            const before = [bar.hidden, bar.className];
            document.querySelector("header nav a[href='/models']").click();
            return [before, [bar.hidden, bar.className]];
        }""")
        assert state == [[True, "progress"], [False, "progress running"]]
        page.wait_for_url(f"{url}/models")
        assert page.locator("#progress").is_hidden()
        # Keyboard: the first Tab lands on the skip link, which becomes visible with a focus ring.
        page.keyboard.press("Tab")
        focused = page.evaluate("[document.activeElement.className, getComputedStyle(document.activeElement)"
                                ".outlineStyle, document.activeElement.getBoundingClientRect().left]")
        assert focused[0] == "skip"
        assert focused[1] == "solid"
        assert focused[2] >= 0
        page.keyboard.press("Tab")
        assert page.evaluate("getComputedStyle(document.activeElement).outlineWidth") == "3px"
        for width, height in ((1280, 800), (1366, 768), (1024, 768)):
            page.set_viewport_size({"width": width, "height": height})
            for path in (f"/experiments/{exp}", f"/runs/{world['runs'][0]}", "/admin",
                         f"/compare?runs={world['runs'][0]}&runs={world['runs'][1]}"):
                page.goto(f"{url}{path}")
                assert _fits(page), (width, path)
            screenshot(page, f"ui-compare-{width}")
    assert dialogs == []
