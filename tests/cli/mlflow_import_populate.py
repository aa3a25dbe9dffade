"""Fill a real MLflow basic-auth server through MLflow's own clients (run by the MLflow virtualenv's Python).

Usage: python mlflow_import_populate.py TRACKING_URI OUT_JSON, with the MLflow admin's credentials in
MLFLOW_TRACKING_USERNAME/PASSWORD and the new users' passwords as JSON in IMPORT_TEST_PASSWORDS; or
python mlflow_import_populate.py --direct DB_PATH OUT_JSON: the client writes to SQLite itself (no
server), so artifacts are local paths under ./mlruns of the working directory.
"""

import json
import os
import sys

from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.server import get_app_client

T0 = 1_700_000_000_000


def main(uri: str, out_path: str) -> None:
    passwords = json.loads(os.environ["IMPORT_TEST_PASSWORDS"])
    client = MlflowClient(uri)
    team_a = client.create_experiment("team-a/churn", tags={"owner": "team-a", "purpose": "import test"})
    team_b = client.create_experiment("team-b/fraud")
    old = client.create_experiment("old/abandoned")

    baseline = client.create_run(team_a, run_name="baseline", tags={"stage": "dev"}, start_time=T0).info.run_id
    client.log_batch(baseline, metrics=[Metric("loss", 1.0 / (i + 1), T0 + i * 1000, i) for i in range(60)])
    client.log_batch(baseline, metrics=[Metric("acc", 0.5 + i / 100, T0 + i * 500, i) for i in range(40)],
                     params=[Param("lr", "0.01"), Param("depth", "6"), Param("long", "x" * 600)],
                     tags=[RunTag("mlflow.note.content", "the baseline run")])
    client.log_metric(baseline, "odd", float("nan"), timestamp=T0, step=0)
    client.log_metric(baseline, "odd", float("inf"), timestamp=T0 + 1, step=1)
    client.log_metric(baseline, "odd", -2.5, timestamp=T0 + 2, step=1)  # same step, later timestamp
    dataset = Dataset(name="churn-train", digest="d41d8cd9", source_type="local",
                      source='{"uri": "/data/churn.csv"}', schema='{"mlflow_colspec": [{"name": "x"}]}',
                      profile='{"num_rows": 10}')
    client.log_inputs(baseline, datasets=[DatasetInput(dataset, [InputTag("mlflow.data.context", "training")])])
    client.log_text(baseline, "artifact_path: model\n", "model/MLmodel")
    client.log_text(baseline, "weights" * 1000, "model/weights.bin")
    client.log_dict(baseline, {"rows": 10}, "eval/summary.json")
    client.set_terminated(baseline, "FINISHED", end_time=T0 + 90_000)

    tuned = client.create_run(team_a, run_name="tuned", start_time=T0 + 100_000).info.run_id
    client.log_batch(tuned, metrics=[Metric("loss", 0.1 / (i + 1), T0 + 100_000 + i, i) for i in range(25)],
                     params=[Param("lr", "0.001")])
    client.log_text(tuned, "tuned", "notes.txt")
    client.set_terminated(tuned, "FAILED", end_time=T0 + 150_000)

    discarded = client.create_run(team_a, run_name="discarded", start_time=T0 + 200_000).info.run_id
    client.log_metric(discarded, "loss", 9.0, timestamp=T0 + 200_001, step=0)
    client.set_terminated(discarded, "KILLED", end_time=T0 + 200_002)
    client.delete_run(discarded)

    fraud = client.create_run(team_b, run_name="fraud-1", start_time=T0 + 300_000).info.run_id
    client.log_metric(fraud, "auc", 0.91, timestamp=T0 + 300_001, step=3)
    client.log_param(fraud, "model", "xgboost")

    forgotten = client.create_run(old, run_name="forgotten", start_time=T0 + 400_000).info.run_id
    client.set_terminated(forgotten, "FINISHED", end_time=T0 + 400_001)
    client.delete_experiment(old)

    client.create_registered_model("churn-model", tags={"team": "a"}, description="Churn classifier")
    artifact_uri = client.get_run(baseline).info.artifact_uri
    v1 = client.create_model_version("churn-model", f"runs:/{baseline}/model", run_id=baseline,
                                     tags={"validated": "yes"}, description="first")
    v2 = client.create_model_version("churn-model", f"{artifact_uri}/model", run_id=baseline)
    client.set_registered_model_alias("churn-model", "champion", v1.version)
    client.transition_model_version_stage("churn-model", v2.version, "Staging")
    client.set_model_version_tag("churn-model", v2.version, "candidate", "true")
    # An MLflow 3 logged model with params, tags and artifacts, registered as version 3 (source models:/<id>).
    logged = client.create_logged_model(team_a, name="churn-clf", source_run_id=baseline, params={"alpha": "0.5"},
                                        tags={"framework": "sklearn"}, model_type="classifier")
    local = os.path.join(os.path.dirname(out_path), "MLmodel")
    with open(local, "w") as handle:
        handle.write("flavors: {}\n")
    client.log_model_artifact(logged.model_id, local)
    client.finalize_logged_model(logged.model_id, "READY")
    client.create_model_version("churn-model", f"models:/{logged.model_id}", run_id=baseline,
                                model_id=logged.model_id)

    client.create_registered_model("fraud-model")
    client.create_model_version("fraud-model", f"runs:/{fraud}/model", run_id=fraud)

    auth = get_app_client("basic-auth", tracking_uri=uri)
    for name in ("alice", "bob", "carol"):
        auth.create_user(name, passwords[name])
    auth.grant_user_permission("alice", "experiment", str(team_a), "READ")
    auth.grant_user_permission("bob", "experiment", str(team_a), "EDIT")
    auth.grant_user_permission("alice", "registered_model", "churn-model", "READ")
    auth.grant_user_permission("bob", "registered_model", "churn-model", "MANAGE")
    # A named role becomes an mlgate group: carol reads every registered model through it.
    analysts = auth.create_role("default", "analysts", description="read every model")
    auth.add_role_permission(analysts.id, "registered_model", "*", "READ")
    auth.assign_role("carol", analysts.id)

    with open(out_path, "w") as out:
        json.dump({"experiments": {"team_a": team_a, "team_b": team_b, "old": old},
                   "runs": {"baseline": baseline, "tuned": tuned, "discarded": discarded, "fraud": fraud,
                            "forgotten": forgotten}, "logged_model": logged.model_id}, out)


