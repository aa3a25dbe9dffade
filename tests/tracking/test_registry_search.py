"""Registered-model and model-version search: filters, ordering, pagination, prompts and visibility."""

from __future__ import annotations

import time

import pytest
from starlette.testclient import TestClient

from tests.conftest import TEST_ADMIN_TOKEN
from tests.tracking.registry_support import A, api_fixture, error_of  # noqa: F401  (fixture)
from tests.tracking.tracking_app import with_test_scope
from tracking.scope import ResourceScope, VisibilityScope

PROMPT_TAG = {"key": "mlflow.prompt.is_prompt", "value": "true"}


def _names(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [m["name"] for m in response.json().get("registered_models", [])]


def _models(api) -> None:
    api.create_model("alpha", tags=[{"key": "team", "value": "Vision"}, {"key": "tier", "value": "gold"}])
    api.create_model("Beta", tags=[{"key": "team", "value": "nlp"}])
    api.create_model("gamma", tags=[{"key": "team", "value": "vision-2"}])
    api.create_model("delta")


@pytest.mark.parametrize(("filter_string", "expected"), [
    ("", ["Beta", "alpha", "delta", "gamma"]),
    ("name = 'alpha'", ["alpha"]),
    ("name != 'alpha'", ["Beta", "delta", "gamma"]),
    ("name LIKE '%a'", ["Beta", "alpha", "delta", "gamma"]),
    ("name LIKE 'b%'", []),
    ("name ILIKE 'b%'", ["Beta"]),
    ("name IN ('alpha', 'delta')", ["alpha", "delta"]),
    ("tags.team = 'nlp'", ["Beta"]),
    ("tags.team != 'nlp'", ["alpha", "gamma"]),
    ("tags.team LIKE 'vision%'", ["gamma"]),
    ("tags.team ILIKE 'vision%'", ["alpha", "gamma"]),
    ("tags.`team` ILIKE 'VISION%' AND tags.tier = 'gold'", ["alpha"]),
    ("tags.team ILIKE 'vision%' AND name != 'alpha'", ["gamma"]),
])
def test_registered_model_filters(api, filter_string, expected):
    _models(api)
    assert _names(api.get("/registered-models/search", {"filter": filter_string})) == expected
    assert _names(api.post("/registered-models/search", {"filter": filter_string})) == expected


@pytest.mark.parametrize("filter_string", [
    "name = ", "nme = 'x'", "creation_timestamp > 5", "tags.team > 'a'", "name = 'a' OR name = 'b'",
    "tags.team IS NULL", "params.x = '1'", "name = 'unterminated", "(name = 'a')",
])
def test_bad_filters_are_400(api, filter_string):
    _models(api)
    r = api.get("/registered-models/search", {"filter": filter_string})
    assert error_of(r) == (400, "INVALID_PARAMETER_VALUE"), filter_string


def test_order_by_and_pagination(api):
    for name in ("m3", "m1", "m4", "m2", "m5"):
        api.create_model(name)
        time.sleep(0.002)  # distinct timestamps
    assert _names(api.get("/registered-models/search", {"order_by": ["name DESC"]})) == ["m5", "m4", "m3", "m2", "m1"]
    by_creation = _names(api.get("/registered-models/search", {"order_by": ["creation_timestamp ASC"]}))
    assert by_creation == ["m3", "m1", "m4", "m2", "m5"]
    api.patch("/registered-models/update", {"name": "m1", "description": "touched"})
    recent = _names(api.post("/registered-models/search", {"order_by": ["last_updated_timestamp DESC"]}))
    assert recent[0] == "m1"
    pages, token = [], None
    for _ in range(10):
        body = {"max_results": 2, "order_by": ["name ASC"], **({"page_token": token} if token else {})}
        r = api.post("/registered-models/search", body)
        pages.append(_names(r))
        token = r.json().get("next_page_token")
        if not token:
            break
    assert pages == [["m1", "m2"], ["m3", "m4"], ["m5"]]


def test_search_argument_errors(api):
    api.create_model("m")
    first = api.get("/registered-models/search", {"max_results": 0})
    assert error_of(first) == (400, "INVALID_PARAMETER_VALUE")
    assert error_of(api.get("/registered-models/search", {"max_results": 1001})) == (400, "INVALID_PARAMETER_VALUE")
    assert error_of(api.get("/registered-models/search", {"max_results": "x"})) == (400, "INVALID_PARAMETER_VALUE")
    assert error_of(api.get("/registered-models/search", {"order_by": "bogus"})) == (400, "INVALID_PARAMETER_VALUE")
    assert error_of(api.get("/registered-models/search", {"order_by": ["name", "name DESC"]})) == (
        400, "INVALID_PARAMETER_VALUE")
    assert error_of(api.get("/registered-models/search", {"page_token": "garbage"})) == (400, "INVALID_PARAMETER_VALUE")
    api.create_model("n")
    token = api.get("/registered-models/search", {"max_results": 1}).json()["next_page_token"]
    # A token belongs to the query that produced it.
    r = api.get("/registered-models/search", {"max_results": 1, "filter": "name != 'x'", "page_token": token})
    assert error_of(r) == (400, "INVALID_PARAMETER_VALUE")


def _versions(response) -> list[tuple[str, str]]:
    assert response.status_code == 200, response.text
    return [(v["name"], v["version"]) for v in response.json().get("model_versions", [])]


def test_model_version_filters_order_and_pages(api):
    api.create_model("a")
    api.create_model("b")
    run1, run2 = api.create_run(), api.create_run()
    api.create_version("a", source=f"runs:/{run1}/model", run_id=run1)
    api.create_version("a", source="s3://bucket/a/2", tags=[{"key": "stage", "value": "candidate"}])
    api.create_version("b", source=f"runs:/{run2}/model", run_id=run2, tags=[{"key": "stage", "value": "Done"}])
    search = lambda f, **kw: _versions(api.get("/model-versions/search", {"filter": f, **kw}))  # noqa: E731
    assert search("name = 'a'", order_by=["version_number ASC"]) == [("a", "1"), ("a", "2")]
    assert search("name = 'a' AND version_number > 1") == [("a", "2")]
    assert search("version_number = 1", order_by=["name"]) == [("a", "1"), ("b", "1")]
    assert search(f"run_id IN ('{run1}', '{run2}')", order_by=["name"]) == [("a", "1"), ("b", "1")]
    assert search(f"run_id = '{run2}'") == [("b", "1")]
    assert search("source_path LIKE 's3://%'") == [("a", "2")]
    assert search("tags.stage ILIKE 'c%'") == [("a", "2")]
    assert search("tag.stage = 'Done'") == [("b", "1")]
    assert search("name != 'a'") == [("b", "1")]
    for bad in ("version_number = 'x'", "version_number LIKE '1'", "source_path IN ('x')", "bogus = 'x'",
                "version_number = 1.5", "tags.x > 'a'", "version_number = 99999999999999999999999",
                "creation_timestamp < -99999999999999999999999"):
        assert error_of(api.get("/model-versions/search", {"filter": bad})) == (400, "INVALID_PARAMETER_VALUE"), bad
    seen, token = [], None
    for _ in range(10):
        params = {"max_results": 1, "order_by": ["name", "version_number"], **({"page_token": token} if token else {})}
        r = api.get("/model-versions/search", params)
        seen += _versions(r)
        token = r.json().get("next_page_token")
        if not token:
            break
    assert seen == [("a", "1"), ("a", "2"), ("b", "1")]
    assert error_of(api.get("/model-versions/search", {"max_results": 200_001})) == (400, "INVALID_PARAMETER_VALUE")
    r = api.get("/model-versions/search", {"order_by": ["source_path"]})
    assert error_of(r) == (400, "INVALID_PARAMETER_VALUE")


def test_prompts_are_listed_only_when_asked_for(api):
    api.create_model("model")
    api.create_version("model")
    api.create_model("prompt", tags=[PROMPT_TAG, {"key": "owner", "value": "x"}])
    api.create_version("prompt", source="dummy-source", tags=[PROMPT_TAG, {"key": "mlflow.prompt.text", "value": "Hi"}])
    assert _names(api.get("/registered-models/search")) == ["model"]
    assert _names(api.get("/registered-models/search", {"filter": "tags.owner = 'x'"})) == []
    prompt_filter = "tags.`mlflow.prompt.is_prompt` = 'true'"
    assert _names(api.get("/registered-models/search", {"filter": prompt_filter})) == ["prompt"]
    assert _names(api.get("/registered-models/search", {"filter": f"{prompt_filter} AND tags.owner = 'x'"})) == [
        "prompt"]
    # Asking for "not a prompt" explicitly still lists plain models only.
    assert _names(api.get("/registered-models/search", {"filter": "tags.`mlflow.prompt.is_prompt` = 'false'"})) == [
        "model"]
    assert _versions(api.get("/model-versions/search")) == [("model", "1")]
    version_filter = "name = 'prompt' AND tag.`mlflow.prompt.is_prompt` = 'true'"
    assert _versions(api.get("/model-versions/search", {"filter": version_filter})) == [("prompt", "1")]


def test_prompt_and_model_names_collide_as_in_mlflow(api):
    api.create_model("shared")
    r = api.post("/registered-models/create", {"name": "shared", "tags": [PROMPT_TAG]})
    assert error_of(r) == (400, "RESOURCE_ALREADY_EXISTS")
    assert "prompt" in r.json()["message"]


def test_visibility_scope_is_applied_inside_the_query(app_factory):
    app = app_factory()
    # Models are named in a scope by their stable ids (issue #18); an exact name is denied by name.
    visible = ResourceScope(unrestricted=False, name_patterns=("team-a-*",), denied_names=frozenset({"team-a-3"}))
    with_test_scope(app, lambda request: VisibilityScope(registered_models=visible))
    with TestClient(app, base_url="http://127.0.0.1:5000",
                    headers={"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}) as c:
        for i in range(1, 6):
            for team in ("a", "b"):
                name = f"team-{team}-{i}"
                assert c.post(A + "/registered-models/create", json={"name": name}).status_code == 200
                r = c.post(A + "/model-versions/create", json={"name": name, "source": "s3://b/k"})
                assert r.status_code == 200
        pages, token = [], None
        for _ in range(10):
            params = {"max_results": 2, **({"page_token": token} if token else {})}
            r = c.get(A + "/registered-models/search", params=params)
            pages.append(_names(r))
            token = r.json().get("next_page_token")
            if not token:
                break
        # Every page is full: hidden models are filtered in SQL, not after the page was cut.
        assert pages == [["team-a-1", "team-a-2"], ["team-a-4", "team-a-5"]]
        r = c.get(A + "/model-versions/search", params={"order_by": ["name"]})
        assert [v["name"] for v in r.json()["model_versions"]] == ["team-a-1", "team-a-2", "team-a-4", "team-a-5"]
