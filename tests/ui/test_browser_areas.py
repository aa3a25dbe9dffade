"""Every UI area in Chromium against a real server, as an admin, as a READ user and as a user with no grants.

One server and one browser serve the module (a fresh browser context, so a fresh session, per test). Each
test asserts what is shown and what is not, saves a screenshot of every area it visits
(test-output/screenshots/ui-<role>-<area>.png), and fails if any JavaScript dialog opens (run, tag, model,
prompt, trace and span names are hostile markup), if a script raises, or if the CSP refuses anything.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

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
LOCKED_PASSWORD = "Locked-Out-Soon-7c2a"
CAROL_PASSWORD = "Unguessable-Pw-c31x"
BULK_RUNS = 55
POLICY = b'access:\n  grants:\n    - {principal: "group:ml-team", resource: "experiment-name:ml/*", permission: READ}\n'
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
    policy = workdir / "access.yaml"  # a grant to a group nobody is in: shown on the policy page, changes nothing
    policy.write_bytes(POLICY)
    server = start_server(workdir, f"sqlite:///{workdir / 'mlgate.db'}", "--dev", "--policy", str(policy))
    try:
        _post(server, "/users/create", {"username": "reader", "password": READER_PASSWORD})
        _post(server, "/users/create", {"username": "nobody", "password": NOBODY_PASSWORD})
        _post(server, "/users/create", {"username": "locked-user", "password": LOCKED_PASSWORD})
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
        for name in ("summarize-prompt", "secret-prompt"):
            _post(server, "/registered-models/create", {"name": name, "tags": [
                {"key": "mlflow.prompt.is_prompt", "value": "true"}]})
            _post(server, "/model-versions/create", {"name": name, "source": "dummy-source", "tags": [
                {"key": "mlflow.prompt.text", "value": f"Summarize {{{{text}}}} {EVIL_TAG}"},
                {"key": "mlflow.prompt.is_prompt", "value": "true"}]})
        for name in ("churn-classifier", EVIL, "summarize-prompt"):
            _post(server, "/registered-models/permissions/create", {"name": name, "username": "reader",
                                                                    "permission": "READ"})
        bulk = _post(server, "/experiments/create", {"name": "bulk-runs"})["experiment_id"]
        for i in range(BULK_RUNS):
            _post(server, "/runs/create", {"experiment_id": bulk, "run_name": f"bulk-{i:02d}", "start_time": t0 + i})
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
        yield {"server": server, "policy": policy, "exp": exp, "secret": secret, "runs": runs, "parent": parent,
               "bulk": bulk, "hidden_run": hidden_run, "trace": "tr-" + tid.hex()}
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser():
    """One Chromium for the module; each test opens its own context (its own cookies, so its own session)."""
    with chromium_browser() as launched:
        yield launched


class Watch:
    """What must not happen on any page: a JavaScript dialog, a script error, a CSP refusal."""

    def __init__(self):
        self.dialogs: list[str] = []
        self.problems: list[str] = []

    def attach(self, page) -> None:
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        page.on("pageerror", lambda error: self.problems.append(f"script error: {error}"))
        page.on("console", lambda m: self.problems.append(m.text) if "Content Security Policy" in m.text else None)

    def check(self) -> None:
        assert self.dialogs == []
        assert self.problems == []


def _browser_page(browser, watch: Watch, width: int = 1280, height: int = 900):
    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    page.set_default_timeout(15_000)
    watch.attach(page)
    return page


def _sign_in(page, url: str, username: str, password: str) -> None:
    page.goto(f"{url}/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(f"{url}/")


@contextmanager
def _session(browser, url: str, username: str, password: str) -> Iterator:
    """A signed-in page in a fresh context; on leaving, nothing unwanted happened on any page it showed."""
    watch = Watch()
    page = _browser_page(browser, watch)
    try:
        _sign_in(page, url, username, password)
        yield page
    finally:
        page.context.close()
    watch.check()


def _shot(page, name: str) -> None:
    screenshot(page, f"ui-{name}")


def _fits(page) -> bool:
    """No horizontal scrolling of the whole page (wide tables scroll inside their own box)."""
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def _run_names(page) -> list[str]:
    return page.locator("tbody td.wrap a[href^='/runs/']").all_inner_texts()


def _headers(page) -> list[str]:
    return [h.rstrip(" ↑↓") for h in page.locator("thead tr:last-child th a").all_inner_texts()]


def _expect_status(page, url: str, status: int, title: str, shot: str | None = None) -> None:
    response = page.goto(url)
    assert response.status == status, url
    assert page.locator("h1").inner_text() == title, url
    if shot:
        _shot(page, shot)


def _user_form(page, username: str, action: str) -> str:
    return (f"form[action='/admin/users/update']:has(input[name=username][value='{username}'])"
            f":has(input[name=action][value='{action}'])")


def test_admin_browses_every_area(world, browser):
    server, exp, runs = world["server"], world["exp"], world["runs"]
    url = server.url
    with _session(browser, url, server.admin_username, server.admin_password) as page:
        assert page.locator("header nav a", has_text="Admin").count() == 1
        assert page.locator("table a", has_text="secret-exp").count() == 1
        # Experiments: sorted by name both ways.
        page.select_option("#order_by", "name ASC")
        page.click("form.search button[type=submit]")
        page.wait_for_url("**order_by=name+ASC**")
        ascending = page.locator("tbody td.wrap a").all_inner_texts()
        assert {"vision-baselines", "secret-exp", "bulk-runs"} <= set(ascending)
        page.select_option("#order_by", "name DESC")
        page.click("form.search button[type=submit]")
        page.wait_for_url("**order_by=name+DESC**")
        assert page.locator("tbody td.wrap a").all_inner_texts() == ascending[::-1]
        assert page.locator("#order_by").input_value() == "name DESC"
        _shot(page, "admin-experiments-sorted")

        # The links the mlflow client prints point into MLflow's UI ("/#/experiments/<id>[/runs/<id>]"):
        # they open the same experiment and run here.
        page.goto(f"{url}/#/experiments/{exp}")
        page.wait_for_url(f"{url}/experiments/{exp}")
        page.goto(f"{url}/#/experiments/{exp}/runs/{runs[0]}")
        page.wait_for_url(f"{url}/runs/{runs[0]}")
        page.goto(f"{url}/#/models/churn-classifier/versions/1")
        page.wait_for_url(f"{url}/model?name=churn-classifier")
        assert page.locator("h1", has_text="churn-classifier").count() == 1
        page.goto(f"{url}/#/experiments/{exp}/runs/not-a-run-id")  # any other shape stays where it is
        page.wait_for_load_state()
        assert page.url == f"{url}/#/experiments/{exp}/runs/not-a-run-id"

        # Runs table: the filter box (MLflow grammar), a bad filter, chosen columns, pages.
        page.goto(f"{url}/experiments/{exp}")
        assert sorted(_run_names(page)) == sorted([EVIL, "resnet-lr-0.03", "resnet-lr-0.1", "sweep"])
        assert page.locator("td.wrap a", has_text=EVIL).count() == 1
        assert _headers(page) == ["Name", "Status", "Started", "Duration", "User", "lr", "model", "accuracy", "loss"]
        page.fill("#filter", "params.lr = '0.03'")
        page.press("#filter", "Enter")
        page.wait_for_url("**filter=**")
        assert _run_names(page) == ["resnet-lr-0.03"]
        _shot(page, "admin-runs-filtered")
        page.fill("#filter", "params.lr ==")
        page.press("#filter", "Enter")
        page.wait_for_load_state()
        assert page.locator("p.error[role=alert]").count() == 1
        assert _run_names(page) == []
        page.goto(f"{url}/experiments/{exp}")
        page.click("details.columns-chooser summary")
        page.uncheck("form.columns-form input[name=param][value='model']")
        page.uncheck("form.columns-form input[name=metric][value='accuracy']")
        _shot(page, "admin-runs-columns-chooser")
        page.click("form.columns-form button[type=submit]")
        page.wait_for_url("**cols=1**")
        assert _headers(page) == ["Name", "Status", "Started", "Duration", "User", "lr", "loss"]
        page.click("thead a:text-is('loss')")  # sorting keeps the chosen columns
        page.wait_for_url("**order_by=metrics.%60loss%60+DESC**")
        assert _headers(page) == ["Name", "Status", "Started", "Duration", "User", "lr", "loss"]
        assert _run_names(page)[:3] == [EVIL, "resnet-lr-0.03", "resnet-lr-0.1"]  # final loss 2/40, 2/41, 2/42
        _shot(page, "admin-runs-columns-sorted")
        page.goto(f"{url}/experiments/{world['bulk']}")
        assert page.locator("input[name=runs]").count() == 50
        assert page.locator(".pager a", has_text="First page").count() == 0
        page.click(".pager a[rel=next]")
        page.wait_for_url("**page_token=**")
        assert page.locator("input[name=runs]").count() == BULK_RUNS - 50
        assert page.locator(".pager a", has_text="First page").count() == 1
        assert page.locator(".pager a[rel=next]").count() == 0
        _shot(page, "admin-runs-page-2")

        # Runs table -> select two runs -> Compare (a GET form; the script only updates the label).
        page.goto(f"{url}/experiments/{exp}")
        page.check(f"input[name=runs][value='{runs[0]}']")
        page.check(f"input[name=runs][value='{runs[1]}']")
        assert page.locator("#compare-button").inner_text() == "Compare 2 runs"
        _shot(page, "admin-runs-selected")
        page.click("#compare-button")
        page.wait_for_url("**/compare?runs=*")
        assert page.locator("h1").inner_text() == "Compare 2 runs"
        assert page.locator("table.compare th a", has_text=EVIL).count() == 1  # escaped, shown as text
        assert page.locator("tr.differs th", has_text="lr").count() == 1
        assert page.locator("tr.differs th", has_text="model").count() == 0
        assert page.locator("figure.chart").count() == 2
        assert page.locator("figure.chart").first.locator("polyline").count() == 2  # one curve per run
        _shot(page, "admin-compare")

        # Run page: datasets, parent link, artifacts with previews (text, JSON, image).
        page.goto(f"{url}/runs/{runs[0]}")
        assert page.locator("h1").inner_text() == EVIL
        assert page.locator("td", has_text=EVIL_TAG).count() == 1
        assert page.locator("#datasets + .table-wrap td:text-is('imagenet-subset')").count() == 1
        assert page.locator("span.pill", has_text="training").count() == 1
        assert page.locator(f"a[href='/runs/{world['parent']}']").count() == 1
        assert page.locator("figure.chart svg polyline").count() == 2
        _shot(page, "admin-run")
        page.click("a[href*='preview?path=summary.txt']")
        assert "top-1 accuracy: 0.91" in page.locator("pre.preview").inner_text()
        _shot(page, "admin-preview-text")
        page.goto(f"{url}/runs/{runs[0]}?path=config#artifacts")
        page.click("a[href*='preview?path=config%2Fparams.json'], a[href*='preview?path=config/params.json']")
        assert page.locator("pre.preview").inner_text() == '{\n  "lr": 0.01\n}'
        page.goto(f"{url}/runs/{runs[0]}?path=plots#artifacts")
        page.click("a[href*='preview?path=plots%2Floss.png'], a[href*='preview?path=plots/loss.png']")
        image = page.locator("figure.preview-image img")
        image.wait_for()
        assert page.evaluate("document.querySelector('figure.preview-image img').naturalWidth") == 1
        _shot(page, "admin-preview-image")

        # Models, a model page, prompts.
        page.goto(f"{url}/models")
        assert page.locator("table a", has_text="secret-model").count() == 1
        assert page.locator("table a", has_text=EVIL).count() == 1
        assert page.locator("table a", has_text="summarize-prompt").count() == 0  # prompts are listed apart
        _shot(page, "admin-models")
        page.click("table a:text-is('churn-classifier')")
        page.wait_for_url("**/model?name=churn-classifier")
        assert page.locator(".pill", has_text="@champion").count() >= 1
        assert page.locator(f"a[href='/runs/{runs[1]}']").count() == 1
        _shot(page, "admin-model")
        page.click("header nav a:text-is('Prompts')")
        page.wait_for_url(f"{url}/prompts")
        assert sorted(page.locator("tbody td.wrap a").all_inner_texts()) == ["secret-prompt", "summarize-prompt"]
        _shot(page, "admin-prompts")
        page.click("table a:text-is('summarize-prompt')")
        page.wait_for_url("**/model?name=summarize-prompt")
        assert page.locator(f"text=Summarize {{{{text}}}} {EVIL_TAG}").count() >= 1  # the template, as text
        _shot(page, "admin-prompt")

        # Traces of the experiment and the span tree.
        page.goto(f"{url}/experiments/{exp}")
        page.click("nav.tabs a:text-is('Traces')")
        page.wait_for_url(f"**/experiments/{exp}/traces")
        assert page.locator("tbody tr").count() == 2
        _shot(page, "admin-traces")
        page.click(f"a[href='/traces/{world['trace']}']")
        names = page.locator("td.span-name").all_inner_texts()
        assert [n.lstrip("└") for n in names] == ["agent", "retrieve", EVIL, "answer"]
        classes = [page.locator("td.span-name").nth(i).get_attribute("class") for i in range(4)]
        assert classes == ["span-name depth-0", "span-name depth-1", "span-name depth-2", "span-name depth-1"]
        assert page.locator("td", has_text="900.0 ms").count() == 1
        assert page.locator(".status-ERROR").count() >= 1
        _shot(page, "admin-trace")

        # My account: a token shown once that the API accepts, then revoked.
        page.goto(f"{url}/account")
        assert page.locator(".pill", has_text="administrator").count() == 1
        _shot(page, "admin-account")
        page.fill("form[action='/account/tokens/create'] input[name=name]", "laptop")
        page.click("form[action='/account/tokens/create'] button[type=submit]")
        page.wait_for_url(f"{url}/account")  # redirect-after-post
        export = page.locator("#token-export").inner_text()
        assert f"export MLFLOW_TRACKING_URI={url}" in export
        secret = export.split("export MLFLOW_TRACKING_TOKEN=")[1].strip()
        _shot(page, "admin-token-created")
        search = f"{url}{A}/experiments/search?max_results=5"
        assert httpx.get(search, headers={"Authorization": f"Bearer {secret}"}, timeout=30).status_code == 200
        page.goto(f"{url}/account")
        assert page.locator("#token-export").count() == 0  # shown once only
        assert secret not in page.content()
        page.click("form[action='/account/tokens/revoke'] button")
        page.wait_for_url("**/account?done=revoked")
        assert page.locator("td .status", has_text="revoked").count() == 1
        assert httpx.get(search, headers={"Authorization": f"Bearer {secret}"}, timeout=30).status_code == 401
        _shot(page, "admin-token-revoked")


def test_admin_manages_accounts_groups_grants_and_reads_the_audit_log(world, browser):
    server, exp = world["server"], world["exp"]
    url = server.url
    with _session(browser, url, server.admin_username, server.admin_password) as page:
        # Accounts: create, make admin, reset a password, disable.
        page.goto(f"{url}/admin")
        for name in ("carol", "dave"):
            page.fill("form[action='/admin/users/create'] input[name=username]", name)
            page.fill("form[action='/admin/users/create'] input[name=password]", "Unguessable-Initial-4k2p")
            page.click("form[action='/admin/users/create'] button")
            page.wait_for_url("**/admin?done=user")
            assert page.locator(f"td.wrap:text-is('{name}')").count() == 1
        page.click(f"{_user_form(page, 'dave', 'make_admin')} button")
        page.wait_for_url("**/admin?done=updated")
        assert page.locator("td.wrap:has-text('dave') .pill", has_text="admin").count() == 1
        assert page.locator(_user_form(page, "dave", "remove_admin")).count() == 1
        page.fill(f"{_user_form(page, 'carol', 'reset_password')} input[name=password]", "Reset-By-Admin-8812")
        page.click(f"{_user_form(page, 'carol', 'reset_password')} button")
        page.wait_for_url("**/admin?done=updated")
        assert page.locator("p.success", has_text="The account was updated.").count() == 1
        page.click(f"{_user_form(page, 'dave', 'disable')} button")
        page.wait_for_url("**/admin?done=updated")
        dave = page.locator("tr", has=page.locator(_user_form(page, "dave", "enable")))
        assert dave.locator(".status", has_text="disabled").count() == 1
        assert page.locator(_user_form(page, "dave", "disable")).count() == 0
        assert page.locator(_user_form(page, server.admin_username, "disable")).count() == 0  # not oneself
        _shot(page, "admin-users")

        # Groups: create, add a member, remove them, add them again.
        page.goto(f"{url}/admin/groups")
        page.fill("form[action='/admin/groups/create'] input[name=name]", "team-vision")
        page.click("form[action='/admin/groups/create'] button")
        page.wait_for_url("**/admin/groups?done=group")
        for attempt in ("added", "added again"):
            page.fill("input[list=usernames]", "carol")
            page.click("form[action='/admin/groups/member'] button:text-is('Add')")
            page.wait_for_url("**/admin/groups?done=member")
            assert page.locator("form.chip span", has_text="carol").count() == 1, attempt
            if attempt == "added":
                page.click("button[aria-label='Remove carol from team-vision']")
                page.wait_for_url("**/admin/groups?done=member")
                assert page.locator("form.chip span", has_text="carol").count() == 0
                assert page.locator("td .muted", has_text="no members").count() == 1
                _shot(page, "admin-groups-member-removed")
        _shot(page, "admin-groups")

        # Grants: grant, see who can see the experiment and why, change, revoke.
        page.goto(f"{url}/admin/grants?experiment_id={exp}")
        page.fill("form.form-row input[name=subject]", "group:team-vision")
        page.select_option("form.form-row select[name=permission]", "EDIT")
        page.click("form.form-row button")
        page.wait_for_url(f"**/admin/grants?experiment_id={exp}&done=grant")

        def audience() -> dict[str, str]:
            rows = page.locator("table.audience tbody tr").all()
            return {r.locator("td").first.inner_text(): r.locator("td").nth(1).inner_text() for r in rows}

        assert audience() == {"reader": "READ", "carol": "EDIT"}  # not nobody, not the disabled dave
        assert page.locator("p.admins .pill").all_inner_texts() == [server.admin_username]
        assert page.locator("p.disabled-note", has_text="1 disabled account not listed").count() == 1
        _shot(page, "admin-grants")
        grant_row = "tr:has(input[name=subject][value='group:team-vision'])"
        page.select_option(f"{grant_row} form[action='/admin/grants/put'] select", "READ")
        page.click(f"{grant_row} form[action='/admin/grants/put'] button")
        page.wait_for_url(f"**/admin/grants?experiment_id={exp}&done=grant")
        assert audience() == {"reader": "READ", "carol": "READ"}
        page.click(f"{grant_row} form[action='/admin/grants/revoke'] button")
        page.wait_for_url(f"**/admin/grants?experiment_id={exp}&done=revoked")
        assert audience() == {"reader": "READ"}
        assert page.locator(grant_row).count() == 0
        _shot(page, "admin-grants-revoked")
        page.goto(f"{url}/admin/grants?experiment_id={world['secret']}")
        assert page.locator("table.audience tbody tr").all_inner_texts() == ["Nobody but administrators."]
        _shot(page, "admin-grants-admins-only")

        # Audit log: filtered by action, principal, outcome and time.
        wrong = httpx.get(f"{url}{A}/experiments/search", auth=("ghost-user", "not-a-password"), timeout=30)
        assert wrong.status_code == 401
        page.goto(f"{url}/admin/audit?action=grant")
        assert page.locator("td", has_text="group:team-vision experiment:").count() >= 1
        assert set(page.locator("tbody td:nth-child(4)").all_inner_texts()) == {"grant"}
        _shot(page, "admin-audit")
        page.goto(f"{url}/admin/audit")
        page.fill("input[name=actor]", "ghost-user")
        page.select_option("select[name=outcome]", "failure")
        page.click("form.filters button")
        page.wait_for_url("**outcome=failure**")
        assert page.locator("tbody tr").count() >= 1
        assert set(page.locator("tbody td:nth-child(6)").all_inner_texts()) == {"failure"}
        assert set(page.locator("tbody td:nth-child(2)").all_inner_texts()) == {"ghost-user"}
        _shot(page, "admin-audit-outcome")
        page.select_option("select[name=outcome]", "success")
        page.click("form.filters button")
        page.wait_for_url("**outcome=success**")
        assert page.locator("td.muted", has_text="No records match.").count() == 1
        page.goto(f"{url}/admin/audit?actor=ghost-user")
        page.fill("input[name=since]", "2000-01-01T00:00")
        page.click("form.filters button")
        page.wait_for_url("**since=2000-01-01T00%3A00**")
        assert set(page.locator("tbody td:nth-child(2)").all_inner_texts()) == {"ghost-user"}
        page.fill("input[name=since]", "")
        page.fill("input[name=until]", "2000-01-01T00:00")
        page.click("form.filters button")
        page.wait_for_url("**until=2000-01-01T00%3A00**")
        assert page.locator("td.muted", has_text="No records match.").count() == 1
        _shot(page, "admin-audit-time")

        page.goto(f"{url}/admin/policy")
        assert page.locator("#policy-text").inner_text() == POLICY.decode()
        assert page.locator("main p code", has_text=str(world["policy"])).count() == 1
        assert page.locator("main p code", has_text=hashlib.sha256(POLICY).hexdigest()).count() == 1
        assert page.locator("p.notice").count() == 0
        assert "team-vision" in page.locator("pre.preview").last.inner_text()
        _shot(page, "admin-policy")

    # Carol signs in with the password the administrator set, and changes it herself.
    with _session(browser, url, "carol", "Reset-By-Admin-8812") as page:
        assert page.locator("td.muted", has_text="No experiments to show.").count() == 1  # the grant was revoked
        page.goto(f"{url}/account")
        assert page.locator(".pill", has_text="team-vision").count() == 1
        page.fill("#current_password", "Reset-By-Admin-8812")
        page.fill("#new_password", CAROL_PASSWORD)
        page.fill("#repeat_password", CAROL_PASSWORD)
        page.click("form[action='/account/password'] button")
        # Changing the password ends every session, this one too: sign in again with the new one.
        page.wait_for_url("**/login?next=**")
        page.fill("#username", "carol")
        page.fill("#password", CAROL_PASSWORD)
        page.click("form[action='/login'] button[type=submit]")
        page.wait_for_url(f"{url}/account?done=password")
        assert page.locator("p.success").count() == 1
        assert page.locator("header .who strong").inner_text() == "carol"
        _shot(page, "carol-password-changed")
    with _session(browser, url, "carol", CAROL_PASSWORD) as page:
        assert page.locator("header .who strong").inner_text() == "carol"


def test_read_user_sees_only_what_is_granted(world, browser):
    server, exp, runs = world["server"], world["exp"], world["runs"]
    url = server.url
    with _session(browser, url, "reader", READER_PASSWORD) as page:
        assert page.locator("tbody td.wrap a").all_inner_texts() == ["vision-baselines"]
        assert page.locator("text=secret-exp").count() == 0
        assert page.locator("text=bulk-runs").count() == 0
        assert page.locator("header nav a", has_text="Admin").count() == 0
        _shot(page, "reader-experiments")
        # The runs table, filtered; no Access tab (administrators only).
        page.click("table a:text-is('vision-baselines')")
        page.wait_for_url(f"{url}/experiments/{exp}")
        assert sorted(_run_names(page)) == sorted([EVIL, "resnet-lr-0.03", "resnet-lr-0.1", "sweep"])
        assert page.locator("nav.tabs a", has_text="Access").count() == 0
        _shot(page, "reader-runs")
        page.fill("#filter", "metrics.loss > 0.049")  # only the first run's final loss (2/40) is above
        page.press("#filter", "Enter")
        page.wait_for_url("**filter=**")
        assert _run_names(page) == [EVIL]
        # A run, its artifacts and a preview.
        page.click(f"a[href='/runs/{runs[0]}']")
        page.wait_for_url(f"{url}/runs/{runs[0]}")
        assert page.locator("h1").inner_text() == EVIL
        assert page.locator("td", has_text=EVIL_TAG).count() == 1
        assert page.locator("#artifacts ~ .table-wrap a", has_text="summary.txt").count() == 1
        _shot(page, "reader-run")
        page.click("a[href*='preview?path=summary.txt']")
        assert "top-1 accuracy: 0.91" in page.locator("pre.preview").inner_text()
        _shot(page, "reader-preview")
        # Compare two of its runs.
        page.goto(f"{url}/compare?runs={runs[1]}&runs={runs[2]}")
        assert page.locator("h1").inner_text() == "Compare 2 runs"
        assert page.locator("tr.differs th", has_text="lr").count() == 1
        _shot(page, "reader-compare")
        # Models and prompts: only the granted ones.
        page.goto(f"{url}/models")
        assert sorted(page.locator("tbody td.wrap a").all_inner_texts()) == sorted(["churn-classifier", EVIL])
        assert page.locator("text=secret-model").count() == 0
        _shot(page, "reader-models")
        page.click("table a:text-is('churn-classifier')")
        page.wait_for_url("**/model?name=churn-classifier")
        assert page.locator(f"a[href='/runs/{runs[1]}']").count() == 1
        _shot(page, "reader-model")
        page.goto(f"{url}/prompts")
        assert page.locator("tbody td.wrap a").all_inner_texts() == ["summarize-prompt"]
        _shot(page, "reader-prompts")
        # Traces.
        page.goto(f"{url}/experiments/{exp}/traces")
        assert page.locator(f"a[href='/traces/{world['trace']}']").count() == 1
        assert page.locator(f"td:text-is('{EVIL}')").count() == 1  # the hostile trace name, as text
        _shot(page, "reader-traces")
        page.click(f"a[href='/traces/{world['trace']}']")
        assert page.locator("td.span-name").count() == 4
        _shot(page, "reader-trace")
        # My account: access and why; a token of my own.
        page.goto(f"{url}/account")
        access = page.locator("h2#access + .table-wrap").inner_text()
        assert "vision-baselines" in access
        assert "READ" in access
        assert "secret-exp" not in access
        assert "secret-model" not in access
        page.fill("form[action='/account/tokens/create'] input[name=name]", "notebook")
        page.check("form[action='/account/tokens/create'] input[name=read_only]")
        page.click("form[action='/account/tokens/create'] button[type=submit]")
        assert "export MLFLOW_TRACKING_TOKEN=" in page.locator("#token-export").inner_text()
        assert page.locator("td", has_text="read-only").count() == 1
        _shot(page, "reader-account")
        # Hidden things answer like missing ones, on every kind of page; admin pages refuse as the admin API does.
        for path in (f"/runs/{world['hidden_run']}", f"/experiments/{world['secret']}", "/model?name=secret-model",
                     f"/experiments/{world['secret']}/traces", f"/runs/{world['hidden_run']}/preview?path=x.txt",
                     f"/compare?runs={runs[0]}&runs={world['hidden_run']}", "/model?name=secret-prompt"):
            _expect_status(page, f"{url}{path}", 404, "Not found")
        _shot(page, "reader-hidden-is-missing")
        for path in ("/admin", "/admin/groups", "/admin/grants", "/admin/audit", "/admin/policy"):
            assert page.goto(f"{url}{path}").status == 403, path
            assert page.locator("table").count() == 0
        _shot(page, "reader-admin-refused")


def test_user_without_grants_sees_nothing(world, browser):
    server, runs = world["server"], world["runs"]
    url = server.url
    with _session(browser, url, "nobody", NOBODY_PASSWORD) as page:
        assert page.locator("td.muted", has_text="No experiments to show.").count() == 1
        assert page.locator("header nav a", has_text="Admin").count() == 0
        _shot(page, "nobody-experiments")
        page.goto(f"{url}/models")
        assert page.locator("td.muted", has_text="No registered models to show.").count() == 1
        _shot(page, "nobody-models")
        page.goto(f"{url}/prompts")
        assert page.locator("td.muted", has_text="No prompts to show.").count() == 1
        _shot(page, "nobody-prompts")
        page.goto(f"{url}/account")
        assert page.locator("text=You cannot see any experiment or registered model yet.").count() == 1
        assert page.locator("text=No stored grants name you or your groups").count() == 1
        _shot(page, "nobody-account")
        _expect_status(page, f"{url}/experiments/{world['exp']}", 404, "Not found", "nobody-runs-missing")
        _expect_status(page, f"{url}/runs/{runs[0]}", 404, "Not found", "nobody-run-missing")
        for path in (f"/runs/{runs[0]}/preview?path=summary.txt", f"/experiments/{world['exp']}/traces",
                     f"/traces/{world['trace']}", f"/compare?runs={runs[0]}&runs={runs[1]}",
                     "/model?name=churn-classifier", "/model?name=summarize-prompt"):
            _expect_status(page, f"{url}{path}", 404, "Not found")
        assert page.locator("text=vision-baselines").count() == 0
        assert page.goto(f"{url}/admin").status == 403
        _shot(page, "nobody-admin-refused")


def test_locked_out_sign_in_says_so(world, browser):
    url = world["server"].url
    watch = Watch()
    page = _browser_page(browser, watch)
    try:
        page.goto(f"{url}/login")
        for _ in range(5):  # the policy's default: 5 failures lock the username
            page.fill("#username", "locked-user")
            page.fill("#password", "not-the-password")
            with page.expect_navigation() as wrong:
                page.click("form[action='/login'] button[type=submit]")
            assert wrong.value.status == 401
            assert page.locator("text=Invalid username or password.").count() == 1
        page.fill("#username", "locked-user")
        page.fill("#password", LOCKED_PASSWORD)  # the right password no longer helps
        with page.expect_navigation() as locked:
            page.click("form[action='/login'] button[type=submit]")
        assert locked.value.status == 429
        retry_after = int(locked.value.headers["retry-after"])
        assert retry_after > 0
        message = page.locator("p[role=alert]").filter(has_text="Too many failed attempts")
        assert message.count() == 1
        assert re.search(r"try again in \d+ (seconds|minutes)\.", message.inner_text())
        assert page.locator("header .who").count() == 0  # not signed in
        _shot(page, "locked-out")
        # The watch every test relies on sees a CSP refusal: here an inline style, which the CSP forbids.
        assert watch.problems == []
        page.evaluate("document.body.setAttribute('style', 'background: red')")
        page.wait_for_timeout(200)
        assert page.evaluate("getComputedStyle(document.body).backgroundColor") != "rgb(255, 0, 0)"
        assert len(watch.problems) == 1
        assert "style-src 'self'" in watch.problems[0]
        watch.problems.clear()
    finally:
        page.context.close()
    watch.check()


def test_progress_bar_keyboard_focus_and_laptop_widths(world, browser):
    server, exp = world["server"], world["exp"]
    url = server.url
    with _session(browser, url, server.admin_username, server.admin_password) as page:
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
