"""UI pages in process: escaping of attacker-controlled values, and the same authorization as the API."""

from __future__ import annotations

import re
import time

import pytest
from starlette.testclient import TestClient

from tests.conftest import TEST_ADMIN_TOKEN

A = "/api/2.0/mlflow"
EVIL = "<img src=x onerror=alert(1)>"


def _main(html: str) -> str:
    return html.split('<main id="content">', 1)[1]


def _ok(response):
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def world(app_factory):
    """An admin client, a READ user's client, and two experiments of which the user may read one."""
    app = app_factory()
    with TestClient(app, base_url="http://127.0.0.1:5000") as admin:
        admin.headers["Authorization"] = f"Bearer {TEST_ADMIN_TOKEN}"
        _ok(admin.post(f"{A}/users/create", json={"username": "reader", "password": "Unguessable-Pw-5e1b2c"}))
        token = _ok(admin.post(f"{A}/users/tokens/create", json={
            "name": "ui", "expires_in_days": 1, "username": "reader"}))["token"]
        shared = _ok(admin.post(f"{A}/experiments/create", json={"name": "shared-exp"}))["experiment_id"]
        hidden = _ok(admin.post(f"{A}/experiments/create", json={"name": "hidden-exp"}))["experiment_id"]
        _ok(admin.post(f"{A}/experiments/permissions/create",
                       json={"experiment_id": shared, "username": "reader", "permission": "READ"}))
        runs = {}
        for name, exp in (("shared", shared), ("hidden", hidden)):
            made = _ok(admin.post(f"{A}/runs/create", json={
                "experiment_id": exp, "run_name": f"{name}-run", "start_time": 1_700_000_000_000}))
            runs[name] = made["run"]["info"]["run_id"]
        reader = TestClient(app, base_url="http://127.0.0.1:5000")
        reader.headers["Authorization"] = f"Bearer {token}"
        yield {"admin": admin, "reader": reader, "shared": shared, "hidden": hidden, "runs": runs}


def test_attacker_controlled_values_are_escaped_everywhere(world):
    admin, exp = world["admin"], world["shared"]
    run = _ok(admin.post(f"{A}/runs/create", json={"experiment_id": exp, "run_name": EVIL}))["run"]["info"]["run_id"]
    _ok(admin.post(f"{A}/runs/log-batch", json={
        "run_id": run, "params": [{"key": "p", "value": "\"><script>alert(2)</script>"}],
        "tags": [{"key": "note", "value": "</script><svg onload=alert(3)>"}],
        "metrics": [{"key": "loss", "value": v, "timestamp": 1, "step": s} for s, v in enumerate([3, 2, 1.5])]}))
    for url in (f"/experiments/{exp}", f"/runs/{run}"):
        page = admin.get(url)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        body = page.text
        assert EVIL not in body
        assert "&lt;img src=x onerror=alert(1)&gt;" in body
        # The only script is the layout's own file from /static/ (the CSP forbids inline script).
        assert body.count("<script") == 1
        assert '<script src="/static/ui.js" defer></script>' in body
        assert "<svg onload" not in body
    run_page = admin.get(f"/runs/{run}").text
    assert "&lt;/script&gt;&lt;svg onload=alert(3)&gt;" in run_page
    assert "<polyline" in run_page  # the loss history is charted on the server


def test_reader_lists_only_granted_experiments(world):
    page = world["reader"].get("/")
    assert page.status_code == 200
    assert "shared-exp" in page.text
    assert "hidden-exp" not in page.text
    assert "hidden-exp" in world["admin"].get("/").text
    # The filter box uses MLflow's grammar; a bad filter is explained on the page, not a 500.
    assert "shared-exp" not in world["reader"].get("/", params={"filter": "name = 'nothing'"}).text
    bad = world["reader"].get("/", params={"filter": "name =="})
    assert bad.status_code == 400
    assert 'role="alert"' in bad.text


