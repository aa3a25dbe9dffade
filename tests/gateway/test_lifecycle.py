"""Authorization over time: visibility fails closed, and grants, caches and scopes follow resources through
create, rename, delete and re-create (issue #18, the resource half)."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from tests.conftest import TEST_ADMIN_TOKEN

A = "/api/2.0/mlflow"
B = "/api/3.0/mlflow"
BASE = "http://127.0.0.1:5000"
PASSWORD = "Unguessable-Pw-9c1e77aa31"


@pytest.fixture
def world(app_factory):
    """An app with an admin client and token clients for alice, bob and carol (no grants)."""
    app = app_factory()
    with TestClient(app, base_url=BASE) as admin:
        admin.headers["Authorization"] = f"Bearer {TEST_ADMIN_TOKEN}"
        clients = {"admin": admin}
        for name in ("alice", "bob", "carol"):
            made = admin.post(f"{A}/users/create", json={"username": name, "password": PASSWORD})
            assert made.status_code == 200, made.text
            issued = admin.post(f"{A}/users/tokens/create", json={"name": "t", "expires_in_days": 1, "username": name})
            assert issued.status_code == 200, issued.text
            bearer = {"Authorization": f"Bearer {issued.json()['token']}"}
            clients[name] = TestClient(app, base_url=BASE, headers=bearer)
        yield app, clients


def ok(response):
    assert response.status_code == 200, response.text
    return response.json()


def missing(response) -> None:
    assert response.status_code == 404, response.text
    assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


# --- Finding 5: no scope means nothing visible -------------------------------------------------------------------

SEARCHES = [
    ("post", f"{A}/experiments/search", {}),
    ("get", f"{A}/experiments/search", {}),
    ("post", f"{A}/runs/search", {"experiment_ids": ["0", "1"]}),
    ("post", f"{A}/registered-models/search", {}),
    ("post", f"{A}/model-versions/search", {}),
    ("post", f"{A}/logged-models/search", {"experiment_ids": ["0", "1"]}),
    ("post", f"{B}/traces/search", {"experiment_ids": ["0", "1"]}),
]


@pytest.mark.parametrize(("method", "path", "body"), SEARCHES, ids=[f"{m} {p}" for m, p, _ in SEARCHES])
def test_a_search_reached_with_no_scope_returns_nothing(app_factory, method, path, body):
    app = app_factory()
    with TestClient(app, base_url=BASE, headers={"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}) as admin:
        exp = ok(admin.post(f"{A}/experiments/create", json={"name": "visible-to-admin"}))["experiment_id"]
        run = ok(admin.post(f"{A}/runs/create", json={"experiment_id": exp}))["run"]["info"]["run_id"]
        ok(admin.post(f"{A}/registered-models/create", json={"name": "m"}))
        ok(admin.post(f"{A}/model-versions/create", json={"name": "m", "source": f"runs:/{run}/model",
                                                          "run_id": run}))
        ok(admin.post(f"{A}/logged-models", json={"experiment_id": exp}))
        ok(admin.post(f"{B}/traces", json={"trace": {"trace_info": _trace_info("tr-" + "a" * 32, exp)}}))
        body = {k: (["0", exp] if k == "experiment_ids" else v) for k, v in body.items()}
        kwargs = {"params": body} if method == "get" else {"json": body}
        everything = ok(getattr(admin, method)(path, **kwargs))
        assert any(everything.values()), everything  # the administrator's own scope shows it all
        # The same request through an app whose authorizer set no scope (a misclassified route) sees nothing.
        app.dependency_overrides[app.state.authorizer] = lambda: None
        nothing = ok(getattr(admin, method)(path, **kwargs))
        assert not any(v for k, v in nothing.items() if k != "next_page_token"), nothing


def _trace_info(trace_id: str, experiment_id: str) -> dict:
    return {"trace_id": trace_id, "trace_location": {"type": "MLFLOW_EXPERIMENT",
                                                      "mlflow_experiment": {"experiment_id": experiment_id}},
            "request_time": "2026-01-01T00:00:00Z", "execution_duration": "0.5s", "state": "OK"}
