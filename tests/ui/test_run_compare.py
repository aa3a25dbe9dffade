"""Compare runs, dataset inputs and parent/child links, and artifact previews that can never run script."""

from __future__ import annotations

import json
import re

from starlette.testclient import TestClient

from tests.conftest import TEST_ADMIN_TOKEN
from tests.ui.conftest import BASE, READER_PASSWORD, A, new_run, ok, sign_in

EVIL = "<img src=x onerror=alert(1)>"


def _history(values):
    return [{"key": "loss", "value": v, "timestamp": 1, "step": s} for s, v in enumerate(values)]


def test_compare_shows_runs_side_by_side_with_differences_and_overlaid_curves(ui):
    api, exp = ui["api"], ui["shared"]
    a = new_run(api, exp, "alpha", params=[{"key": "lr", "value": "0.1"}, {"key": "model", "value": "tree"}],
                metrics=_history([3, 2, 1]))
    b = new_run(api, exp, EVIL, params=[{"key": "lr", "value": "0.2"}, {"key": "model", "value": "tree"}],
                metrics=[*_history([4, 2, 0.5]), {"key": "acc", "value": 0.9, "timestamp": 1, "step": 0}])
    reader = ui["reader"]()
    # The experiment page is a GET form: a checkbox per run and a Compare button.
    listing = reader.get(f"/experiments/{exp}").text
    assert '<form method="get" action="/compare"' in listing
    assert f'name="runs" value="{a}"' in listing
    assert f'name="runs" value="{b}"' in listing
    page = reader.get("/compare", params=[("runs", a), ("runs", b)])
    assert page.status_code == 200, page.text
    html = page.text
    rows = {m.group(1): m.group(0) for m in re.finditer(r'<tr(?: class="differs")?><th scope="row" class="mono">'
                                                         r'([^<]+)</th>.*?</tr>', html)}
    assert 'class="differs"' in rows["lr"]  # 0.1 vs 0.2
    assert 'class="differs"' not in rows["model"]  # tree vs tree
    assert 'class="differs"' in rows["acc"]  # missing in one run
    # One SVG per metric, one line per run that has it: loss has two, acc a single point.
    charts = html.split('<figure class="chart">')[1:]
    assert len(charts) == 2
    acc, loss = charts
    assert acc.count("<circle") == 1
    assert acc.count("<polyline") == 0
    assert loss.count("<polyline") == 2
    assert EVIL not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_compare_needs_two_to_ten_visible_runs(ui):
    api, reader = ui["api"], ui["reader"]()
    shared = [new_run(api, ui["shared"], f"r{i}") for i in range(11)]
    hidden = new_run(api, ui["hidden"], "secret-run")
    assert reader.get("/compare", params=[("runs", shared[0])]).status_code == 400
    assert reader.get("/compare", params=[("runs", r) for r in shared]).status_code == 400
    assert reader.get("/compare", params=[("runs", r) for r in shared[:10]]).status_code == 200
    # A hidden run answers exactly like a missing one, and nothing of it is shown.
    with_hidden = reader.get("/compare", params=[("runs", shared[0]), ("runs", hidden)])
    with_missing = reader.get("/compare", params=[("runs", shared[0]), ("runs", "f" * 32)])
    assert with_hidden.status_code == with_missing.status_code == 404
    assert with_hidden.text == with_missing.text
    assert "secret-run" not in with_hidden.text
    assert ui["nobody"]().get("/compare", params=[("runs", shared[0]), ("runs", shared[1])]).status_code == 404


