"""experiments/search through the HTTP API: filters, order, pages, view types and errors."""

from __future__ import annotations

import pytest

A = "/api/2.0/mlflow"


def _ok(resp):
    assert resp.status_code == 200, resp.text
    return resp.json()


def search(client, body, method="POST"):
    if method == "GET":
        return client.get(f"{A}/experiments/search", params=body)
    return client.post(f"{A}/experiments/search", json=body)


def names(payload):
    return [e["name"] for e in payload.get("experiments", [])]


@pytest.fixture
def populated(client):
    """Experiments alpha, beta, Gamma (tagged) and a deleted one, created in that order."""
    ids = {}
    for name, tags in [("alpha", {"team": "vision"}), ("beta", {"team": "nlp"}), ("Gamma", {}),
                       ("gone", {})]:
        ids[name] = _ok(client.post(f"{A}/experiments/create", json={
            "name": name, "tags": [{"key": k, "value": v} for k, v in tags.items()]}))["experiment_id"]
    _ok(client.post(f"{A}/experiments/delete", json={"experiment_id": ids["gone"]}))
    return ids


def test_default_order_is_newest_first(client, populated):
    # All four were created within the same millisecond or so; the id breaks ties, ascending.
    got = names(_ok(search(client, {})))
    assert set(got) == {"alpha", "beta", "Gamma", "Default"}
    assert names(_ok(search(client, {"order_by": ["experiment_id ASC"]}))) == ["Default", "alpha", "beta", "Gamma"]


FILTERS = [
    ("name = 'alpha'", ["alpha"]),
    ("name LIKE '%a'", ["alpha", "beta", "Gamma"]),
    ("name LIKE 'g%'", []),
    ("attribute.name ILIKE 'g%'", ["Gamma"]),
    ("name != 'alpha'", ["Default", "beta", "Gamma"]),
    ("tags.team = 'vision'", ["alpha"]),
    ("tags.team LIKE '%'", ["alpha", "beta"]),
    ("tags.team IS NULL", ["Default", "Gamma"]),
    ("tags.team IS NOT NULL AND name = 'beta'", ["beta"]),
    ("creation_time > 0", ["Default", "alpha", "beta", "Gamma"]),
    ("last_update_time < 0", []),
]


@pytest.mark.parametrize(("text", "expected"), FILTERS)
def test_filters(client, populated, text, expected):
    assert names(_ok(search(client, {"filter": text, "order_by": ["experiment_id"]}))) == expected


def test_experiment_id_filters(client, populated):
    body = {"filter": f"experiment_id IN ('{populated['beta']}', '0')", "order_by": ["name"]}
    assert names(_ok(search(client, body))) == ["Default", "beta"]
    body = {"filter": f"experiment_id = '{populated['alpha']}'"}
    assert names(_ok(search(client, body))) == ["alpha"]


def test_order_and_get(client, populated):
    assert names(_ok(search(client, {"order_by": ["name DESC"]}))) == ["beta", "alpha", "Gamma", "Default"]
    got = _ok(search(client, {"filter": "name LIKE '%a'", "order_by": "name", "max_results": "2"}, method="GET"))
    assert names(got) == ["Gamma", "alpha"]
    assert "next_page_token" in got


def test_view_types(client, populated):
    assert names(_ok(search(client, {"view_type": "DELETED_ONLY"}))) == ["gone"]
    assert len(names(_ok(search(client, {"view_type": "ALL"})))) == 5
    assert names(_ok(search(client, {"view_type": 2}))) == ["gone"]


def test_pages(client, populated):
    body = {"order_by": ["name ASC"], "max_results": 3}
    first = _ok(search(client, body))
    second = _ok(search(client, {**body, "page_token": first["next_page_token"]}))
    assert names(first) + names(second) == ["Default", "Gamma", "alpha", "beta"]
    assert "next_page_token" not in second
    foreign = search(client, {**body, "view_type": "ALL", "page_token": first["next_page_token"]})
    assert foreign.status_code == 400
    assert "belongs to a different query" in foreign.json()["message"]


BAD = [
    ({"filter": "metrics.a > 1"},
     "Invalid filter: unknown entity type 'metrics' in 'metrics.a'; valid prefixes are attribute, attributes, "
     "tag, tags."),
    ({"filter": "experiment_id LIKE '1%'"},
     "Invalid filter: operator 'LIKE' is not allowed for attribute 'experiment_id'; use one of !=, =, IN, NOT IN."),
    ({"filter": "experiment_id = 'abc'"}, "Invalid filter: experiment_id 'abc' is not an experiment id."),
    ({"filter": "name IN ('a')"},
     "Invalid filter: operator 'IN' is not allowed for attribute 'name'; use one of !=, =, ILIKE, LIKE."),
    ({"filter": "creation_time > 'yesterday'"},
     "Invalid filter: attribute 'creation_time' must be compared with a number, got 'yesterday'."),
    ({"filter": "name IS NULL"}, None),
    ({"order_by": ["tags.team"]},
     "Invalid order_by: experiments can be ordered by creation_time, experiment_id, last_update_time, name only, "
     "not by tag 'team'."),
    ({"order_by": ["lifecycle_stage"]}, None),
    ({"max_results": 50001}, "Parameter 'max_results' must be at most 50000, got 50001."),
    ({"view_type": "EVERYTHING"}, None),
    ({"page_token": "bm9wZQ"}, "Invalid page_token: it is malformed or was not issued by this server."),
]


@pytest.mark.parametrize(("body", "message"), BAD)
def test_bad_requests_get_400(client, populated, body, message):
    resp = search(client, body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    if message:
        assert resp.json()["message"] == message
