"""Log runs and a logged model through a real MLflow server whose artifact root is gs:// or wasbs://.

Usage: python mlflow_cloud_populate.py TRACKING_URI OUT_JSON. The server runs with
``--default-artifact-root <store URI> --no-serve-artifacts``, so MLflow's client writes the artifacts to
the store itself (STORAGE_EMULATOR_HOST or AZURE_STORAGE_CONNECTION_STRING name the emulator); run by a
Python whose MLflow has the google-cloud-storage and azure-storage-blob SDKs.
"""

import json
import os
import sys
import tempfile

from mlflow import MlflowClient


def main(uri: str, out_path: str) -> None:
    client = MlflowClient(uri)
    experiment = client.create_experiment("cloud/import")
    run = client.create_run(experiment, run_name="trained").info.run_id
    client.log_text(run, "artifact_path: model\nflavors: {}\n", "model/MLmodel")
    client.log_dict(run, {"rows": 10, "auc": 0.91}, "eval/summary.json")
    client.log_text(run, "", "empty.txt")
    client.log_text(run, "deep", "a/b/c/d/deep.txt")
    client.log_text(run, "accents and spaces", "notes/résumé final.txt")
    with tempfile.TemporaryDirectory() as scratch:
        # Larger than one read chunk of the import and of the SDKs' first ranged read, not a multiple of either.
        weights = os.path.join(scratch, "weights.bin")
        with open(weights, "wb") as handle:
            handle.write(os.urandom(5 * 1024 * 1024 + 12345))
        client.log_artifact(run, weights, "model")
        second = client.create_run(experiment, run_name="second").info.run_id
        client.log_text(second, "second run", "notes.txt")
        logged = client.create_logged_model(experiment, name="clf", source_run_id=run)
        mlmodel = os.path.join(scratch, "MLmodel")
        with open(mlmodel, "w") as handle:
            handle.write("flavors: {}\n")
        client.log_model_artifact(logged.model_id, mlmodel)
        client.finalize_logged_model(logged.model_id, "READY")
    with open(out_path, "w") as out:
        json.dump({"experiment": experiment, "runs": [run, second], "logged_model": logged.model_id,
                   "artifact_uri": client.get_run(run).info.artifact_uri,
                   "model_location": client.get_logged_model(logged.model_id).artifact_location}, out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
