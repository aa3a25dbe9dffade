"""Every registry endpoint answers malformed input with an MLflow-style 4xx and changes nothing."""

from __future__ import annotations

import pytest

from tests.tracking.registry_support import A, api_fixture  # noqa: F401  (fixture)
from tracking.store.registry import get_model_version_run_id

ENDPOINTS = [
    ("POST", "/registered-models/create"), ("GET", "/registered-models/get"),
    ("POST", "/registered-models/rename"), ("PATCH", "/registered-models/update"),
    ("DELETE", "/registered-models/delete"), ("GET", "/registered-models/search"),
    ("POST", "/registered-models/search"), ("POST", "/registered-models/set-tag"),
    ("DELETE", "/registered-models/delete-tag"), ("POST", "/registered-models/get-latest-versions"),
    ("POST", "/registered-models/alias"), ("DELETE", "/registered-models/alias"),
    ("GET", "/registered-models/alias"), ("POST", "/model-versions/create"), ("GET", "/model-versions/get"),
    ("PATCH", "/model-versions/update"), ("DELETE", "/model-versions/delete"), ("GET", "/model-versions/search"),
    ("POST", "/model-versions/set-tag"), ("DELETE", "/model-versions/delete-tag"),
    ("POST", "/model-versions/transition-stage"), ("GET", "/model-versions/get-download-uri"),
]

# Each entry is malformed for every endpoint: the name (used by all but search) and a search field are bad.
MALFORMED = [
    {"name": ["a", "b"], "version": ["1", "2"], "filter": "name = 'x' AND AND"},
    {"name": {"x": 1}, "version": {"y": 2}, "filter": {"z": 3}},
    {"name": "", "version": "1e3", "alias": "a" * 300, "key": "k" * 300, "stage": "x" * 50, "max_results": -1},
    {"name": "a:b", "version": "-5", "order_by": "name SIDEWAYS", "page_token": "%%%"},
    {"name": "m" * 10_000, "version": "9" * 40, "new_name": "../../etc", "source": "../" * 50,
     "max_results": 10**30},
    {"name": "../m", "version": "1", "tags": [[1, 2]], "stages": [1, 2], "filter": "tags.k IS NULL"},
    {"name": 5, "version": True, "archive_existing_versions": "yes", "key": "a\nb", "page_token": "e30"},
]


def _send(api, method: str, path: str, fields: dict):
    if method == "GET":
        params = {k: v if isinstance(v, list) else str(v) for k, v in fields.items()}
        return api.client.get(A + path, params=params)
    return api.client.request(method, A + path, json=fields)


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_malformed_requests_are_4xx_and_change_nothing(api, method, path):
    api.create_model("m", tags=[{"key": "k", "value": "v"}], description="d")
    api.create_version("m")
    before = api.get("/registered-models/get", {"name": "m"}).json()
    for fields in MALFORMED:
        r = _send(api, method, path, fields)
        assert 400 <= r.status_code < 500, (fields, r.status_code, r.text)
        body = r.json()
        assert set(body) == {"error_code", "message"}, body
    assert api.get("/registered-models/get", {"name": "m"}).json() == before


def test_run_id_lookup_for_authorization(api):
    api.create_model("m")
    run_id = api.create_run()
    api.create_version("m", source=f"runs:/{run_id}/model", run_id=run_id)
    api.create_version("m", source="s3://bucket/m")
    engine = api.client.app.state.tracking.engine
    with engine.connect() as conn:
        assert get_model_version_run_id(conn, "m", "1", workspace="default") == run_id
        assert get_model_version_run_id(conn, "m", 1, workspace="default") == run_id
        assert get_model_version_run_id(conn, "m", "2", workspace="default") is None
        assert get_model_version_run_id(conn, "m", "3", workspace="default") is None
        assert get_model_version_run_id(conn, "m", "x", workspace="default") is None
        assert get_model_version_run_id(conn, "m", "9" * 30, workspace="default") is None
        assert get_model_version_run_id(conn, "other", "1", workspace="default") is None
        assert get_model_version_run_id(conn, "m", "1", workspace="team-a") is None  # names are per workspace
    api.delete("/model-versions/delete", body={"name": "m", "version": "1"})
    with engine.connect() as conn:
        assert get_model_version_run_id(conn, "m", "1", workspace="default") is None
