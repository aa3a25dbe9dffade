"""Model version ``source`` safety: local paths, file URIs and traversal are refused; lineage must match."""

from __future__ import annotations

import json

import pytest

from tests.tracking.registry_support import api_fixture, error_of  # noqa: F401  (fixture)

UNSAFE_SOURCES = [
    "/etc/passwd",
    "relative/dir",
    "./model",
    "file:///etc/passwd",
    "file://host/etc/passwd",
    "FILE:/etc/shadow",
    "C:\\Windows\\system32",
    "c:/windows",
    "s3://bucket/models/../../other",
    "s3://bucket/models/%2e%2e/%2e%2e/other",
    "s3://bucket/models/%252e%252e/other",
    "https://host/api/2.0/mlflow-artifacts/artifacts/../../../../etc",
    "mlflow-artifacts://host:5000/../../../",
    "mlflow-artifacts:/0/..%2f..%2f..%2fetc",
    "mlflow-artifacts:/0/abc\\..\\..\\etc",
    "s3://bucket/a/./b",
    "s3://bucket/a%00b",
    "runs://host/abc/model",
    "models://host/name/1",
    "models:/",
    "dummy-source",
]


@pytest.mark.parametrize("source", UNSAFE_SOURCES)
def test_unsafe_sources_are_refused_and_create_nothing(api, source):
    api.create_model("m")
    r = api.post("/model-versions/create", {"name": "m", "source": source})
    assert error_of(r) == (400, "INVALID_PARAMETER_VALUE"), source
    assert "latest_versions" not in api.get("/registered-models/get", {"name": "m"}).json()["registered_model"]


@pytest.mark.parametrize("source", ["s3://bucket/model", "gs://b/path/model", "wasbs://c@acct.blob.core.windows.net/m",
                                    "hdfs://namenode:8020/models/m", "https://models.example.com/m"])
def test_remote_sources_are_accepted(api, source):
    api.create_model("m")
    assert api.create_version("m", source=source)["source"] == source


def test_runs_source_must_match_run_id(api):
    api.create_model("m")
    run_a, run_b = api.create_run(), api.create_run()
    assert error_of(api.post("/model-versions/create", {"name": "m", "source": f"runs:/{run_a}/model"})) == (
        400, "INVALID_PARAMETER_VALUE")
    r = api.post("/model-versions/create", {"name": "m", "source": f"runs:/{run_a}/model", "run_id": run_b})
    assert error_of(r) == (400, "INVALID_PARAMETER_VALUE")
    r = api.post("/model-versions/create", {"name": "m", "source": "runs:/0123456789abcdef/model",
                                            "run_id": "0123456789abcdef"})
    assert error_of(r) == (400, "INVALID_PARAMETER_VALUE")  # no such run
    assert api.create_version("m", source=f"runs:/{run_a}/model", run_id=run_a)["run_id"] == run_a


def test_proxied_source_must_lie_inside_the_runs_artifacts(api):
    api.create_model("m")
    run_a, run_b = api.create_run(), api.create_run()
    inside = f"mlflow-artifacts:/0/{run_a}/artifacts/model"
    assert error_of(api.post("/model-versions/create", {"name": "m", "source": inside})) == (
        400, "INVALID_PARAMETER_VALUE")
    assert error_of(api.post("/model-versions/create", {"name": "m", "source": inside, "run_id": run_b})) == (
        400, "INVALID_PARAMETER_VALUE")
    outside = f"mlflow-artifacts:/0/{run_b}/artifacts/model"
    assert error_of(api.post("/model-versions/create", {"name": "m", "source": outside, "run_id": run_a})) == (
        400, "INVALID_PARAMETER_VALUE")
    # A proxied HTTP URL on another host is not inside a run's mlflow-artifacts: location.
    other_host = f"https://evil.example/api/2.0/mlflow-artifacts/artifacts/0/{run_a}/artifacts/model"
    assert error_of(api.post("/model-versions/create", {"name": "m", "source": other_host, "run_id": run_a})) == (
        400, "INVALID_PARAMETER_VALUE")
    version = api.create_version("m", source=inside, run_id=run_a)
    assert version["source"] == inside
    assert version["run_id"] == run_a


def test_models_id_source_needs_matching_model_id(api):
    api.create_model("m")
    r = api.post("/model-versions/create", {"name": "m", "source": "models:/m-0123456789"})
    assert error_of(r) == (400, "INVALID_PARAMETER_VALUE")
    r = api.post("/model-versions/create", {"name": "m", "source": "models:/m-0123456789", "model_id": "m-0123456789"})
    assert error_of(r) == (400, "INVALID_PARAMETER_VALUE")  # no such logged model


def test_prompt_versions_need_a_placeholder_source_and_a_prompt(api):
    api.create_model("p", tags=[{"key": "mlflow.prompt.is_prompt", "value": "true"}])
    prompt_tag = [{"key": "mlflow.prompt.is_prompt", "value": "true"}]
    r = api.post("/model-versions/create", {"name": "p", "source": "s3://b/k", "tags": prompt_tag})
    assert error_of(r) == (400, "INVALID_PARAMETER_VALUE")
    r = api.post("/model-versions/create", {"name": "p", "source": "s3://b/k"})
    assert error_of(r) == (400, "INVALID_PARAMETER_VALUE")  # a prompt gets no model versions
    api.create_model("m")
    r = api.post("/model-versions/create", {"name": "m", "source": "dummy-source", "tags": prompt_tag})
    assert error_of(r) == (400, "INVALID_PARAMETER_VALUE")  # a model gets no prompt versions
    assert api.create_version("p", source="prompt-template", tags=prompt_tag)["version"] == "1"


def test_logged_model_source_resolves_to_its_artifact_location(api):
    api.create_model("m")
    run_id = api.create_run()
    model_id = api.create_logged_model(run_id)
    version = api.create_version("m", source=f"models:/{model_id}", model_id=model_id)
    assert version["source"] == f"models:/{model_id}"
    assert version["model_id"] == model_id
    assert version["run_id"] == run_id  # taken from the logged model, as MLflow does
    uri = api.get("/model-versions/get-download-uri", {"name": "m", "version": "1"}).json()["artifact_uri"]
    assert uri == f"mlflow-artifacts:/0/models/{model_id}/artifacts"
    inside = f"mlflow-artifacts:/0/models/{model_id}/artifacts/sub"
    assert api.create_version("m", source=inside, model_id=model_id)["version"] == "2"
    # The logged model lists its registered versions, as MLflow's UI expects.
    tags = {t["key"]: t["value"] for t in api.get(f"/logged-models/{model_id}").json()["model"]["info"]["tags"]}
    assert json.loads(tags["mlflow.modelVersions"]) == [{"name": "m", "version": "1"}, {"name": "m", "version": "2"}]
    r = api.post("/model-versions/create", {"name": "m", "source": f"runs:/{run_id}/model", "model_id": model_id})
    assert error_of(r) == (400, "INVALID_PARAMETER_VALUE")
    other = f"mlflow-artifacts:/0/{run_id}/artifacts/model"
    r = api.post("/model-versions/create", {"name": "m", "source": other, "model_id": model_id})
    assert error_of(r) == (400, "INVALID_PARAMETER_VALUE")
