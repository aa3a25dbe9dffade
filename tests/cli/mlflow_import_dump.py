"""Read everything a tracking server holds through the real MLflow client, as JSON.

Run against MLflow (by the MLflow virtualenv's Python) and against mlgate (by the test's Python): the
two outputs must be equal. Usage: python mlflow_import_dump.py TRACKING_URI (credentials in
MLFLOW_TRACKING_USERNAME/PASSWORD).
"""

import hashlib
import json
import math
import os
import sys
import tempfile

import mlflow
from mlflow import MlflowClient
from mlflow.entities import ViewType


def _number(value: float):
    return "NaN" if math.isnan(value) else ("Infinity" if value == math.inf else value)


def _artifacts(client: MlflowClient, run_id: str, path: str, into: dict) -> dict:
    for entry in client.list_artifacts(run_id, path or None):
        if entry.is_dir:
            _artifacts(client, run_id, entry.path, into)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                local = client.download_artifacts(run_id, entry.path, tmp)
                with open(local, "rb") as handle:
                    into[entry.path] = [entry.file_size, hashlib.sha256(handle.read()).hexdigest()]
    return into


def _model_artifacts(location: str) -> dict:
    from mlflow.artifacts import download_artifacts

    found = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = download_artifacts(artifact_uri=location, dst_path=tmp)
        for directory, _, files in os.walk(root):
            for name in files:
                path = os.path.join(directory, name)
                with open(path, "rb") as handle:
                    found[os.path.relpath(path, root)] = hashlib.sha256(handle.read()).hexdigest()
    return found


def _run(client: MlflowClient, run) -> dict:
    info = run.info
    history = {key: sorted((m.step, m.timestamp, _number(m.value)) for m in client.get_metric_history(info.run_id, key))
               for key in run.data.metrics}
    return {
        "info": {"run_name": info.run_name, "experiment_id": info.experiment_id, "status": info.status,
                 "start_time": info.start_time, "end_time": info.end_time, "lifecycle_stage": info.lifecycle_stage,
                 "user_id": info.user_id, "artifact_uri": info.artifact_uri},
        "params": run.data.params,
        "tags": run.data.tags,
        "latest": {k: _number(v) for k, v in run.data.metrics.items()},
        "history": history,
        "datasets": sorted([d.dataset.name, d.dataset.digest, d.dataset.source_type, d.dataset.source,
                            d.dataset.schema, d.dataset.profile, sorted([t.key, t.value] for t in d.tags)]
                           for d in run.inputs.dataset_inputs),
        "artifacts": _artifacts(client, info.run_id, "", {}),
    }


def dump(uri: str) -> dict:
    mlflow.set_tracking_uri(uri)  # mlflow-artifacts: locations resolve against the tracking server
    client = MlflowClient(uri)
    out: dict = {"experiments": {}, "runs": {}, "models": {}, "logged_models": {}}
    for e in client.search_experiments(view_type=ViewType.ALL):
        out["experiments"][e.experiment_id] = {
            "name": e.name, "lifecycle_stage": e.lifecycle_stage, "tags": e.tags,
            "creation_time": e.creation_time, "last_update_time": e.last_update_time,
            "artifact_location": e.artifact_location}
        for model in client.search_logged_models([e.experiment_id]):
            out["logged_models"][model.model_id] = {
                "name": model.name, "experiment_id": model.experiment_id, "status": str(model.status),
                "params": model.params, "tags": model.tags, "source_run_id": model.source_run_id,
                "model_type": model.model_type, "artifact_location": model.artifact_location,
                "creation_timestamp": model.creation_timestamp,
                "artifacts": _model_artifacts(model.artifact_location)}
        for run in client.search_runs([e.experiment_id], run_view_type=ViewType.ALL, max_results=1000):
            out["runs"][run.info.run_id] = _run(client, run)
    for m in client.search_registered_models():
        versions = {}
        for v in client.search_model_versions(f"name='{m.name}'"):
            versions[v.version] = {
                "source": v.source, "run_id": v.run_id, "current_stage": v.current_stage, "tags": v.tags,
                "description": v.description, "status": v.status, "creation_timestamp": v.creation_timestamp,
                "download_uri": client.get_model_version_download_uri(m.name, v.version)}
        out["models"][m.name] = {
            "description": m.description, "tags": m.tags, "aliases": m.aliases,
            "creation_timestamp": m.creation_timestamp, "versions": versions,
            # Versions' own alias lists differ (MLflow's search leaves them empty): compare by lookup.
            "by_alias": {a: client.get_model_version_by_alias(m.name, a).version for a in m.aliases}}
    return out


if __name__ == "__main__":
    json.dump(dump(sys.argv[1]), sys.stdout, sort_keys=True)
