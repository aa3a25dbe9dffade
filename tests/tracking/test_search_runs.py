"""runs/search through the HTTP API: filters, order, pages, view types and errors, over real SQL."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from tests.conftest import TEST_ADMIN_TOKEN
from tests.services import fresh_postgres_database
from tracking.search.page_token import encode_page_token

A = "/api/2.0/mlflow"


def _ok(resp):
    assert resp.status_code == 200, resp.text
    return resp.json()


def make_experiment(client, name="exp"):
    return _ok(client.post(f"{A}/experiments/create", json={"name": name}))["experiment_id"]


def make_run(client, experiment_id, name, start_time, *, metrics=(), params=(), tags=(), datasets=()):
    run = _ok(client.post(f"{A}/runs/create", json={"experiment_id": experiment_id, "run_name": name,
                                                   "start_time": start_time, "user_id": "ann"}))["run"]
    run_id = run["info"]["run_id"]
    batch = {
        "run_id": run_id,
        "metrics": [{"key": k, "value": v, "timestamp": 1, "step": 0} for k, v in metrics],
        "params": [{"key": k, "value": v} for k, v in params],
        "tags": [{"key": k, "value": v} for k, v in tags],
    }
    _ok(client.post(f"{A}/runs/log-batch", json=batch))
    if datasets:
        _ok(client.post(f"{A}/runs/log-inputs", json={"run_id": run_id, "datasets": [
            {"tags": [{"key": "mlflow.data.context", "value": ctx}],
             "dataset": {"name": dname, "digest": digest, "source_type": "local", "source": "{}"}}
            for dname, digest, ctx in datasets
        ]}))
    return run_id


def search(client, body, method="POST"):
    if method == "GET":
        return client.get(f"{A}/runs/search", params=body)
    return client.post(f"{A}/runs/search", json=body)


def names(payload):
    return [r["info"]["run_name"] for r in payload.get("runs", [])]


def populate(client):
    """Five runs in one experiment with distinct metrics, params, tags and dataset inputs."""
    exp = make_experiment(client)
    ids = {
        "r1": make_run(client, exp, "r1", 1000, metrics=[("acc", 0.5), ("loss", 3)], params=[("lr", "0.1")],
                       tags=[("team", "vision")], datasets=[("train-set", "d1", "training")]),
        "r2": make_run(client, exp, "r2", 2000, metrics=[("acc", 0.9)], params=[("lr", "0.01")],
                       tags=[("team", "Vision-2")], datasets=[("eval-set", "d2", "eval")]),
        "r3": make_run(client, exp, "r3", 3000, metrics=[("acc", 0.7), ("loss", 1)], params=[("lr", "0.1")]),
        "r4": make_run(client, exp, "r4", 4000, metrics=[("acc", "NaN")], tags=[("team", "nlp")]),
        "r5": make_run(client, exp, "r5", 5000),
    }
    return exp, ids


@pytest.fixture
def populated(client):
    """The five runs of :func:`populate` in a fresh SQLite-backed app."""
    return populate(client)


FILTERS = [
    ("metrics.acc > 0.6", ["r3", "r2"]),
    ("metrics.acc >= 0.5 AND metrics.acc <= 0.7", ["r3", "r1"]),
    ("metrics.acc != 0.5", ["r4", "r3", "r2"]),  # NaN differs from everything
    ("metrics.acc = 0", []),  # NaN is stored as 0 but never equals 0
    ("metrics.loss < 2", ["r3"]),
    ("params.lr = '0.1'", ["r3", "r1"]),
    ("params.lr != '0.1'", ["r2"]),
    ("params.lr IS NULL", ["r5", "r4"]),
    ("params.lr IS NOT NULL", ["r3", "r2", "r1"]),
    ("tags.team LIKE 'vision%'", ["r1"]),
    ("tags.team ILIKE 'vision%'", ["r2", "r1"]),
    ("tags.team IS NULL", ["r5", "r3"]),
    ("tags.mlflow.runName = 'r2'", ["r2"]),
    ("tags.`mlflow.runName` IN ('r2')", None),  # tags take no lists: 400
    ("attributes.run_name = 'r4'", ["r4"]),
    ("run_name LIKE 'r%' AND start_time > 3500", ["r5", "r4"]),
    ("`Run name` = 'r1'", ["r1"]),
    ("created <= 2000", ["r2", "r1"]),
    ("status = 'RUNNING'", ["r5", "r4", "r3", "r2", "r1"]),
    ("attributes.user_id = 'ann' AND end_time IS NULL", None),
    ("datasets.name = 'train-set'", ["r1"]),
    ("datasets.digest IN ('d1', 'd2')", ["r2", "r1"]),
    ("datasets.context = 'eval'", ["r2"]),
    ("datasets.name LIKE '%set' AND metrics.acc > 0.6", ["r2"]),
    ("metrics.acc > 1e400", []),  # overflows to infinity, which no finite metric exceeds
    ("start_time > 99999999999999999999", None),  # beyond BIGINT: 400, not a driver error
    ("params.lr = 'a\x00'", None),  # PostgreSQL text cannot hold NUL
]


@pytest.mark.parametrize(("text", "expected"), FILTERS)
def test_filters_select_the_matching_runs(client, populated, text, expected):
    exp, _ = populated
    resp = search(client, {"experiment_ids": [exp], "filter": text})
    if expected is None:
        assert resp.status_code == 400
        assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    else:
        assert names(_ok(resp)) == expected


def test_lone_surrogate_in_filter_is_a_400(client, populated):
    exp, _ = populated
    raw = '{"experiment_ids": ["' + exp + '"], "filter": "params.lr = \'\\ud800\'"}'
    resp = client.post(f"{A}/runs/search", content=raw, headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def test_run_id_lists(client, populated):
    exp, ids = populated
    body = {"experiment_ids": [exp], "filter": f"run_id IN ('{ids['r1']}', '{ids['r3']}')"}
    assert names(_ok(search(client, body))) == ["r3", "r1"]
    body["filter"] = f"attributes.run_id NOT IN ('{ids['r1']}', '{ids['r3']}')"
    assert names(_ok(search(client, body))) == ["r5", "r4", "r2"]


ORDERS = [
    ([], ["r5", "r4", "r3", "r2", "r1"]),
    (["metrics.acc DESC"], ["r2", "r3", "r1", "r4", "r5"]),  # NaN, then missing, last
    (["metrics.acc ASC"], ["r1", "r3", "r2", "r4", "r5"]),
    (["metrics.loss"], ["r3", "r1", "r5", "r4", "r2"]),  # ties broken by start_time DESC
    (["params.lr DESC", "start_time ASC"], ["r1", "r3", "r2", "r4", "r5"]),
    (["tags.team"], ["r2", "r4", "r1", "r5", "r3"]),  # SQLite compares bytes: "Vision-2" < "nlp" < "vision"
    (["attributes.run_name DESC"], ["r5", "r4", "r3", "r2", "r1"]),
    (["start_time"], ["r1", "r2", "r3", "r4", "r5"]),
]


@pytest.mark.parametrize(("order_by", "expected"), ORDERS)
def test_order_by(client, populated, order_by, expected):
    exp, _ = populated
    assert names(_ok(search(client, {"experiment_ids": [exp], "order_by": order_by}))) == expected


def test_get_with_query_string_matches_post(client, populated):
    exp, _ = populated
    query = {"experiment_ids": exp, "filter": "metrics.acc > 0.6", "order_by": ["metrics.acc ASC"]}
    assert names(_ok(search(client, query, method="GET"))) == ["r3", "r2"]
    ajax = _ok(client.post("/ajax-api/2.0/mlflow/runs/search",
                           json={"experiment_ids": [exp], "filter": "metrics.acc > 0.6"}))
    assert names(ajax) == ["r3", "r2"]


def test_pages_cover_every_run_once_and_tokens_are_bound(client, populated):
    exp, _ = populated
    body = {"experiment_ids": [exp], "max_results": 2, "order_by": ["metrics.acc DESC"]}
    seen, token, pages = [], None, 0
    while pages < 10:
        page = _ok(search(client, {**body, **({"page_token": token} if token else {})}))
        seen += names(page)
        pages += 1
        token = page.get("next_page_token")
        if token is None:
            break
    assert seen == ["r2", "r3", "r1", "r4", "r5"]
    assert pages == 3

    first = _ok(search(client, body))
    other = search(client, {**body, "filter": "metrics.acc > 0", "page_token": first["next_page_token"]})
    assert other.status_code == 400
    assert "belongs to a different query" in other.json()["message"]
    other_order = search(client, {**body, "order_by": ["start_time"], "page_token": first["next_page_token"]})
    assert other_order.status_code == 400


@pytest.mark.parametrize("token", ["garbage", "eyJvIjogLTF9", "%%%", "A" * 5000])
def test_tampered_page_tokens_get_400(client, populated, token):
    exp, _ = populated
    resp = search(client, {"experiment_ids": [exp], "page_token": token})
    assert resp.status_code == 400
    assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def test_exact_page_has_no_next_token_and_empty_result_is_empty_object(client, populated):
    exp, _ = populated
    assert "next_page_token" not in _ok(search(client, {"experiment_ids": [exp], "max_results": 5}))
    assert _ok(search(client, {"experiment_ids": [exp], "filter": "metrics.acc > 100"})) == {}
    assert _ok(search(client, {"experiment_ids": ["12345"]})) == {}


def test_view_types(client, populated):
    exp, ids = populated
    _ok(client.post(f"{A}/runs/delete", json={"run_id": ids["r2"]}))
    assert names(_ok(search(client, {"experiment_ids": [exp]}))) == ["r5", "r4", "r3", "r1"]
    assert names(_ok(search(client, {"experiment_ids": [exp], "run_view_type": "DELETED_ONLY"}))) == ["r2"]
    assert len(names(_ok(search(client, {"experiment_ids": [exp], "run_view_type": "ALL"})))) == 5
    assert names(_ok(search(client, {"experiment_ids": [exp], "run_view_type": 2}))) == ["r2"]


def test_runs_of_several_experiments(client, populated):
    exp, _ = populated
    other = make_experiment(client, "other")
    make_run(client, other, "o1", 4500)
    assert names(_ok(search(client, {"experiment_ids": [exp, other], "max_results": 3}))) == ["r5", "o1", "r4"]


def test_many_experiment_ids_do_not_hit_bind_parameter_limits(client, populated):
    exp, _ = populated
    ids = [str(n) for n in range(1000, 41000)] + [exp]
    assert len(names(_ok(search(client, {"experiment_ids": ids})))) == 5
    too_many = search(client, {"experiment_ids": ["1"] * 100_001})
    assert too_many.status_code == 400
    assert too_many.json()["message"] == "Parameter 'experiment_ids' may list at most 100000 experiments."


def test_run_json_is_complete(client, populated):
    exp, ids = populated
    run = _ok(search(client, {"experiment_ids": [exp], "filter": "attributes.run_name = 'r1'"}))["runs"][0]
    assert run["info"]["run_id"] == ids["r1"]
    assert {"key": "lr", "value": "0.1"} in run["data"]["params"]
    assert run["inputs"]["dataset_inputs"][0]["dataset"]["name"] == "train-set"


BAD_REQUESTS = [
    ({"filter": "metrics.acc > 1 OR metrics.acc < 0"},
     "Invalid filter: 'OR' is not supported; MLflow's search grammar only joins comparisons with AND."),
    ({"filter": "datasets.source = 'x'"},
     "Invalid filter: unknown dataset field 'source'; valid fields are name, digest, context."),
    ({"filter": "experiment_id = '1'"}, None),
    ({"order_by": ["datasets.name"]},
     "Invalid order_by: runs can be ordered by attributes, metrics, params and tags, not by dataset 'name'."),
    ({"order_by": ["metrics.a", "metrics.a DESC"]}, "Invalid order_by: metric 'a' appears more than once."),
    ({"max_results": 0}, "Parameter 'max_results' must be at least 1, got 0."),
    ({"max_results": 50001}, "Parameter 'max_results' must be at most 50000, got 50001."),
    ({"max_results": "many"}, None),
    ({"run_view_type": "SOME"},
     "Invalid value 'SOME' for parameter 'run_view_type': use ACTIVE_ONLY, DELETED_ONLY or ALL."),
    ({"experiment_ids": ["abc"]}, None),
    ({"filter": 5}, None),
]


@pytest.mark.parametrize(("override", "message"), BAD_REQUESTS)
def test_bad_requests_get_400(client, populated, override, message):
    exp, _ = populated
    resp = search(client, {"experiment_ids": [exp], **override})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    if message:
        assert resp.json()["message"] == message


def test_huge_offset_in_a_valid_token_returns_an_empty_page(client, populated):
    from tracking.scope import UNRESTRICTED
    from tracking.search.runs_sql import build_run_search

    exp, _ = populated
    # The administrator's scope: everything of the request's workspace ('default' without the header).
    scope = UNRESTRICTED.experiments.in_workspace("default")
    fp = build_run_search([int(exp)], None, [], "ACTIVE_ONLY").fingerprint(scope)
    assert _ok(search(client, {"experiment_ids": [exp], "page_token": encode_page_token(10**9, fp)})) == {}


@pytest.fixture
def pg_client(app_factory):
    """A TestClient over an app whose tracking database is a fresh PostgreSQL database."""
    with fresh_postgres_database() as uri, TestClient(
        app_factory(backend_store_uri=uri), base_url="http://127.0.0.1:5000",
        headers={"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"},
    ) as c:
        yield c


def test_same_answers_on_postgresql(pg_client):
    """Every filter and order above gives the same runs on PostgreSQL (one database for all cases)."""
    exp, _ = populate(pg_client)
    for text, expected in FILTERS:
        resp = search(pg_client, {"experiment_ids": [exp], "filter": text})
        if expected is None:
            assert resp.status_code == 400, text
        else:
            assert names(_ok(resp)) == expected, text
    for order_by, expected in ORDERS:
        if order_by == ["tags.team"]:
            continue  # mixed-case strings sort by the database's collation
        assert names(_ok(search(pg_client, {"experiment_ids": [exp], "order_by": order_by}))) == expected, order_by
    page = _ok(search(pg_client, {"experiment_ids": [exp], "max_results": 2}))
    rest = _ok(search(pg_client, {"experiment_ids": [exp], "max_results": 3, "page_token": page["next_page_token"]}))
    assert names(page) + names(rest) == ["r5", "r4", "r3", "r2", "r1"]


def _every_page(client, body, size):
    seen, token = [], None
    for _ in range(20):
        page = _ok(search(client, {**body, "max_results": size, **({"page_token": token} if token else {})}))
        seen += names(page)
        token = page.get("next_page_token")
        if token is None:
            return seen
    raise AssertionError("pagination did not end")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_search_walking_a_metrics_index_answers_exactly_as_one_sorting_every_match(request, backend, monkeypatch):
    """A search ordered by a metric walks that metric's index: same runs, same order, same pages as sorting all."""
    import tracking.search.runs_sql as runs_sql

    client = request.getfixturevalue("client" if backend == "sqlite" else "pg_client")
    exp, _ = populate(client)
    # More runs with real values, ties (broken by start time) and no value at all, around the NaN run r4.
    for n, value in enumerate([0.9, 0.2, 0.9, 0.6, 0.2]):
        make_run(client, exp, f"x{n}", 6000 + n, metrics=[("acc", value)], params=[("lr", str(n % 2))])
    make_run(client, exp, "x-missing", 7000, metrics=[("loss", 2)])
    orders = [["metrics.acc DESC"], ["metrics.acc ASC"], ["metrics.acc", "params.lr DESC"], ["metrics.loss DESC"]]
    filters = [None, "metrics.acc > 0.3", "params.lr = '1'"]
    expected = {}
    monkeypatch.setattr(runs_sql, "WALK_METRIC_INDEX", False)  # the reference: one query sorts every match
    for order in orders:
        for text in filters:
            body = {"experiment_ids": [exp], "order_by": order, **({"filter": text} if text else {})}
            expected[str(body)] = (_every_page(client, body, 100), _every_page(client, body, 3))
    monkeypatch.setattr(runs_sql, "WALK_METRIC_INDEX", True)
    monkeypatch.setattr(runs_sql, "LARGE_SEARCH_RUNS", 4)  # this experiment now counts as large
    for order in orders:
        for text in filters:
            body = {"experiment_ids": [exp], "order_by": order, **({"filter": text} if text else {})}
            whole, paged = expected[str(body)]
            assert whole == paged, body
            assert _every_page(client, body, 100) == whole, body
            assert _every_page(client, body, 3) == whole, body
    # The NaN run and the runs without the metric still come last, in MLflow's order.
    assert expected[str({"experiment_ids": [exp], "order_by": ["metrics.acc DESC"]})][0][-3:] == ["r4", "x-missing",
                                                                                                 "r5"]