def direct(db_path: str, out_path: str) -> None:
    client = MlflowClient(f"sqlite:///{db_path}")
    experiment = client.create_experiment("direct/local")
    run = client.create_run(experiment, run_name="local-run", start_time=T0).info.run_id
    client.log_batch(run, metrics=[Metric("m", i * 1.5, T0 + i, i) for i in range(5)], params=[Param("p", "1")])
    client.log_text(run, "hello from a local run", "dir/a.txt")
    client.set_terminated(run, "FINISHED", end_time=T0 + 10)
    logged = client.create_logged_model(experiment, name="local-model", source_run_id=run)
    local = os.path.join(os.path.dirname(out_path), "MLmodel")
    with open(local, "w") as handle:
        handle.write("flavors: {local: true}\n")
    client.log_model_artifact(logged.model_id, local)
    client.finalize_logged_model(logged.model_id, "READY")
    client.create_registered_model("local-model")
    artifact_uri = client.get_run(run).info.artifact_uri
    client.create_model_version("local-model", f"{artifact_uri}/dir", run_id=run)  # a local path source
    client.create_model_version("local-model", f"models:/{logged.model_id}", run_id=run, model_id=logged.model_id)
    with open(out_path, "w") as out:
        json.dump({"experiment": experiment, "run": run, "logged_model": logged.model_id,
                   "artifact_uri": artifact_uri}, out)


if __name__ == "__main__":
    if sys.argv[1] == "--direct":
        direct(sys.argv[2], sys.argv[3])
    else:
        main(sys.argv[1], sys.argv[2])
