"""Registered-model endpoints: create, get, rename, update, delete, tags, aliases, latest versions."""

from __future__ import annotations

import pytest

from tests.tracking.registry_support import A, api_fixture, error_of  # noqa: F401  (fixture)


def test_create_returns_model_with_tags_and_description(api):
    model = api.create_model("m", tags=[{"key": "team", "value": "ml"}], description="first")
    assert model["name"] == "m"
    assert model["description"] == "first"
    assert model["tags"] == [{"key": "team", "value": "ml"}]
    assert model["creation_timestamp"] == model["last_updated_timestamp"] > 0
    got = api.get("/registered-models/get", {"name": "m"}).json()["registered_model"]
    assert got == model


def test_duplicate_name_is_resource_already_exists(api):
    api.create_model("dup")
    r = api.post("/registered-models/create", {"name": "dup"})
    assert error_of(r) == (400, "RESOURCE_ALREADY_EXISTS")
    assert "dup" in r.json()["message"]


@pytest.mark.parametrize("name", ["", "   ", "a/b", "a:b", "./x", "x/..", "..", "a\x00b", "x" * 257])
def test_invalid_names_are_refused_and_nothing_is_created(api, name):
    r = api.post("/registered-models/create", {"name": name})
    assert error_of(r) == (400, "INVALID_PARAMETER_VALUE")
    assert "registered_models" not in api.get("/registered-models/search").json()


@pytest.mark.parametrize("body", [
    {},
    {"name": 5},
    {"name": "ok", "tags": "notalist"},
    {"name": "ok", "tags": [{"key": "bad key!", "value": "v"}]},
    {"name": "ok", "tags": [{"key": "k", "value": 3}]},
    {"name": "ok", "tags": [{"key": "../etc", "value": "v"}]},
    {"name": "ok", "tags": [{"key": "k" * 251, "value": "v"}]},
    {"name": "ok", "description": {"a": 1}},
])
def test_malformed_create_is_4xx_and_creates_nothing(api, body):
    r = api.post("/registered-models/create", body)
    assert r.status_code == 400
    assert r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert api.get("/registered-models/get", {"name": "ok"}).status_code == 404


def test_malformed_json_body_is_400(api):
    r = api.client.post(A + "/registered-models/create", content=b"{not json",
                        headers={"Content-Type": "application/json"})
    assert error_of(r) == (400, "MALFORMED_REQUEST")


def test_get_missing_model_is_404(api):
    r = api.get("/registered-models/get", {"name": "nope"})
    assert error_of(r) == (404, "RESOURCE_DOES_NOT_EXIST")
    assert error_of(api.get("/registered-models/get")) == (400, "INVALID_PARAMETER_VALUE")


def test_rename_moves_versions_tags_and_aliases(api):
    api.create_model("old", tags=[{"key": "k", "value": "v"}])
    api.create_version("old")
    api.post("/registered-models/alias", {"name": "old", "alias": "champ", "version": "1"})
    api.post("/model-versions/set-tag", {"name": "old", "version": "1", "key": "vk", "value": "vv"})
    r = api.post("/registered-models/rename", {"name": "old", "new_name": "new"})
    assert r.status_code == 200, r.text
    renamed = r.json()["registered_model"]
    assert renamed["name"] == "new"
    assert renamed["tags"] == [{"key": "k", "value": "v"}]
    assert renamed["aliases"] == [{"alias": "champ", "version": "1"}]
    assert api.get("/registered-models/get", {"name": "old"}).status_code == 404
    version = api.get("/model-versions/get", {"name": "new", "version": "1"}).json()["model_version"]
    assert version["name"] == "new"
    assert version["tags"] == [{"key": "vk", "value": "vv"}]
    assert version["aliases"] == ["champ"]
    by_alias = api.get("/registered-models/alias", {"name": "new", "alias": "champ"}).json()
    assert by_alias["model_version"]["version"] == "1"


