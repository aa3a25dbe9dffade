"""The real mlflow client searches runs and experiments on a real server (SQLite and PostgreSQL)."""

from __future__ import annotations

import mlflow
import pytest
from mlflow.entities import Dataset, DatasetInput, InputTag, ViewType
from mlflow.exceptions import MlflowException


@pytest.fixture
def five_runs(mlflow_client, unique_name):
    """An experiment with five runs: metrics acc/loss, param lr, tag team, and two dataset inputs."""
    exp_id = mlflow_client.create_experiment(unique_name)
    run_ids = []
    for i in range(5):
        run = mlflow_client.create_run(exp_id, run_name=f"run-{i}", start_time=1_000 + i,
                                       tags={"team": "vision" if i % 2 else "nlp"})
        rid = run.info.run_id
        mlflow_client.log_metric(rid, "acc", i / 10, timestamp=1, step=0)
        if i != 2:
            mlflow_client.log_metric(rid, "loss", 10 - i, timestamp=1, step=0)
        mlflow_client.log_param(rid, "lr", "0.1" if i < 3 else "0.01")
        run_ids.append(rid)
    for rid, name, context in [(run_ids[0], "train-set", "training"), (run_ids[3], "eval-set", "eval")]:
        mlflow_client.log_inputs(rid, datasets=[DatasetInput(
            Dataset(name=name, digest=f"d-{name}", source_type="local", source='{"uri": "x"}'),
            tags=[InputTag("mlflow.data.context", context)])])
    return exp_id, run_ids


def _names(runs):
    return [r.info.run_name for r in runs]


def test_client_search_runs_filters(mlflow_client, five_runs):
    exp_id, _ = five_runs
    cases = [
        ("metrics.acc > 0.25", ["run-4", "run-3"]),
        ("metrics.loss <= 7 AND params.lr = '0.01'", ["run-4", "run-3"]),
        ("params.lr = '0.1' AND tags.team = 'vision'", ["run-1"]),
        ("tags.team LIKE 'vis%'", ["run-3", "run-1"]),
        ("attributes.run_name ILIKE 'RUN-2'", ["run-2"]),
        ("tags.mlflow.runName = 'run-0'", ["run-0"]),
        ("attributes.status = 'RUNNING' AND attributes.start_time >= 1003", ["run-4", "run-3"]),
        ("datasets.name = 'train-set'", ["run-0"]),
        ("datasets.context IN ('eval', 'other')", ["run-3"]),
        ("params.missing IS NULL AND metrics.`acc` < 0.15", ["run-1", "run-0"]),
    ]
    for text, expected in cases:
        assert _names(mlflow_client.search_runs([exp_id], filter_string=text)) == expected, text


def test_client_search_runs_order_and_pages(mlflow_client, five_runs):
    exp_id, run_ids = five_runs
    ordered = mlflow_client.search_runs([exp_id], order_by=["metrics.loss DESC"])
    assert _names(ordered) == ["run-0", "run-1", "run-3", "run-4", "run-2"]  # run-2 has no loss: last
    seen, token = [], None
    for _ in range(5):
        page = mlflow_client.search_runs([exp_id], max_results=2, order_by=["params.lr", "metrics.acc ASC"],
                                         page_token=token)
        seen += _names(page)
        token = page.token
        if not token:
            break
    assert seen == ["run-3", "run-4", "run-0", "run-1", "run-2"]
    mlflow_client.delete_run(run_ids[4])
    assert "run-4" not in _names(mlflow_client.search_runs([exp_id]))
    assert _names(mlflow_client.search_runs([exp_id], run_view_type=ViewType.DELETED_ONLY)) == ["run-4"]


def test_fluent_search_runs_pandas_and_list(mlflow_client, five_runs):
    exp_id, run_ids = five_runs
    frame = mlflow.search_runs(experiment_ids=[exp_id], filter_string="metrics.acc >= 0.2",
                               order_by=["metrics.acc DESC"])
    assert list(frame["run_id"]) == [run_ids[4], run_ids[3], run_ids[2]]
    assert list(frame["metrics.acc"]) == [0.4, 0.3, 0.2]
    assert list(frame["params.lr"]) == ["0.01", "0.01", "0.1"]
    assert list(frame["tags.team"]) == ["nlp", "vision", "nlp"]
    everywhere = mlflow.search_runs(search_all_experiments=True, filter_string=f"attributes.run_id = '{run_ids[1]}'")
    assert list(everywhere["run_id"]) == [run_ids[1]]
    runs = mlflow.search_runs(experiment_ids=[exp_id], filter_string="params.lr = '0.1'", output_format="list")
    assert sorted(r.info.run_id for r in runs) == sorted(run_ids[:3])
    assert all(r.data.params["lr"] == "0.1" for r in runs)


def test_client_search_runs_bad_filter_is_a_clear_error(mlflow_client, five_runs):
    exp_id, _ = five_runs
    with pytest.raises(MlflowException) as info:
        mlflow_client.search_runs([exp_id], filter_string="metrics.acc > 0.1 OR metrics.acc < 0")
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "'OR' is not supported" in info.value.message
    with pytest.raises(MlflowException) as info:
        mlflow_client.search_runs([exp_id], page_token="not-a-token")
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"


def test_client_search_experiments(mlflow_client, unique_name):
    ids = [mlflow_client.create_experiment(f"{unique_name}-{n}", tags={"n": str(n)}) for n in range(5)]
    mlflow_client.delete_experiment(ids[4])
    prefix = f"name LIKE '{unique_name}-%'"
    found = mlflow_client.search_experiments(filter_string=prefix, order_by=["name DESC"])
    assert [e.experiment_id for e in found] == [ids[3], ids[2], ids[1], ids[0]]
    tagged = mlflow_client.search_experiments(filter_string=f"{prefix} AND tags.n = '2'")
    assert [e.name for e in tagged] == [f"{unique_name}-2"]
    deleted = mlflow_client.search_experiments(view_type=ViewType.DELETED_ONLY, filter_string=prefix)
    assert [e.experiment_id for e in deleted] == [ids[4]]
    seen, token = [], None
    for _ in range(5):
        page = mlflow_client.search_experiments(filter_string=prefix, order_by=["experiment_id"], max_results=3,
                                                page_token=token)
        seen += [e.experiment_id for e in page]
        token = page.token
        if not token:
            break
    assert seen == ids[:4]
    assert [e.name for e in mlflow.search_experiments(filter_string=f"name = '{unique_name}-1'")] == [
        f"{unique_name}-1"
    ]
