"""The real ``mlflow`` client drives mlgate's model registry (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import mlflow
import pytest
from mlflow.exceptions import MlflowException, RestException

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def _quiet_stage_deprecation():
    # Stages are deprecated in MLflow but still served; the client warns on every call.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        yield


def _logged_model_run(mlflow_client, name: str) -> str:
    """A run (created through the client) with an MLflow model directory at artifact path ``model``."""
    experiment_id = mlflow_client.create_experiment(name)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_text("flavors: {}\nartifact_path: model\n", "model/MLmodel")
        mlflow.log_text("weights", "model/data/weights.txt")
    return run.info.run_id


def test_registered_model_crud(mlflow_client, unique_name):
    created = mlflow_client.create_registered_model(unique_name, tags={"team": "vision"}, description="first")
    assert created.name == unique_name
    got = mlflow_client.get_registered_model(unique_name)
    assert got.description == "first"
    assert got.tags == {"team": "vision"}
    assert got.creation_timestamp == created.creation_timestamp
    mlflow_client.update_registered_model(unique_name, description="second")
    assert mlflow_client.get_registered_model(unique_name).description == "second"
    mlflow_client.set_registered_model_tag(unique_name, "tier", "gold")
    mlflow_client.delete_registered_model_tag(unique_name, "team")
    assert mlflow_client.get_registered_model(unique_name).tags == {"tier": "gold"}
    mlflow_client.rename_registered_model(unique_name, unique_name + "-renamed")
    renamed = mlflow_client.get_registered_model(unique_name + "-renamed")
    assert renamed.tags == {"tier": "gold"}
    assert renamed.description == "second"
    with pytest.raises(RestException) as missing:
        mlflow_client.get_registered_model(unique_name)
    assert missing.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(RestException) as duplicate:
        mlflow_client.create_registered_model(unique_name + "-renamed")
    assert duplicate.value.error_code == "RESOURCE_ALREADY_EXISTS"
    mlflow_client.delete_registered_model(unique_name + "-renamed")
    with pytest.raises(RestException):
        mlflow_client.get_registered_model(unique_name + "-renamed")


def test_register_model_from_a_run_and_download_it(mlflow_client, unique_name, tmp_path: Path):
    run_id = _logged_model_run(mlflow_client, unique_name)
    version = mlflow.register_model(f"runs:/{run_id}/model", unique_name, tags={"origin": "e2e"})
    assert version.version == "1"
    assert version.run_id == run_id
    run = mlflow_client.get_run(run_id)
    assert version.source == f"{run.info.artifact_uri}/model"
    got = mlflow_client.get_model_version(unique_name, "1")
    assert got.status == "READY"
    assert got.tags == {"origin": "e2e"}
    assert got.current_stage == "None"
    assert mlflow_client.get_model_version_download_uri(unique_name, "1") == f"{run.info.artifact_uri}/model"
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{unique_name}/1", dst_path=str(tmp_path)))
    assert (local / "MLmodel").read_text().startswith("flavors: {}")
    assert (local / "data" / "weights.txt").read_text() == "weights"
    # A second registration of the same run gets the next number.
    assert mlflow.register_model(f"runs:/{run_id}/model", unique_name).version == "2"
    latest = mlflow_client.get_registered_model(unique_name).latest_versions
    assert [v.version for v in latest] == ["2"]


def test_versions_aliases_tags_and_stages(mlflow_client, unique_name):
    run_id = _logged_model_run(mlflow_client, unique_name)
    mlflow_client.create_registered_model(unique_name)
    source = f"{mlflow_client.get_run(run_id).info.artifact_uri}/model"
    for _ in range(3):
        mlflow_client.create_model_version(unique_name, source, run_id=run_id)
    # Created without one, descriptions and run links read back as "" (never None), as from MLflow's server.
    fresh = mlflow_client.get_model_version(unique_name, "3")
    assert (fresh.description, fresh.run_link) == ("", "")
    assert mlflow_client.get_registered_model(unique_name).description == ""
    mlflow_client.set_registered_model_alias(unique_name, "champion", "2")
    assert mlflow_client.get_model_version_by_alias(unique_name, "champion").version == "2"
    assert mlflow_client.get_registered_model(unique_name).aliases == {"champion": "2"}
    assert mlflow_client.get_model_version(unique_name, "2").aliases == ["champion"]
    mlflow_client.delete_registered_model_alias(unique_name, "champion")
    assert mlflow_client.get_registered_model(unique_name).aliases == {}

    mlflow_client.set_model_version_tag(unique_name, "1", "validated", "yes")
    mlflow_client.update_model_version(unique_name, "1", description="baseline")
    v1 = mlflow_client.get_model_version(unique_name, "1")
    assert v1.tags == {"validated": "yes"}
    assert v1.description == "baseline"
    mlflow_client.delete_model_version_tag(unique_name, "1", "validated")
    assert mlflow_client.get_model_version(unique_name, "1").tags == {}

    mlflow_client.transition_model_version_stage(unique_name, "1", "Production")
    moved = mlflow_client.transition_model_version_stage(unique_name, "3", "production",
                                                          archive_existing_versions=True)
    assert moved.current_stage == "Production"
    assert mlflow_client.get_model_version(unique_name, "1").current_stage == "Archived"
    latest = mlflow_client.get_latest_versions(unique_name, stages=["Production"])
    assert [(v.version, v.current_stage) for v in latest] == [("3", "Production")]
    with pytest.raises(MlflowException):
        mlflow_client.transition_model_version_stage(unique_name, "2", "Nowhere")

    mlflow_client.delete_model_version(unique_name, "2")
    with pytest.raises(RestException) as gone:
        mlflow_client.get_model_version(unique_name, "2")
    assert gone.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    remaining = mlflow_client.search_model_versions(f"name = '{unique_name}'", order_by=["version_number ASC"])
    assert [v.version for v in remaining] == ["1", "3"]
    assert [v.version for v in mlflow_client.search_model_versions(f"run_id = '{run_id}'")] == ["3", "1"]


def test_search_with_filters_and_pagination(mlflow_client, unique_name):
    names = [f"{unique_name}-{i}" for i in range(5)]
    for i, name in enumerate(names):
        mlflow_client.create_registered_model(name, tags={"parity": "even" if i % 2 == 0 else "odd"})
    found = mlflow_client.search_registered_models(f"name LIKE '{unique_name}-%'", order_by=["name ASC"])
    assert [m.name for m in found] == names
    even = mlflow_client.search_registered_models(f"name LIKE '{unique_name}-%' AND tags.parity = 'even'")
    assert sorted(m.name for m in even) == [names[0], names[2], names[4]]
    pages, token = [], None
    for _ in range(5):
        page = mlflow_client.search_registered_models(f"name ILIKE '{unique_name.upper()}-%'", max_results=2,
                                                      order_by=["name DESC"], page_token=token)
        pages.append([m.name for m in page])
        token = page.token
        if not token:
            break
    assert pages == [[names[4], names[3]], [names[2], names[1]], [names[0]]]
    with pytest.raises(RestException) as bad:
        mlflow_client.search_registered_models("name = ")
    assert bad.value.error_code == "INVALID_PARAMETER_VALUE"


def test_unsafe_sources_are_refused(mlflow_client, unique_name):
    mlflow_client.create_registered_model(unique_name)
    for source in ("/etc/passwd", "file:///etc/passwd", "s3://bucket/a/../../b", "s3://bucket/%2e%2e/b"):
        with pytest.raises(RestException) as refused:
            mlflow_client.create_model_version(unique_name, source)
        assert refused.value.error_code == "INVALID_PARAMETER_VALUE"
    assert mlflow_client.search_model_versions(f"name = '{unique_name}'") == []


def test_register_a_logged_model(mlflow_client, unique_name, tmp_path: Path):
    experiment_id = mlflow_client.create_experiment(unique_name)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        logged = mlflow.initialize_logged_model(name="clf")
        model_dir = tmp_path / "model"
        model_dir.mkdir()
        (model_dir / "MLmodel").write_text("flavors: {}\n")
        mlflow_client.log_model_artifacts(logged.model_id, str(model_dir))
        mlflow.finalize_logged_model(logged.model_id, "READY")
    version = mlflow.register_model(f"models:/{logged.model_id}", unique_name)
    assert version.source == f"models:/{logged.model_id}"
    assert version.run_id == run.info.run_id
    location = mlflow_client.get_logged_model(logged.model_id).artifact_location
    assert mlflow_client.get_model_version_download_uri(unique_name, version.version) == location
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{unique_name}/{version.version}",
                                                     dst_path=str(tmp_path / "dl")))
    assert (local / "MLmodel").read_text() == "flavors: {}\n"
    tag = mlflow_client.get_logged_model(logged.model_id).tags["mlflow.modelVersions"]
    # The server records the version on the logged model and the fluent client appends it once more, so
    # the entry appears twice, exactly as against MLflow's own server.
    entries = json.loads(tag)
    assert entries
    assert all(e == {"name": unique_name, "version": version.version} for e in entries)
