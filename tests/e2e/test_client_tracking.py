"""The real mlflow client (MlflowClient and the fluent API) against a real mlgate server, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import math
import time

import pytest

pytestmark = pytest.mark.e2e


def _tags(run) -> dict[str, str]:
    return dict(run.data.tags)


def test_experiment_lifecycle(mlflow_client, unique_name):
    from mlflow.entities import ViewType  # noqa: F401  (imported to show the client module loads)
    from mlflow.exceptions import MlflowException

    client = mlflow_client
    eid = client.create_experiment(unique_name, tags={"team": "vision", "stage": "dev"})
    exp = client.get_experiment(eid)
    assert exp.name == unique_name
    assert exp.lifecycle_stage == "active"
    assert exp.artifact_location == f"mlflow-artifacts:/{eid}"
    assert exp.tags == {"team": "vision", "stage": "dev"}
    assert client.get_experiment_by_name(unique_name).experiment_id == eid

    client.set_experiment_tag(eid, "stage", "prod")
    client.delete_experiment_tag(eid, "team")
    assert client.get_experiment(eid).tags == {"stage": "prod"}

    client.rename_experiment(eid, unique_name + "-renamed")
    assert client.get_experiment(eid).name == unique_name + "-renamed"
    assert client.get_experiment_by_name(unique_name) is None

    with pytest.raises(MlflowException) as dup:
        client.create_experiment(unique_name + "-renamed")
    assert dup.value.error_code == "RESOURCE_ALREADY_EXISTS"

    run_id = client.create_run(eid).info.run_id
    client.delete_experiment(eid)
    assert client.get_experiment(eid).lifecycle_stage == "deleted"
    assert client.get_run(run_id).info.lifecycle_stage == "deleted"
    client.restore_experiment(eid)
    assert client.get_experiment(eid).lifecycle_stage == "active"
    assert client.get_run(run_id).info.lifecycle_stage == "active"

    with pytest.raises(MlflowException) as missing:
        client.get_experiment("987654321")
    assert missing.value.error_code == "RESOURCE_DOES_NOT_EXIST"

    with pytest.raises(MlflowException) as unsafe:
        client.create_experiment(unique_name + "-unsafe", artifact_location="file:///etc")
    assert unsafe.value.error_code == "INVALID_PARAMETER_VALUE"


def test_client_run_logging(mlflow_client, unique_name):
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.exceptions import MlflowException

    client = mlflow_client
    eid = client.create_experiment(unique_name)
    run = client.create_run(eid, run_name="client-run", tags={"owner": "e2e"}, start_time=1700000000000)
    run_id = run.info.run_id
    assert run.info.run_name == "client-run"
    assert run.info.status == "RUNNING"
    assert run.info.start_time == 1700000000000
    assert run.info.artifact_uri == f"mlflow-artifacts:/{eid}/{run_id}/artifacts"

    client.log_param(run_id, "lr", "0.01")
    client.log_param(run_id, "lr", "0.01")  # the same value again is fine
    with pytest.raises(MlflowException) as changed:
        client.log_param(run_id, "lr", "0.02")
    assert changed.value.error_code == "INVALID_PARAMETER_VALUE"

    for step, value in enumerate([0.9, 0.5, 0.25]):
        client.log_metric(run_id, "loss", value, timestamp=1000 + step, step=step)
    client.log_metric(run_id, "nan_metric", float("nan"), timestamp=5)
    client.log_metric(run_id, "inf_metric", float("inf"), timestamp=5)
    client.set_tag(run_id, "phase", "train")
    client.set_tag(run_id, "temp", "x")
    client.delete_tag(run_id, "temp")
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric("acc", 0.8, now, 0), Metric("acc", 0.9, now + 1, 1)],
                     params=[Param("batch_size", "32"), Param("optimizer", "adam")],
                     tags=[RunTag("batch_tag", "yes")])

    got = client.get_run(run_id)
    assert got.data.params == {"lr": "0.01", "batch_size": "32", "optimizer": "adam"}
    assert got.data.metrics["loss"] == 0.25
    assert got.data.metrics["acc"] == 0.9
    assert math.isnan(got.data.metrics["nan_metric"])
    assert got.data.metrics["inf_metric"] == math.inf
    tags = _tags(got)
    assert tags["owner"] == "e2e"
    assert tags["phase"] == "train"
    assert tags["batch_tag"] == "yes"
    assert tags["mlflow.runName"] == "client-run"
    assert "temp" not in tags

    loss = client.get_metric_history(run_id, "loss")
    assert [(m.step, m.value, m.timestamp) for m in loss] == [(0, 0.9, 1000), (1, 0.5, 1001), (2, 0.25, 1002)]
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "acc")] == [(0, 0.8), (1, 0.9)]

    client.update_run(run_id, name="renamed-run")
    assert client.get_run(run_id).info.run_name == "renamed-run"
    assert _tags(client.get_run(run_id))["mlflow.runName"] == "renamed-run"

    client.set_terminated(run_id, status="FINISHED", end_time=1700000009999)
    info = client.get_run(run_id).info
    assert info.status == "FINISHED"
    assert info.end_time == 1700000009999

    client.delete_run(run_id)
    assert client.get_run(run_id).info.lifecycle_stage == "deleted"
    with pytest.raises(MlflowException):
        client.log_param(run_id, "late", "1")
    client.restore_run(run_id)
    assert client.get_run(run_id).info.lifecycle_stage == "active"
    assert "late" not in client.get_run(run_id).data.params

    with pytest.raises(MlflowException) as unknown:
        client.get_run("0" * 32)
    assert unknown.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_fluent_api(mlflow_client, unique_name):
    import mlflow
    import pandas as pd
    from mlflow.exceptions import MlflowException

    experiment = mlflow.set_experiment(unique_name)
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [0, 1, 0]})
    dataset = mlflow.data.from_pandas(df, source="s3://bucket/train.csv", name="train-set", targets="y")
    with mlflow.start_run(run_name="parent") as parent:
        mlflow.log_param("alpha", 0.5)
        mlflow.log_params({"beta": 2, "gamma": "g"})
        for step in range(3):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_metrics({"acc": 0.7, "f1": 0.6}, step=5)
        mlflow.set_tag("kind", "sweep")
        mlflow.set_tags({"a": "1", "b": "2"})
        mlflow.log_input(dataset, context="training")
        with mlflow.start_run(run_name="child", nested=True) as child:
            mlflow.log_metric("child_metric", 3.0)
        parent_id, child_id = parent.info.run_id, child.info.run_id

    client = mlflow_client
    got = client.get_run(parent_id)
    assert got.info.experiment_id == experiment.experiment_id
    assert got.info.run_name == "parent"
    assert got.info.status == "FINISHED"
    assert got.data.params == {"alpha": "0.5", "beta": "2", "gamma": "g"}
    assert got.data.metrics == {"loss": pytest.approx(1 / 3), "acc": 0.7, "f1": 0.6}
    tags = _tags(got)
    assert (tags["kind"], tags["a"], tags["b"]) == ("sweep", "1", "2")
    assert [(m.step, m.value) for m in client.get_metric_history(parent_id, "loss")] == [
        (0, 1.0), (1, 0.5), (2, pytest.approx(1 / 3))]
    assert [(m.step, m.value) for m in client.get_metric_history(parent_id, "acc")] == [(5, 0.7)]

    inputs = got.inputs.dataset_inputs
    assert len(inputs) == 1
    assert inputs[0].dataset.name == "train-set"
    assert inputs[0].dataset.digest == dataset.digest
    assert inputs[0].dataset.source_type == "s3"
    assert "train.csv" in inputs[0].dataset.source
    assert inputs[0].dataset.schema == dataset.to_dict()["schema"]
    assert {t.key: t.value for t in inputs[0].tags} == {"mlflow.data.context": "training"}

    child_run = client.get_run(child_id)
    assert child_run.info.run_name == "child"
    assert _tags(child_run)["mlflow.parentRunId"] == parent_id
    assert child_run.data.metrics == {"child_metric": 3.0}

    mlflow.delete_run(child_id)
    assert client.get_run(child_id).info.lifecycle_stage == "deleted"
    client.restore_run(child_id)
    assert client.get_run(child_id).info.lifecycle_stage == "active"

    # set_experiment on an existing name reuses it; a deleted experiment cannot be set until restored.
    assert mlflow.set_experiment(unique_name).experiment_id == experiment.experiment_id
    mlflow.delete_experiment(experiment.experiment_id)
    assert mlflow.get_experiment_by_name(unique_name).lifecycle_stage == "deleted"
    assert client.get_run(parent_id).info.lifecycle_stage == "deleted"
    with pytest.raises(MlflowException):
        mlflow.set_experiment(unique_name)
    client.restore_experiment(experiment.experiment_id)
    assert mlflow.set_experiment(unique_name).experiment_id == experiment.experiment_id
    assert client.get_run(parent_id).info.lifecycle_stage == "active"


def test_log_batch_over_the_client_limit_is_split_and_complete(mlflow_client, unique_name):
    from mlflow.entities import Metric

    client = mlflow_client
    run_id = client.create_run(client.create_experiment(unique_name)).info.run_id
    # The client splits batches at MLflow's 1000-entity limit; every point must arrive.
    metrics = [Metric("series", float(i), 1000 + i, i) for i in range(2500)]
    client.log_batch(run_id, metrics=metrics)
    history = client.get_metric_history(run_id, "series")
    assert [(m.step, m.value) for m in history] == [(i, float(i)) for i in range(2500)]
    assert client.get_run(run_id).data.metrics["series"] == 2499.0


@pytest.mark.parametrize("database_uri", ["sqlite", "postgresql"], indirect=True)
def test_data_survives_a_server_restart(tmp_path, database_uri, monkeypatch):
    """Everything written through one server process is read back by a new process on the same database."""
    import mlflow
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities import DatasetInput, Metric, Param, RunTag

    from tests.conftest import start_server

    server = start_server(tmp_path / "first", database_uri)
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", server.admin_username)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", server.admin_password)
        client = MlflowClient(server.url)
        eid = client.create_experiment("persisted", tags={"k": "v"})
        deleted_eid = client.create_experiment("persisted-deleted")
        client.delete_experiment(deleted_eid)
        run_id = client.create_run(eid, run_name="kept", tags={"t": "1"}).info.run_id
        client.log_batch(run_id, metrics=[Metric("m", float(i), 10 + i, i) for i in range(5)],
                         params=[Param("p", "x")], tags=[RunTag("u", "2")])
        client.log_metric(run_id, "nan", float("nan"), timestamp=3)
        dataset = mlflow.data.from_pandas(pd.DataFrame({"a": [1.5]}), source="s3://b/d.csv", name="d")
        client.log_inputs(run_id, datasets=[DatasetInput(dataset._to_mlflow_entity(), [])])
        client.set_terminated(run_id, end_time=99)
        deleted_run = client.create_run(eid).info.run_id
        client.delete_run(deleted_run)
        # JSON text, so that NaN compares equal to NaN.
        before = json.dumps(client.get_run(run_id).to_dictionary(), sort_keys=True)
        before_exp = client.get_experiment(eid)
    finally:
        server.stop()

    server = start_server(tmp_path / "second", database_uri)
    try:
        client = MlflowClient(server.url)
        assert json.dumps(client.get_run(run_id).to_dictionary(), sort_keys=True) == before
        exp = client.get_experiment(eid)
        assert (exp.name, exp.tags, exp.creation_time, exp.artifact_location) == (
            before_exp.name, before_exp.tags, before_exp.creation_time, before_exp.artifact_location)
        assert client.get_experiment(deleted_eid).lifecycle_stage == "deleted"
        assert client.get_run(deleted_run).info.lifecycle_stage == "deleted"
        assert [(m.step, m.value) for m in client.get_metric_history(run_id, "m")] == [
            (i, float(i)) for i in range(5)]
        run = client.get_run(run_id)
        assert run.data.params == {"p": "x"}
        assert run.data.metrics["m"] == 4.0
        assert math.isnan(run.data.metrics["nan"])
        assert run.info.status == "FINISHED"
        assert run.info.end_time == 99
        assert run.inputs.dataset_inputs[0].dataset.name == "d"
        # The new process keeps allocating fresh ids after the old ones.
        assert int(client.create_experiment("after-restart")) > int(deleted_eid)
    finally:
        server.stop()
