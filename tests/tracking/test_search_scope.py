"""The visibility scope is applied inside the search queries: pages stay full and never leak."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from tests.conftest import BACKENDS, TEST_ADMIN_TOKEN
from tests.services import fresh_postgres_database
from tests.tracking.tracking_app import with_test_scope
from tracking.scope import ResourceScope, VisibilityScope

A = "/api/2.0/mlflow"


def _client(app, holder) -> Iterator[tuple[TestClient, dict]]:
    with_test_scope(app, lambda request: holder.get("scope"))
    with TestClient(app, base_url="http://127.0.0.1:5000",
                    headers={"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}) as client:
        yield client, holder


@pytest.fixture(params=BACKENDS)
def scoped(request, app_factory) -> Iterator[tuple[TestClient, dict]]:
    """A client whose requests carry ``holder["scope"]`` (None: the administrator's own, unrestricted).

    On PostgreSQL too: the scope compares the integer experiment id as text, which must work on both.
    """
    holder: dict = {"scope": None}
    if request.param == "postgresql":
        with fresh_postgres_database() as uri:
            yield from _client(app_factory(backend_store_uri=uri), holder)
    else:
        yield from _client(app_factory(), holder)


def _ok(resp):
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.fixture
def thirty(scoped):
    """30 experiments with one run each; 10 are visible: 6 by id, 4 by name glob; one more is denied."""
    client, holder = scoped
    ids = []
    for n in range(30):
        name = f"team-a-{n}" if n in (3, 11, 19, 27) else f"exp-{n}"
        eid = _ok(client.post(f"{A}/experiments/create", json={"name": name}))["experiment_id"]
        _ok(client.post(f"{A}/runs/create", json={"experiment_id": eid, "start_time": 1000 + n, "run_name": name}))
        ids.append(eid)
    by_id = {ids[n] for n in (0, 5, 8, 14, 22, 29)}
    by_name = {ids[n] for n in (3, 11, 19, 27)}
    scope = ResourceScope(unrestricted=False, ids=frozenset(by_id | {ids[7]}), name_patterns=("team-a-*",),
                          denied_ids=frozenset({ids[7]}))
    return client, holder, ids, by_id | by_name, VisibilityScope(experiments=scope)


def _pages(client, path, body, key, limit=20):
    pages, token = [], None
    while len(pages) < limit:
        payload = _ok(client.post(f"{A}/{path}", json={**body, **({"page_token": token} if token else {})}))
        pages.append(payload.get(key, []))
        token = payload.get("next_page_token")
        if token is None:
            return pages
    raise AssertionError("pagination did not end")


def test_experiment_pages_are_full_and_only_visible(thirty):
    client, holder, _ids, visible, scope = thirty
    holder["scope"] = scope
    pages = _pages(client, "experiments/search", {"max_results": 4, "order_by": ["experiment_id"]}, "experiments")
    assert [len(p) for p in pages] == [4, 4, 2]
    seen = [e["experiment_id"] for p in pages for e in p]
    assert seen == sorted(visible, key=int)


def test_run_pages_are_full_and_only_visible(thirty):
    client, holder, ids, visible, scope = thirty
    holder["scope"] = scope
    pages = _pages(client, "runs/search", {"experiment_ids": ids, "max_results": 4}, "runs")
    assert [len(p) for p in pages] == [4, 4, 2]
    seen = [r["info"]["experiment_id"] for p in pages for r in p]
    assert sorted(seen, key=int) == sorted(visible, key=int)
    assert len(set(seen)) == 10


def test_filters_combine_with_the_scope(thirty):
    client, holder, ids, _visible, scope = thirty
    holder["scope"] = scope
    got = _ok(client.post(f"{A}/experiments/search", json={"filter": "name LIKE 'team-a-%'"}))["experiments"]
    assert len(got) == 4
    hidden = ids[1]
    got = _ok(client.post(f"{A}/runs/search", json={"experiment_ids": [hidden]}))
    assert got == {}
    got = _ok(client.post(f"{A}/experiments/search", json={"filter": f"experiment_id = '{hidden}'"}))
    assert got == {}


def test_denied_and_empty_scopes(thirty):
    client, holder, ids, _visible, _scope = thirty
    holder["scope"] = VisibilityScope(experiments=ResourceScope.nothing())
    assert _ok(client.post(f"{A}/experiments/search", json={})) == {}
    assert _ok(client.post(f"{A}/runs/search", json={"experiment_ids": ids})) == {}
    holder["scope"] = VisibilityScope(experiments=ResourceScope(unrestricted=True, denied_name_patterns=("exp-*",)))
    names = [e["name"] for e in _ok(client.post(f"{A}/experiments/search", json={}))["experiments"]]
    assert sorted(names) == ["Default", "team-a-11", "team-a-19", "team-a-27", "team-a-3"]


def test_a_page_token_does_not_survive_a_change_of_scope(thirty):
    client, holder, ids, _visible, scope = thirty
    first = _ok(client.post(f"{A}/runs/search", json={"experiment_ids": ids, "max_results": 4}))
    holder["scope"] = scope
    resp = client.post(f"{A}/runs/search", json={"experiment_ids": ids, "max_results": 4,
                                                 "page_token": first["next_page_token"]})
    assert resp.status_code == 400
    assert "belongs to a different query" in resp.json()["message"]
