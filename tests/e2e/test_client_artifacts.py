"""The real ``mlflow`` client logs, lists and downloads artifacts through mlgate (SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import httpx
import pytest
import yaml

from tests.e2e.conftest import stored_artifact

pytestmark = pytest.mark.e2e

MIB = 1024 * 1024


def files_under(top: Path) -> dict[str, bytes]:
    """Relative path -> content for every file below ``top``."""
    return {p.relative_to(top).as_posix(): p.read_bytes() for p in sorted(top.rglob("*")) if p.is_file()}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def peak_rss_bytes(pid: int) -> int:
    """The process's peak resident set size (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("VmHWM not found")


@pytest.fixture
def run(mlflow_client, unique_name):
    import mlflow

    mlflow.set_experiment(unique_name)
    with mlflow.start_run() as active:
        yield active


def test_log_artifact_and_download_it_back(run, mlflow_client, tmp_path):
    import mlflow

    source = tmp_path / "notes.txt"
    source.write_text("first artifact\n")
    mlflow.log_artifact(str(source))
    mlflow.log_artifact(str(source), artifact_path="nested/dir")

    run_id = run.info.run_id
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")
    out = tmp_path / "out"
    out.mkdir()
    top = mlflow_client.download_artifacts(run_id, "notes.txt", str(out))
    assert Path(top).read_text() == "first artifact\n"
    deep = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="nested/dir/notes.txt", dst_path=str(out))
    assert Path(deep).read_text() == "first artifact\n"


def test_log_artifacts_tree_list_and_download(run, mlflow_client, tmp_path):
    import mlflow

    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "top.txt").write_text("top")
    (tree / "a" / "mid.json").write_text('{"k": 1}')
    (tree / "a" / "b" / "leaf.bin").write_bytes(os.urandom(4096))
    mlflow.log_artifacts(str(tree), artifact_path="tree")

    run_id = run.info.run_id
    root = mlflow_client.list_artifacts(run_id)
    assert [(f.path, f.is_dir) for f in root] == [("tree", True)]
    level = mlflow_client.list_artifacts(run_id, "tree")
    assert [(f.path, f.is_dir, f.file_size) for f in level] == [("tree/a", True, None), ("tree/top.txt", False, 3)]
    deeper = mlflow_client.list_artifacts(run_id, "tree/a/b")
    assert [(f.path, f.file_size) for f in deeper] == [("tree/a/b/leaf.bin", 4096)]

    out = tmp_path / "download"
    out.mkdir()
    local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="tree", dst_path=str(out))
    assert files_under(Path(local)) == files_under(tree)


def test_log_text_dict_and_image(run, tmp_path):
    import mlflow
    import numpy as np

    mlflow.log_text("hello, mlgate ✓", "texts/greeting.txt")
    mlflow.log_dict({"alpha": 0.5, "layers": [1, 2, 3]}, "config/params.json")
    mlflow.log_dict({"name": "model", "depth": 4}, "config/params.yaml")
    pixels = np.zeros((8, 6, 3), dtype=np.uint8)
    pixels[2, 3] = [255, 128, 7]
    mlflow.log_image(pixels, "images/dot.png")

    base = run.info.artifact_uri
    assert mlflow.artifacts.load_text(f"{base}/texts/greeting.txt") == "hello, mlgate ✓"
    assert mlflow.artifacts.load_dict(f"{base}/config/params.json") == {"alpha": 0.5, "layers": [1, 2, 3]}
    # load_dict parses JSON only; the YAML file is downloaded and parsed here.
    yaml_file = mlflow.artifacts.download_artifacts(f"{base}/config/params.yaml", dst_path=str(tmp_path))
    assert yaml.safe_load(Path(yaml_file).read_text()) == {"name": "model", "depth": 4}
    image = mlflow.artifacts.load_image(f"{base}/images/dot.png")
    assert image.size == (6, 8)
    assert np.array_equal(np.asarray(image), pixels)