def test_rename_errors(api):
    api.create_model("a")
    api.create_model("b")
    assert error_of(api.post("/registered-models/rename", {"name": "a", "new_name": "b"})) == (
        400, "RESOURCE_ALREADY_EXISTS")
    assert error_of(api.post("/registered-models/rename", {"name": "zz", "new_name": "c"})) == (
        404, "RESOURCE_DOES_NOT_EXIST")
    assert error_of(api.post("/registered-models/rename", {"name": "a", "new_name": "x/y"})) == (
        400, "INVALID_PARAMETER_VALUE")
    assert error_of(api.post("/registered-models/rename", {"name": "a"})) == (400, "INVALID_PARAMETER_VALUE")
    names = [m["name"] for m in api.get("/registered-models/search").json()["registered_models"]]
    assert names == ["a", "b"]


def test_update_description_with_patch(api):
    api.create_model("m", description="before")
    r = api.patch("/registered-models/update", {"name": "m", "description": "after"})
    assert r.status_code == 200
    assert r.json()["registered_model"]["description"] == "after"
    assert api.get("/registered-models/get", {"name": "m"}).json()["registered_model"]["description"] == "after"
    assert error_of(api.patch("/registered-models/update", {"name": "x", "description": "d"})) == (
        404, "RESOURCE_DOES_NOT_EXIST")
    # MLflow answers this path with PATCH only.
    assert api.post("/registered-models/update", {"name": "m", "description": "z"}).status_code == 405


@pytest.mark.parametrize("how", ["body", "query"])
def test_delete_removes_versions_tags_and_aliases(api, how):
    api.create_model("gone", tags=[{"key": "k", "value": "v"}])
    api.create_version("gone")
    api.post("/registered-models/alias", {"name": "gone", "alias": "a", "version": "1"})
    if how == "body":
        r = api.delete("/registered-models/delete", body={"name": "gone"})
    else:
        r = api.delete("/registered-models/delete", params={"name": "gone"})
    assert r.status_code == 200
    assert r.json() == {}
    assert api.get("/registered-models/get", {"name": "gone"}).status_code == 404
    assert "model_versions" not in api.get("/model-versions/search", {"filter": "name='gone'"}).json()
    # The name can be reused and starts from scratch.
    api.create_model("gone")
    fresh = api.get("/registered-models/get", {"name": "gone"}).json()["registered_model"]
    assert "tags" not in fresh
    assert "aliases" not in fresh
    assert "latest_versions" not in fresh
    assert api.create_version("gone")["version"] == "1"


def test_delete_missing_is_404(api):
    assert error_of(api.delete("/registered-models/delete", body={"name": "x"})) == (404, "RESOURCE_DOES_NOT_EXIST")


def test_set_and_delete_tag(api):
    api.create_model("m")
    assert api.post("/registered-models/set-tag", {"name": "m", "key": "k", "value": "1"}).status_code == 200
    assert api.post("/registered-models/set-tag", {"name": "m", "key": "k", "value": "2"}).status_code == 200
    tags = api.get("/registered-models/get", {"name": "m"}).json()["registered_model"]["tags"]
    assert tags == [{"key": "k", "value": "2"}]
    assert api.delete("/registered-models/delete-tag", body={"name": "m", "key": "k"}).status_code == 200
    assert "tags" not in api.get("/registered-models/get", {"name": "m"}).json()["registered_model"]
    # Deleting an absent tag is fine, as in MLflow; a missing model is not.
    assert api.delete("/registered-models/delete-tag", body={"name": "m", "key": "k"}).status_code == 200
    assert error_of(api.delete("/registered-models/delete-tag", body={"name": "x", "key": "k"})) == (
        404, "RESOURCE_DOES_NOT_EXIST")
    assert error_of(api.post("/registered-models/set-tag", {"name": "x", "key": "k", "value": "v"})) == (
        404, "RESOURCE_DOES_NOT_EXIST")
    assert error_of(api.post("/registered-models/set-tag", {"name": "m", "key": "", "value": "v"})) == (
        400, "INVALID_PARAMETER_VALUE")
    assert error_of(api.post("/registered-models/set-tag", {"name": "m", "key": "k", "value": "v" * 100_001})) == (
        400, "INVALID_PARAMETER_VALUE")