def test_hidden_experiment_and_run_answer_like_missing_ones(world):
    reader = world["reader"]
    assert reader.get(f"/experiments/{world['shared']}").status_code == 200
    assert "shared-run" in reader.get(f"/experiments/{world['shared']}").text
    hidden, missing = reader.get(f"/experiments/{world['hidden']}"), reader.get("/experiments/987654")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.text == missing.text
    assert "hidden-exp" not in hidden.text
    hidden_run, missing_run = reader.get(f"/runs/{world['runs']['hidden']}"), reader.get(f"/runs/{'0' * 32}")
    assert hidden_run.status_code == missing_run.status_code == 404
    assert hidden_run.text == missing_run.text
    assert reader.get(f"/runs/{world['runs']['shared']}").status_code == 200
    # An administrator sees a missing experiment the same way too.
    admin_missing = world["admin"].get("/experiments/987654")
    assert admin_missing.status_code == 404
    assert _main(admin_missing.text) == _main(missing.text)


def test_runs_table_paginates_and_sorts(world):
    admin, exp = world["admin"], world["hidden"]
    for i in range(55):
        run = _ok(admin.post(f"{A}/runs/create", json={"experiment_id": exp, "run_name": f"bulk-{i:02d}"}))
        _ok(admin.post(f"{A}/runs/log-metric", json={"run_id": run["run"]["info"]["run_id"], "key": "acc",
                                                      "value": i, "timestamp": 1, "step": 0}))
    first = admin.get(f"/experiments/{exp}", params={"order_by": "metrics.`acc` DESC"})
    assert first.status_code == 200
    assert "bulk-54" in first.text
    assert "bulk-00" not in first.text
    assert 'rel="next"' in first.text
    token = first.text.split('page_token=')[1].split('"')[0]
    second = admin.get(f"/experiments/{exp}?order_by=metrics.%60acc%60+DESC&page_token={token}")
    assert second.status_code == 200, second.text
    assert "bulk-00" in second.text
    assert "bulk-54" not in second.text


def test_stylesheet_is_public_and_other_static_names_are_not_served(world):
    anonymous = TestClient(world["admin"].app, base_url="http://127.0.0.1:5000")
    css = anonymous.get("/static/ui.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    # No other name reaches the file system: a signed-in caller gets 404; an anonymous one is refused
    # (404, or 401 where the gateway asks unknown paths to sign in first), never the file.
    assert world["admin"].get("/static/..%2Fapp.py").status_code == 404
    assert world["admin"].get("/static/render.py").status_code == 404
    probe = anonymous.get("/static/..%2Fapp.py")
    assert probe.status_code in (401, 404)
    assert "create_app" not in probe.text


def test_default_csp_forbids_inline_script_and_inline_styles(world):
    from policies.file.network import HeadersConfig

    page = world["reader"].get(f"/experiments/{world['shared']}")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    directives = {d.split()[0]: d.split()[1:] for d in (part.strip() for part in csp.split(";")) if d}
    assert directives["script-src"] == ["'self'"]
    assert directives["style-src"] == ["'self'"]
    assert "'unsafe-inline'" not in csp
    assert csp.startswith(HeadersConfig().content_security_policy)
    # No page may need inline styles or scripts then: no style attribute, <style> or inline <script>.
    for path in ("/", f"/experiments/{world['shared']}", f"/runs/{world['runs']['shared']}", "/models"):
        html = world["reader"].get(path).text
        assert " style=" not in html
        assert "<style" not in html
        assert "<script>" not in html
        assert html.count("<script") == 1  # the one external script


def _headers(html: str) -> list[str]:
    """The run table's sortable column labels."""
    return re.findall(r'<th scope="col"><a href="[^"]*" title="Sort by [^"]*">([^<]*?)(?: [↑↓])?</a></th>', html)


def _hidden_inputs(html: str, form_class: str) -> list[tuple[str, str]]:
    form = html.split(f'class="{form_class}"', 1)[1].split("</form>", 1)[0]
    return re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form)