def test_compare_refuses_too_many_runs_before_looking_any_up(ui, monkeypatch):
    from gateway.ui.compare import MAX_RUNS
    from policies.routes import ROUTE_TABLE

    assert ROUTE_TABLE["ui.compare"].locator.max_values == MAX_RUNS
    api, reader = ui["api"], ui["reader"]()
    runs = [new_run(api, ui["shared"], f"r{i}") for i in range(3)]
    resolver = ui["app"].state.authorizer.resolver
    looked_up = []
    real = resolver.resolve
    monkeypatch.setattr(resolver, "resolve", lambda *a, **k: looked_up.append(a) or real(*a, **k))
    page = reader.get("/compare", params=[("runs", runs[i % 3]) for i in range(300)])
    assert page.status_code == 400
    assert page.headers["content-type"].startswith("text/html")
    assert "runs names more than 10 resources (300 given)" in page.text
    assert looked_up == []
    assert reader.get("/compare", params=[("runs", r) for r in runs]).status_code == 200
    assert len(looked_up) == 3


def test_run_page_shows_datasets_and_parent_child_links(ui):
    api, exp = ui["api"], ui["shared"]
    parent = new_run(api, exp, "sweep")
    child = new_run(api, exp, "trial-1", tags=[{"key": "mlflow.parentRunId", "value": parent}])
    ok(api.post(f"{A}/runs/log-inputs", json={"run_id": child, "datasets": [{
        "tags": [{"key": "mlflow.data.context", "value": "training"}],
        "dataset": {"name": "wine-quality", "digest": "3f9a2c", "source_type": "http",
                    "source": json.dumps({"url": "https://example.com/wine.csv"})}}]}))
    reader = ui["reader"]()
    child_page = reader.get(f"/runs/{child}").text
    assert "wine-quality" in child_page
    assert "3f9a2c" in child_page
    assert ">training<" in child_page
    assert "https://example.com/wine.csv" in child_page
    assert f'href="/runs/{parent}"' in child_page
    assert f'href="/runs/{child}"' in reader.get(f"/runs/{parent}").text
    assert "No dataset inputs." in reader.get(f"/runs/{parent}").text


def _put(api, exp: str, run: str, path: str, body: bytes) -> None:
    response = api.put(f"/api/2.0/mlflow-artifacts/artifacts/{exp}/{run}/artifacts/{path}", content=body)
    assert response.status_code == 200, response.text


PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