def test_ui_listing_and_get_artifact_by_run(run, e2e_server):
    import mlflow

    mlflow.log_dict({"x": 1}, "ui/data.json")
    run_id = run.info.run_id
    listing = httpx.get(f"{e2e_server.url}/ajax-api/2.0/mlflow/artifacts/list",
                        params={"run_id": run_id, "path": "ui"}, auth=e2e_server.admin_auth, timeout=10)
    assert listing.status_code == 200
    assert listing.json() == {
        "root_uri": run.info.artifact_uri,
        "files": [{"path": "ui/data.json", "is_dir": False, "file_size": len(json.dumps({"x": 1}, indent=2))}],
    }
    got = httpx.get(f"{e2e_server.url}/get-artifact", params={"run_uuid": run_id, "path": "ui/data.json"},
                    auth=e2e_server.admin_auth, timeout=10)
    assert got.status_code == 200
    assert json.loads(got.content) == {"x": 1}
    assert got.headers["content-disposition"] == 'attachment; filename="data.json"'


def test_100_mib_round_trip_with_flat_server_memory(run, mlflow_client, e2e_server, tmp_path):
    import mlflow

    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        for _ in range(100):
            f.write(os.urandom(MIB))
    expected = sha256_of(big)
    pid = e2e_server.process.pid
    peak_before = peak_rss_bytes(pid)

    mlflow.log_artifact(str(big), artifact_path="large")
    listed = mlflow_client.list_artifacts(run.info.run_id, "large")
    assert [(f.path, f.file_size) for f in listed] == [("large/big.bin", 100 * MIB)]
    out = tmp_path / "out"
    out.mkdir()
    local = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="large/big.bin",
                                                dst_path=str(out))
    assert sha256_of(Path(local)) == expected

    # Streaming in both directions: the server's peak memory may not grow by anything near 100 MiB.
    growth = peak_rss_bytes(pid) - peak_before
    assert growth < 32 * MIB, f"server peak RSS grew by {growth / MIB:.1f} MiB during a 100 MiB round trip"


def test_trace_spans_round_trip_through_the_trace_layout(mlflow_client, unique_name, e2e_server, monkeypatch):
    import mlflow
    import mlflow.tracing.provider
    from mlflow.store.tracking.rest_store import RestStore
    from packaging.version import Version

    # The client writes traces.json through the artifact proxy only for servers older than 3.4 (newer ones
    # get spans over OTLP, tested in test_client_mlflow3.py): pin its version probe to take this path.
    monkeypatch.setattr(RestStore, "_get_server_version", staticmethod(lambda host_creds: Version("3.3.0")))
    mlflow.tracing.provider.reset()

    experiment_id = mlflow.set_experiment(unique_name).experiment_id

    @mlflow.trace
    def add(a, b):
        return a + b

    assert add(1, 2) == 3
    mlflow.flush_trace_async_logging()  # traces are exported in the background
    trace_id = mlflow.get_last_active_trace_id()
    trace = mlflow.get_trace(trace_id)
    assert [span.outputs for span in trace.data.spans] == [3]
    location = f"mlflow-artifacts:/{experiment_id}/traces/{trace_id}/artifacts"
    assert trace.info.tags["mlflow.artifactLocation"] == location
    stored = stored_artifact(e2e_server, f"{experiment_id}/traces/{trace_id}/artifacts/traces.json")
    assert json.loads(stored)["spans"][0]["name"] == "add"
    mlflow.tracing.provider.reset()


def test_logged_model_artifacts_use_the_model_layout(mlflow_client, unique_name):
    import mlflow

    class Echo(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input):
            return model_input

    experiment_id = mlflow.set_experiment(unique_name).experiment_id
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(name="echo", python_model=Echo())
    names = {f.path for f in mlflow.artifacts.list_artifacts(info.model_uri)}
    assert {"MLmodel", "python_model.pkl", "requirements.txt"} <= names
    location = f"mlflow-artifacts:/{experiment_id}/models/{info.model_id}/artifacts"
    assert "python_function" in mlflow.artifacts.load_text(f"{location}/MLmodel")
    loaded = mlflow.pyfunc.load_model(info.model_uri)
    assert loaded.metadata.model_id == info.model_id