def test_runs_table_columns_are_chosen_from_the_experiments_keys_and_kept_across_links(world):
    admin, reader, exp = world["admin"], world["reader"], world["shared"]
    # The oldest run (on page 2 with the default newest-first order) is the only one with "zz-rare".
    oldest = _ok(admin.post(f"{A}/runs/create", json={"experiment_id": exp, "run_name": "oldest",
                                                       "start_time": 1_600_000_000_000}))["run"]["info"]["run_id"]
    _ok(admin.post(f"{A}/runs/log-batch", json={"run_id": oldest, "params": [{"key": "zz-rare", "value": "found-me"}],
                                               "metrics": [{"key": "zz-metric", "value": 7.5, "timestamp": 1,
                                                            "step": 0}]}))
    for i in range(50):
        run = _ok(admin.post(f"{A}/runs/create", json={"experiment_id": exp, "run_name": f"r{i:02d}",
                                                        "start_time": 1_700_000_000_000 + i}))["run"]["info"]["run_id"]
        _ok(admin.post(f"{A}/runs/log-batch", json={
            "run_id": run, "params": [{"key": f"p{k:02d}", "value": str(i)} for k in range(10)],
            "metrics": [{"key": "acc", "value": i, "timestamp": 1, "step": 0}]}))
    hidden_run = _ok(admin.post(f"{A}/runs/create", json={"experiment_id": world["hidden"]}))["run"]["info"]["run_id"]
    _ok(admin.post(f"{A}/runs/log-parameter", json={"run_id": hidden_run, "key": "secret-key", "value": "1"}))
    # Default: the experiment's first 8 param keys by name, and its metrics, the same on every page.
    first = reader.get(f"/experiments/{exp}")
    assert first.status_code == 200
    assert _headers(first.text) == ["Name", "Status", "Started", "Duration", "User",
                                    *[f"p{k:02d}" for k in range(8)], "acc", "zz-metric"]
    assert "oldest" not in first.text
    # The chooser offers every key of the experiment, not only the keys of the runs on this page.
    chooser = first.text.split('class="columns-form"', 1)[1].split("</form>", 1)[0]
    offered = re.findall(r'<input type="checkbox" name="(param|metric)" value="([^"]+)"( checked)?>', chooser)
    assert [(kind, key) for kind, key, _ in offered] == [
        *[("param", f"p{k:02d}") for k in range(10)], ("param", "zz-rare"), ("metric", "acc"), ("metric", "zz-metric")]
    assert [key for _, key, checked in offered if checked] == [*[f"p{k:02d}" for k in range(8)], "acc", "zz-metric"]
    assert ("cols", "1") in _hidden_inputs(first.text, "columns-form")
    # Chosen: exactly those columns, kept by the sort links, the filter form and the pager.
    chosen = [("cols", "1"), ("param", "zz-rare"), ("param", "p09"), ("metric", "zz-metric")]
    page = reader.get(f"/experiments/{exp}", params=chosen)
    assert page.status_code == 200
    assert _headers(page.text) == ["Name", "Status", "Started", "Duration", "User", "zz-rare", "p09", "zz-metric"]
    kept = "cols=1&amp;param=zz-rare&amp;param=p09&amp;metric=zz-metric"
    sort_links = re.findall(r'<th scope="col"><a href="([^"]+)"', page.text)
    assert sort_links
    assert all(link.endswith(kept) for link in sort_links)
    assert _hidden_inputs(page.text, "search")[1:] == chosen
    next_url = re.search(r'<a href="([^"]+)" rel="next">', page.text).group(1)
    assert kept in next_url
    second = reader.get(next_url.replace("&amp;", "&"))
    assert second.status_code == 200
    assert _headers(second.text) == ["Name", "Status", "Started", "Duration", "User", "zz-rare", "p09", "zz-metric"]
    assert '<td class="mono param" title="found-me">found-me</td>' in second.text
    assert '<td class="num">7.5</td>' in second.text
    sorted_page = reader.get(f"/experiments/{exp}", params=[*chosen, ("order_by", "params.`zz-rare` DESC")])
    assert sorted_page.status_code == 200
    assert "found-me" in sorted_page.text
    # Choosing nothing shows no param or metric column; a hostile key is text; limits answer 400.
    assert _headers(reader.get(f"/experiments/{exp}", params={"cols": "1"}).text) == [
        "Name", "Status", "Started", "Duration", "User"]
    hostile = reader.get(f"/experiments/{exp}", params=[("cols", "1"), ("param", EVIL)]).text
    assert EVIL not in hostile
    assert "&lt;img src=x onerror=alert(1)&gt;" in hostile
    assert reader.get(f"/experiments/{exp}", params=[("cols", "1"), ("param", "k" * 251)]).status_code == 400
    many = reader.get(f"/experiments/{exp}", params=[("cols", "1"), *[("param", f"x{i}") for i in range(40)]])
    assert len(_headers(many.text)) == 5 + 30
    assert "Only the first 30 chosen parameters and metrics are shown." in many.text
    # Keys come from the experiment's own runs: another experiment's keys are never offered.
    assert "secret-key" not in first.text