def test_aliases_set_get_move_delete(api):
    api.create_model("m")
    api.create_version("m")
    api.create_version("m")
    assert api.post("/registered-models/alias", {"name": "m", "alias": "champ", "version": "1"}).json() == {}
    got = api.get("/registered-models/alias", {"name": "m", "alias": "champ"}).json()["model_version"]
    assert got["version"] == "1"
    assert got["aliases"] == ["champ"]
    # Setting again moves the alias.
    api.post("/registered-models/alias", {"name": "m", "alias": "champ", "version": 2})
    moved = api.get("/registered-models/alias", {"name": "m", "alias": "champ"}).json()["model_version"]
    assert moved["version"] == "2"
    model = api.get("/registered-models/get", {"name": "m"}).json()["registered_model"]
    assert model["aliases"] == [{"alias": "champ", "version": "2"}]
    # "latest" resolves to the highest version without being settable.
    latest = api.get("/registered-models/alias", {"name": "m", "alias": "latest"}).json()["model_version"]
    assert latest["version"] == "2"
    assert api.delete("/registered-models/alias", body={"name": "m", "alias": "champ"}).status_code == 200
    r = api.get("/registered-models/alias", {"name": "m", "alias": "champ"})
    assert error_of(r) == (400, "INVALID_PARAMETER_VALUE")


@pytest.mark.parametrize(("alias", "version"), [("latest", "1"), ("LATEST", "1"), ("v1", "1"), ("V12", "1"),
                                           ("bad alias", "1"), ("", "1"), ("ok", "x"), ("ok", "0"), ("ok", "9")])
def test_bad_alias_requests_are_refused(api, alias, version):
    api.create_model("m")
    api.create_version("m")
    r = api.post("/registered-models/alias", {"name": "m", "alias": alias, "version": version})
    assert r.status_code in (400, 404)
    assert r.json()["error_code"] in ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST")
    assert "aliases" not in api.get("/registered-models/get", {"name": "m"}).json()["registered_model"]


def test_latest_versions_per_stage(api):
    api.create_model("m")
    for _ in range(4):
        api.create_version("m")
    api.post("/model-versions/transition-stage", {"name": "m", "version": "1", "stage": "Production"})
    api.post("/model-versions/transition-stage", {"name": "m", "version": "2", "stage": "staging"})
    api.post("/model-versions/transition-stage", {"name": "m", "version": "3", "stage": "Production"})
    r = api.post("/registered-models/get-latest-versions", {"name": "m", "stages": ["Production"]})
    assert [(v["version"], v["current_stage"]) for v in r.json()["model_versions"]] == [("3", "Production")]
    r = api.get("/registered-models/get-latest-versions", {"name": "m"})
    assert sorted((v["current_stage"], v["version"]) for v in r.json()["model_versions"]) == [
        ("None", "4"), ("Production", "3"), ("Staging", "2")]
    model = api.get("/registered-models/get", {"name": "m"}).json()["registered_model"]
    assert sorted(v["version"] for v in model["latest_versions"]) == ["2", "3", "4"]
    assert error_of(api.post("/registered-models/get-latest-versions", {"name": "m", "stages": ["Bogus"]})) == (
        400, "INVALID_PARAMETER_VALUE")
    assert error_of(api.get("/registered-models/get-latest-versions", {"name": "zz"})) == (
        404, "RESOURCE_DOES_NOT_EXIST")


def test_ajax_prefix_serves_the_same_router(api):
    api.create_model("m")
    r = api.client.get("/ajax-api/2.0/mlflow/registered-models/get", params={"name": "m"})
    assert r.status_code == 200
    assert r.json()["registered_model"]["name"] == "m"


@pytest.mark.parametrize(("path", "body"), [
    ("/registered-models/create", {"name": "n", "description": "a\x00b"}),
    ("/registered-models/create", {"name": "n", "tags": [{"key": "k", "value": "\x00"}]}),
    ("/registered-models/search", {"filter": "name = 'a\x00'"}),
    ("/model-versions/search", {"filter": "tags.k = '\x00'"}),
])
def test_nul_characters_are_refused_before_reaching_the_database(api, path, body):
    r = api.post(path, body)
    assert error_of(r) == (400, "INVALID_PARAMETER_VALUE")
    assert api.get("/registered-models/get", {"name": "n"}).status_code == 404
