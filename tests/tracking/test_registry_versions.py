"""Model-version endpoints: create, get, update, delete, tags, stage transitions, download URI."""

from __future__ import annotations

import pytest

from tests.tracking.registry_support import api_fixture, error_of  # noqa: F401  (fixture)


def test_versions_are_numbered_per_model(api):
    api.create_model("a")
    api.create_model("b")
    assert [api.create_version("a")["version"] for _ in range(3)] == ["1", "2", "3"]
    assert api.create_version("b")["version"] == "1"


def test_create_returns_every_field(api):
    api.create_model("m")
    run_id = api.create_run()
    version = api.create_version(
        "m", source=f"runs:/{run_id}/model", run_id=run_id, description="desc",
        run_link="http://ui/run", tags=[{"key": "k", "value": "v"}])
    assert version["name"] == "m"
    assert version["version"] == "1"
    assert version["source"] == f"runs:/{run_id}/model"
    assert version["run_id"] == run_id
    assert version["run_link"] == "http://ui/run"
    assert version["description"] == "desc"
    assert version["status"] == "READY"
    assert version["current_stage"] == "None"
    assert version["tags"] == [{"key": "k", "value": "v"}]
    assert api.get("/model-versions/get", {"name": "m", "version": "1"}).json()["model_version"] == version
    # The registered model's last-updated time follows its newest version.
    model = api.get("/registered-models/get", {"name": "m"}).json()["registered_model"]
    assert model["last_updated_timestamp"] == version["creation_timestamp"]


def test_create_for_missing_model_is_404(api):
    r = api.post("/model-versions/create", {"name": "nope", "source": "s3://b/k"})
    assert error_of(r) == (404, "RESOURCE_DOES_NOT_EXIST")


@pytest.mark.parametrize("body", [
    {"name": "m"},
    {"name": "m", "source": ""},
    {"name": "m", "source": 7},
    {"name": "m", "source": "s3://b/k", "tags": [{"key": "", "value": "v"}]},
    {"name": "m", "source": "s3://b/k", "tags": [{"value": "v"}]},
    {"name": "m", "source": "s3://b/k", "run_id": "../../x"},
    {"name": "m", "source": "s3://b/k", "description": "d" * 100_001},
])
def test_malformed_create_changes_nothing(api, body):
    api.create_model("m")
    r = api.post("/model-versions/create", body)
    assert error_of(r) == (400, "INVALID_PARAMETER_VALUE")
    assert "latest_versions" not in api.get("/registered-models/get", {"name": "m"}).json()["registered_model"]


@pytest.mark.parametrize("version", ["abc", "", "0", "-1", "1.5", "99999999999"])
def test_get_with_bad_version_is_400(api, version):
    api.create_model("m")
    api.create_version("m")
    assert error_of(api.get("/model-versions/get", {"name": "m", "version": version})) == (
        400, "INVALID_PARAMETER_VALUE")


def test_get_missing_version_is_404(api):
    api.create_model("m")
    assert error_of(api.get("/model-versions/get", {"name": "m", "version": "1"})) == (404, "RESOURCE_DOES_NOT_EXIST")


def test_update_description_with_patch(api):
    api.create_model("m")
    api.create_version("m", description="old")
    r = api.patch("/model-versions/update", {"name": "m", "version": "1", "description": "new"})
    assert r.status_code == 200
    assert r.json()["model_version"]["description"] == "new"
    assert api.get("/model-versions/get", {"name": "m", "version": "1"}).json()["model_version"]["description"] == "new"
    assert error_of(api.patch("/model-versions/update", {"name": "m", "version": "2", "description": "x"})) == (
        404, "RESOURCE_DOES_NOT_EXIST")


def test_delete_version_keeps_numbering_and_drops_its_aliases(api):
    api.create_model("m")
    api.create_version("m")
    api.create_version("m")
    api.post("/registered-models/alias", {"name": "m", "alias": "a", "version": "2"})
    r = api.delete("/model-versions/delete", body={"name": "m", "version": "2"})
    assert r.status_code == 200
    assert r.json() == {}
    assert api.get("/model-versions/get", {"name": "m", "version": "2"}).status_code == 404
    assert "aliases" not in api.get("/registered-models/get", {"name": "m"}).json()["registered_model"]
    assert api.create_version("m")["version"] == "3"
    versions = api.get("/model-versions/search", {"filter": "name = 'm'"}).json()["model_versions"]
    assert sorted(v["version"] for v in versions) == ["1", "3"]
    assert error_of(api.delete("/model-versions/delete", body={"name": "m", "version": "2"})) == (
        404, "RESOURCE_DOES_NOT_EXIST")