def test_artifact_previews_escape_text_pretty_print_json_and_lock_down_images(ui):
    api, exp = ui["api"], ui["shared"]
    run = new_run(api, exp, "with-files")
    _put(api, exp, run, "notes.txt", b"hello </pre><script>alert(1)</script>")
    _put(api, exp, run, "conf/params.json", b'{"b": 1, "a": [1, 2]}')
    _put(api, exp, run, "conf/model.yaml", b"name: <b>x</b>\n")
    _put(api, exp, run, "plot.png", PNG)
    _put(api, exp, run, "evil.png", b"<html><script>alert(1)</script></html>")
    _put(api, exp, run, "evil.svg", b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>')
    _put(api, exp, run, "big.log", b"x" * (300 * 1024))
    reader = ui["reader"]()
    listing = reader.get(f"/runs/{run}").text
    assert f'href="/runs/{run}/preview?path=notes.txt"' in listing
    text = reader.get(f"/runs/{run}/preview", params={"path": "notes.txt"})
    assert text.status_code == 200
    assert "hello &lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in text.text
    assert "<script>alert" not in text.text
    pretty = reader.get(f"/runs/{run}/preview", params={"path": "conf/params.json"}).text
    assert '{\n  &#34;b&#34;: 1,\n  &#34;a&#34;: [\n    1,\n    2\n  ]\n}' in pretty
    assert "name: &lt;b&gt;x&lt;/b&gt;" in reader.get(f"/runs/{run}/preview", params={"path": "conf/model.yaml"}).text
    svg_page = reader.get(f"/runs/{run}/preview", params={"path": "evil.svg"}).text
    assert "&lt;svg" in svg_page
    assert "<img" not in svg_page.split('<main id="content">')[1]
    big = reader.get(f"/runs/{run}/preview", params={"path": "big.log"}).text
    assert "Showing the first 256.0 KiB of 300.0 KiB" in big
    assert big.count("x" * 1000) <= 262
    # Images: the page embeds the locked-down image route; the bytes come with a fixed image type.
    image_page = reader.get(f"/runs/{run}/preview", params={"path": "plot.png"}).text
    assert f'<img src="/runs/{run}/image?path=plot.png"' in image_page
    image = reader.get(f"/runs/{run}/image", params={"path": "plot.png"})
    assert image.status_code == 200
    assert image.content == PNG
    assert image.headers["content-type"] == "image/png"
    assert image.headers["x-content-type-options"] == "nosniff"
    assert image.headers["content-security-policy"] == "default-src 'none'; sandbox"
    assert image.headers["content-disposition"].startswith("inline;")
    # An HTML file named .png is still sent as image/png under a sandbox: a browser cannot run it.
    disguised = reader.get(f"/runs/{run}/image", params={"path": "evil.png"})
    assert disguised.headers["content-type"] == "image/png"
    assert "sandbox" in disguised.headers["content-security-policy"]
    # SVG and other types are never served by the image route.
    assert reader.get(f"/runs/{run}/image", params={"path": "evil.svg"}).status_code == 400
    assert reader.get(f"/runs/{run}/image", params={"path": "../../etc/passwd.png"}).status_code in (400, 404)
    # The previews need READ on the run like the run page: hidden equals missing.
    hidden_run = new_run(api, ui["hidden"], "hidden-files")
    _put(api, ui["hidden"], hidden_run, "notes.txt", b"secret")
    for route in ("preview", "image"):
        hidden = reader.get(f"/runs/{hidden_run}/{route}", params={"path": "notes.txt"})
        missing = reader.get(f"/runs/{'0' * 32}/{route}", params={"path": "notes.txt"})
        assert hidden.status_code == missing.status_code == 404
        assert hidden.text == missing.text


def test_deeply_nested_json_preview_is_shown_as_text(ui):
    api, exp = ui["api"], ui["shared"]
    run = new_run(api, exp, "deep-json")
    deep = b"[" * 100_000 + b"]" * 100_000  # json.loads raises RecursionError, not ValueError
    _put(api, exp, run, "deep.json", deep)
    _put(api, exp, run, "broken.json", b'{"a": ')
    reader = ui["reader"]()
    page = reader.get(f"/runs/{run}/preview", params={"path": "deep.json"})
    assert page.status_code == 200, page.text[:500]
    assert page.headers["content-type"].startswith("text/html")
    assert "Nested too deeply to pretty-print: shown as it is." in page.text
    assert "[" * 1000 in page.text
    broken = reader.get(f"/runs/{run}/preview", params={"path": "broken.json"})
    assert broken.status_code == 200
    assert "Not valid JSON: shown as it is." in broken.text


def test_unexpected_errors_on_pages_are_an_html_page_without_details(ui, monkeypatch, caplog):
    from gateway.ui import routes

    api, exp = ui["api"], ui["shared"]
    run = new_run(api, exp, "boom", metrics=_history([1, 2]))

    def broken_chart(*args):
        raise RuntimeError("internal detail /srv/secret-path")

    monkeypatch.setattr(routes, "metric_chart", broken_chart)
    reader = sign_in(ui["app"], "reader", READER_PASSWORD, raise_server_exceptions=False)
    page = reader.get(f"/runs/{run}")
    assert page.status_code == 500
    assert page.headers["content-type"].startswith("text/html")
    assert "<h1>Something went wrong</h1>" in page.text
    assert "unexpected error on the server" in page.text
    assert "secret-path" not in page.text
    assert "RuntimeError" not in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "secret-path" in caplog.text  # the detail is logged for operators
    # The API keeps its JSON error body for the same kind of failure.
    monkeypatch.setattr("tracking.api.search.runs_to_json", broken_chart)
    client = TestClient(ui["app"], base_url=BASE, raise_server_exceptions=False)
    api_answer = client.post(f"{A}/runs/search", json={"experiment_ids": [exp]},
                             headers={"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"})
    assert api_answer.status_code == 500
    assert api_answer.json() == {"error_code": "INTERNAL_ERROR", "message": "Internal server error."}


def test_long_run_lists_page_and_capped_ones_say_so(ui, monkeypatch):
    from gateway.ui import compare, routes

    monkeypatch.setattr(routes, "RUN_ROWS", 5)
    monkeypatch.setattr(routes, "ARTIFACT_ROWS", 3)
    monkeypatch.setattr(routes, "MAX_CHILDREN", 2)
    monkeypatch.setattr(routes, "MAX_CHARTS", 3)
    monkeypatch.setattr(compare, "MAX_CHARTS", 1)
    api, exp = ui["api"], ui["shared"]
    run = new_run(api, exp, "wide", params=[{"key": f"p{i:02d}", "value": str(i)} for i in range(12)],
                  metrics=[{"key": f"m{i}", "value": i, "timestamp": 1, "step": 0} for i in range(4)])
    for i in range(7):
        _put(api, exp, run, f"files/f{i}.txt", b"x")
    children = [new_run(api, exp, f"child-{i}", tags=[{"key": "mlflow.parentRunId", "value": run}]) for i in range(3)]
    reader = ui["reader"]()
    first = reader.get(f"/runs/{run}").text
    assert "Parameters 1\u20135 of 12" in first
    assert ">p04<" in first
    assert ">p05<" not in first
    assert f'<a href="/runs/{run}?params_page=2#params" rel="next">Next</a>' in first
    third = reader.get(f"/runs/{run}", params={"params_page": "3"}).text
    assert "Parameters 11\u201312 of 12" in third
    assert ">p11<" in third
    assert ">p00<" not in third
    assert f'<a href="/runs/{run}?params_page=2#params">Previous</a>' in third
    assert "Parameters 11\u201312 of 12" in reader.get(f"/runs/{run}", params={"params_page": "99"}).text
    assert "Parameters 1\u20135 of 12" in reader.get(f"/runs/{run}", params={"params_page": "-1"}).text
    # Charts and child runs are capped, and the page says so; the link lists every child.
    assert "Charts of the first 3 of 4 metrics (by name) are shown" in first
    assert first.count('<figure class="chart">') == 3
    assert "The newest 2 child runs are shown." in first
    assert sum(f'href="/runs/{c}"' in first for c in children) == 2
    everyone = re.search(r'<a href="(/experiments/[^"]+)">All child runs</a>', first).group(1).replace("&amp;", "&")
    listed = reader.get(everyone).text
    assert all(f'value="{c}"' in listed for c in children)
    assert f'value="{run}"' not in listed
    # The artifact folder listing pages, keeping the folder and the other lists' pages.
    folder = reader.get(f"/runs/{run}", params={"path": "files", "params_page": "2"}).text
    assert "Entries 1\u20133 of 7" in folder
    assert "Parameters 6\u201310 of 12" in folder
    next_files = re.search(r'Entries 1\u20133 of 7</span>\s*<a href="([^"]+)" rel="next">', folder).group(1)
    assert next_files == f"/runs/{run}?path=files&amp;params_page=2&amp;files_page=2#artifacts"
    second = reader.get(next_files.replace("&amp;", "&")).text
    assert "Entries 4\u20136 of 7" in second
    assert ">f3.txt<" in second
    assert ">f0.txt<" not in second
    # Compare: the curves are capped and say so.
    other = new_run(api, exp, "other", metrics=[{"key": "m0", "value": 1, "timestamp": 1, "step": 0}])
    compared = reader.get("/compare", params=[("runs", run), ("runs", other)]).text
    assert "Curves of the first 1 of 4 metrics (by name) are shown" in compared
    # The audit log's Action filter is one exact name, and says so.
    audit = ui["admin"]().get("/admin/audit").text
    assert "Action (exact name)" in audit
    assert 'placeholder="one name, e.g. grant"' in audit
    assert "login, grant, authorize" not in audit  # read as a list, which the filter is not