def test_the_keys_offered_come_from_the_newest_runs_and_are_cached_briefly(world, monkeypatch):
    from gateway.ui import routes

    admin, reader, exp = world["admin"], world["reader"], world["shared"]
    monkeypatch.setattr(routes, "MAX_KEY_RUNS", 2)
    for i, key in enumerate(["old-key", "mid-key", "new-key"]):
        run = _ok(admin.post(f"{A}/runs/create", json={"experiment_id": exp, "start_time": 1_800_000_000_000 + i}))
        _ok(admin.post(f"{A}/runs/log-parameter", json={"run_id": run["run"]["info"]["run_id"], "key": key,
                                                         "value": "1"}))
    page = reader.get(f"/experiments/{exp}").text
    chooser = page.split('class="columns-form"', 1)[1].split("</form>", 1)[0]
    assert re.findall(r'name="param" value="([^"]+)"', chooser) == ["mid-key", "new-key"]
    assert "The keys offered are those of the newest 2 runs." in chooser
    # A key logged now is offered once the short cache expires (here: at once, with the cache emptied).
    run = _ok(admin.post(f"{A}/runs/create", json={"experiment_id": exp, "start_time": 1_900_000_000_000}))
    _ok(admin.post(f"{A}/runs/log-parameter", json={"run_id": run["run"]["info"]["run_id"], "key": "newest-key",
                                                     "value": "1"}))
    assert "newest-key" not in reader.get(f"/experiments/{exp}").text
    monkeypatch.setattr(routes, "KEY_CACHE_SECONDS", 0)
    world["admin"].app.state.ui_key_cache = None
    assert "newest-key" in reader.get(f"/experiments/{exp}").text


def test_experiments_list_sorts_by_name_and_time_and_keeps_the_sort_in_its_links(world):
    admin = world["admin"]
    for name in ("alpha-exp", "zeta-exp", "mid-exp"):
        time.sleep(0.005)  # distinct creation times (milliseconds)
        _ok(admin.post(f"{A}/experiments/create", json={"name": name}))

    def names(order_by: str) -> list[str]:
        page = admin.get("/", params={"order_by": order_by})
        assert page.status_code == 200
        assert f'<option value="{order_by}" selected>' in page.text
        return re.findall(r'<td class="wrap"><a href="/experiments/\d+">([^<]+)</a></td>', page.text)

    ascending = names("name ASC")
    assert [n for n in ascending if n.endswith("-exp")] == ["alpha-exp", "hidden-exp", "mid-exp", "shared-exp",
                                                             "zeta-exp"]
    assert names("name DESC") == ascending[::-1]
    newest = names("creation_time DESC")
    assert newest[:3] == ["mid-exp", "zeta-exp", "alpha-exp"]
    assert names("creation_time ASC") == newest[::-1]
    assert admin.get("/", params={"order_by": "no_such_column ASC"}).status_code == 400