def test_delete_with_query_string(api):
    api.create_model("m")
    api.create_version("m")
    assert api.delete("/model-versions/delete", params={"name": "m", "version": "1"}).status_code == 200
    assert api.get("/model-versions/get", {"name": "m", "version": "1"}).status_code == 404


def test_version_tags(api):
    api.create_model("m")
    api.create_version("m")
    r = api.post("/model-versions/set-tag", {"name": "m", "version": "1", "key": "k", "value": "v"})
    assert r.status_code == 200
    assert api.get("/model-versions/get", {"name": "m", "version": "1"}).json()["model_version"]["tags"] == [
        {"key": "k", "value": "v"}]
    assert api.delete("/model-versions/delete-tag", body={"name": "m", "version": "1", "key": "k"}).status_code == 200
    assert "tags" not in api.get("/model-versions/get", {"name": "m", "version": "1"}).json()["model_version"]
    assert error_of(api.post("/model-versions/set-tag", {"name": "m", "version": "5", "key": "k", "value": "v"})) == (
        404, "RESOURCE_DOES_NOT_EXIST")
    r = api.post("/model-versions/set-tag", {"name": "m", "version": "1", "key": "a b!", "value": "v"})
    assert error_of(r) == (400, "INVALID_PARAMETER_VALUE")
    assert error_of(api.delete("/model-versions/delete-tag", body={"name": "m", "version": "x", "key": "k"})) == (
        400, "INVALID_PARAMETER_VALUE")


def test_transition_stage_with_archiving(api):
    api.create_model("m")
    for _ in range(3):
        api.create_version("m")
    api.post("/model-versions/transition-stage", {"name": "m", "version": "1", "stage": "Production"})
    api.post("/model-versions/transition-stage", {"name": "m", "version": "2", "stage": "production"})
    r = api.post("/model-versions/transition-stage",
                 {"name": "m", "version": "3", "stage": "Production", "archive_existing_versions": True})
    assert r.status_code == 200
    assert r.json()["model_version"]["current_stage"] == "Production"
    stages = {v["version"]: v["current_stage"]
              for v in api.get("/model-versions/search", {"filter": "name='m'"}).json()["model_versions"]}
    assert stages == {"1": "Archived", "2": "Archived", "3": "Production"}


def test_transition_stage_errors_change_nothing(api):
    api.create_model("m")
    api.create_version("m")
    bad = [
        ({"name": "m", "version": "1", "stage": "Bogus"}, 400),
        ({"name": "m", "version": "1", "stage": "Archived", "archive_existing_versions": True}, 400),
        ({"name": "m", "version": "1", "stage": "None", "archive_existing_versions": "maybe"}, 400),
        ({"name": "m", "version": "1"}, 400),
        ({"name": "m", "version": "2", "stage": "Staging"}, 404),
    ]
    for body, status in bad:
        assert api.post("/model-versions/transition-stage", body).status_code == status, body
    version = api.get("/model-versions/get", {"name": "m", "version": "1"}).json()["model_version"]
    assert version["current_stage"] == "None"


def test_download_uri_for_runs_source_is_the_runs_artifact_location(api):
    api.create_model("m")
    run_id = api.create_run()
    api.create_version("m", source=f"runs:/{run_id}/model", run_id=run_id)
    api.create_version("m", source="s3://bucket/path/model")
    r = api.get("/model-versions/get-download-uri", {"name": "m", "version": "1"})
    assert r.json() == {"artifact_uri": f"mlflow-artifacts:/0/{run_id}/artifacts/model"}
    r = api.get("/model-versions/get-download-uri", {"name": "m", "version": "2"})
    assert r.json() == {"artifact_uri": "s3://bucket/path/model"}
    assert error_of(api.get("/model-versions/get-download-uri", {"name": "m", "version": "3"})) == (
        404, "RESOURCE_DOES_NOT_EXIST")


def test_models_source_copies_the_referenced_versions_location(api):
    api.create_model("src")
    api.create_version("src", source="s3://bucket/src-model")
    api.post("/registered-models/alias", {"name": "src", "alias": "best", "version": "1"})
    api.create_model("copy")
    version = api.create_version("copy", source="models:/src@best")
    assert version["source"] == "models:/src/1"
    assert api.get("/model-versions/get-download-uri", {"name": "copy", "version": "1"}).json() == {
        "artifact_uri": "s3://bucket/src-model"}
    assert error_of(api.post("/model-versions/create", {"name": "copy", "source": "models:/src/7"})) == (
        404, "RESOURCE_DOES_NOT_EXIST")
