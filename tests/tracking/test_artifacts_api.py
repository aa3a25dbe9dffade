"""Artifact endpoints on a real app: MLflow's response shapes, safe download headers, limits, by-run access."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.conftest import TEST_ADMIN_TOKEN
from tracking.db.tables import experiments, runs

# CI's PostgreSQL pass leaves these out: they test artifact paths and bytes, not the database.
pytestmark = pytest.mark.database_incidental

R = "/api/2.0/mlflow-artifacts"
A = "/api/2.0/mlflow"


def new_run(client: TestClient, artifact_uri: str | None = None, experiment_id: int | None = None) -> tuple[int, str]:
    """Insert an experiment (unless given) and a run straight into the database; returns their ids."""
    engine = client.app.state.tracking.engine
    run_id = uuid.uuid4().hex
    with engine.begin() as conn:
        if experiment_id is None:
            experiment_id = conn.execute(
                experiments.insert().values(
                    name=f"exp-{run_id}", artifact_location="", lifecycle_stage="active",
                    creation_time=0, last_update_time=0,
                )
            ).inserted_primary_key[0]
        conn.execute(
            runs.insert().values(
                run_uuid=run_id, name="r", experiment_id=experiment_id, user_id="u", status="RUNNING",
                start_time=0, lifecycle_stage="active",
                artifact_uri=artifact_uri or f"mlflow-artifacts:/{experiment_id}/{run_id}/artifacts",
            )
        )
    return experiment_id, run_id


def admin_client(app) -> TestClient:
    """A TestClient for an app built with non-default settings, authenticated like the ``client`` fixture."""
    c = TestClient(app, base_url="http://127.0.0.1:5000")
    c.headers["Authorization"] = f"Bearer {TEST_ADMIN_TOKEN}"
    return c


def artifact_root(client: TestClient) -> Path:
    return Path(client.app.state.tracking.artifact_root)


def test_put_get_list_delete_round_trip(client):
    base = f"1/{uuid.uuid4().hex}/artifacts"
    assert client.put(f"{R}/artifacts/{base}/dir/a.txt", content=b"alpha").json() == {}
    assert client.put(f"{R}/artifacts/{base}/b.bin", content=b"\x00" * 10).status_code == 200

    listing = client.get(f"{R}/artifacts", params={"path": base})
    assert listing.json() == {
        "files": [{"path": "b.bin", "is_dir": False, "file_size": 10}, {"path": "dir", "is_dir": True}]
    }
    sub = client.get(f"{R}/artifacts", params={"path": f"{base}/dir"})
    assert sub.json() == {"files": [{"path": "a.txt", "is_dir": False, "file_size": 5}]}

    got = client.get(f"{R}/artifacts/{base}/dir/a.txt")
    assert got.status_code == 200
    assert got.content == b"alpha"

    assert client.delete(f"{R}/artifacts/{base}/dir").json() == {}
    assert client.get(f"{R}/artifacts", params={"path": f"{base}/dir"}).json() == {}
    assert client.get(f"{R}/artifacts/{base}/dir/a.txt").status_code == 404


def test_empty_or_missing_directory_lists_as_empty_object(client):
    assert client.get(f"{R}/artifacts", params={"path": f"1/{uuid.uuid4().hex}/artifacts"}).json() == {}


def test_listing_a_file_is_empty_as_in_mlflow(client):
    base = f"1/{uuid.uuid4().hex}/artifacts"
    client.put(f"{R}/artifacts/{base}/f.txt", content=b"x")
    assert client.get(f"{R}/artifacts", params={"path": f"{base}/f.txt"}).json() == {}


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("page.html", "text/html"),
        ("image.svg", "image/svg+xml"),
        ("notes.txt", "text/plain"),
        ("config.json", "text/plain"),
        ("MLmodel", "text/plain"),
        ("picture.png", "image/png"),
        ("weights.unknownext", "application/octet-stream"),
    ],
)
def test_downloads_are_attachments_that_browsers_may_not_sniff(client, name, content_type):
    path = f"1/{uuid.uuid4().hex}/artifacts/{name}"
    body = b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>"
    client.put(f"{R}/artifacts/{path}", content=body)
    response = client.get(f"{R}/artifacts/{path}")
    assert response.content == body
    assert response.headers["content-type"].split(";")[0] == content_type
    assert response.headers["content-disposition"] == f'attachment; filename="{name}"'
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in response.headers["content-security-policy"]
    assert response.headers["content-length"] == str(len(body))


def test_non_ascii_names_get_an_rfc5987_filename(client):
    path = f"1/{uuid.uuid4().hex}/artifacts/résumé 報告.txt"
    client.put(f"{R}/artifacts/{path}", content=b"x")
    response = client.get(f"{R}/artifacts/{path}")
    assert response.headers["content-disposition"] == (
        "attachment; filename=\"resume .txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%E5%A0%B1%E5%91%8A.txt"
    )


def test_directory_download_is_refused(client):
    base = f"1/{uuid.uuid4().hex}/artifacts"
    client.put(f"{R}/artifacts/{base}/d/f.txt", content=b"x")
    response = client.get(f"{R}/artifacts/{base}/d")
    assert response.status_code == 400
    assert response.json() == {
        "error_code": "INVALID_PARAMETER_VALUE",
        "message": "Artifact path refers to a directory, not a file: 'd'",
    }


def test_model_and_trace_layouts_are_writable(client):
    for path in ("0/models/m-0123abcd/artifacts/model.pkl", "3/traces/tr-0123abcd/artifacts/traces.json"):
        assert client.put(f"{R}/artifacts/{path}", content=b"{}").status_code == 200
        assert client.get(f"{R}/artifacts/{path}").content == b"{}"


def test_upload_over_the_declared_limit_is_refused_before_reading(app_factory):
    with admin_client(app_factory(extra={"max_artifact_bytes": 1000})) as c:
        path = f"1/{uuid.uuid4().hex}/artifacts/big.bin"
        response = c.put(f"{R}/artifacts/{path}", content=b"x" * 1001)
        assert response.status_code == 413
        assert response.json() == {
            "error_code": "RESOURCE_EXHAUSTED",
            "message": "The artifact is larger than this server's limit of 1000 bytes.",
        }
        assert not (artifact_root(c) / "1").exists()
        assert c.put(f"{R}/artifacts/{path}", content=b"x" * 1000).status_code == 200


def test_streamed_upload_over_the_limit_leaves_nothing_behind(app_factory):
    with admin_client(app_factory(extra={"max_artifact_bytes": 100_000})) as c:
        base = f"1/{uuid.uuid4().hex}/artifacts"
        c.put(f"{R}/artifacts/{base}/existing.txt", content=b"keep")

        def chunks():  # no Content-Length: the limit must be enforced while streaming
            for _ in range(30):
                yield b"y" * 10_000

        response = c.put(f"{R}/artifacts/{base}/deep/new/big.bin", content=chunks())
        assert response.status_code == 413
        assert response.json()["error_code"] == "RESOURCE_EXHAUSTED"
        run_dir = artifact_root(c) / base
        assert sorted(os.listdir(run_dir)) == ["existing.txt"]


def test_streamed_upload_within_the_limit_is_stored_whole(client):
    path = f"1/{uuid.uuid4().hex}/artifacts/stream.bin"
    pieces = [os.urandom(70_000) for _ in range(40)]
    response = client.put(f"{R}/artifacts/{path}", content=iter(pieces))
    assert response.status_code == 200
    data = b"".join(pieces)
    stored = artifact_root(client) / path
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    assert client.get(f"{R}/artifacts/{path}").content == data


@pytest.mark.parametrize("step", ["create", "complete", "abort"])
def test_multipart_is_answered_as_unsupported_like_mlflow(client, step):
    path = f"1/{uuid.uuid4().hex}/artifacts"
    body = {"path": "local.bin", "num_parts": 2, "upload_id": "u", "parts": []}
    response = client.post(f"{R}/mpu/{step}/{path}", json=body)
    assert response.status_code == 501
    assert response.json() == {
        "error_code": "NOT_IMPLEMENTED",
        "message": "Multipart upload is not supported for the current artifact repository",
    }
    info = client.get("/api/3.0/mlflow/server-info").json()
    assert info["multipart_uploads_enabled"] is False


def test_multipart_checks_path_and_body_first(client):
    bad_path = client.post(f"{R}/mpu/create/1/x/artifacts/../../..", json={"path": "f"})
    assert bad_path.status_code == 400
    no_body_path = client.post(f"{R}/mpu/create/1/{uuid.uuid4().hex}/artifacts", json={})
    assert no_body_path.status_code == 400
    assert "'path'" in no_body_path.json()["message"]


def test_ajax_mount_serves_the_same_artifacts(client):
    path = f"1/{uuid.uuid4().hex}/artifacts/x.txt"
    client.put(f"/ajax-api/2.0/mlflow-artifacts/artifacts/{path}", content=b"ajax")
    assert client.get(f"{R}/artifacts/{path}").content == b"ajax"


# --- by run ----------------------------------------------------------------------------------------


def test_list_for_run_returns_paths_relative_to_the_run_root(client):
    experiment_id, run_id = new_run(client)
    base = f"{experiment_id}/{run_id}/artifacts"
    client.put(f"{R}/artifacts/{base}/top.txt", content=b"t")
    client.put(f"{R}/artifacts/{base}/sub/inner.txt", content=b"ii")
    root_uri = f"mlflow-artifacts:/{experiment_id}/{run_id}/artifacts"

    top = client.get(f"{A}/artifacts/list", params={"run_id": run_id})
    assert top.json() == {
        "root_uri": root_uri,
        "files": [{"path": "sub", "is_dir": True}, {"path": "top.txt", "is_dir": False, "file_size": 1}],
    }
    sub = client.get(f"{A}/artifacts/list", params={"run_uuid": run_id, "path": "sub"})
    assert sub.json() == {"root_uri": root_uri, "files": [{"path": "sub/inner.txt", "is_dir": False, "file_size": 2}]}
    empty = client.get("/ajax-api/2.0/mlflow/artifacts/list", params={"run_id": run_id, "path": "nothing"})
    assert empty.json() == {"root_uri": root_uri}


def test_get_artifact_for_run_downloads_the_file(client):
    experiment_id, run_id = new_run(client)
    client.put(f"{R}/artifacts/{experiment_id}/{run_id}/artifacts/sub/page.html", content=b"<b>x</b>")
    response = client.get("/get-artifact", params={"run_id": run_id, "path": "sub/page.html"})
    assert response.status_code == 200
    assert response.content == b"<b>x</b>"
    assert response.headers["content-disposition"] == 'attachment; filename="page.html"'
    assert response.headers["x-content-type-options"] == "nosniff"
    missing = client.get("/get-artifact", params={"run_uuid": run_id, "path": "nope.txt"})
    assert missing.status_code == 404
    root = client.get("/get-artifact", params={"run_id": run_id, "path": ""})
    assert root.status_code == 400


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"path": "x"}, 400, "INVALID_PARAMETER_VALUE"),
        ({"run_id": "0" * 32, "path": "x"}, 404, "RESOURCE_DOES_NOT_EXIST"),
    ],
)
def test_by_run_endpoints_need_an_existing_run(client, params, status, code):
    for url in (f"{A}/artifacts/list", "/get-artifact"):
        response = client.get(url, params=params)
        assert response.status_code == status
        assert response.json()["error_code"] == code


def test_get_artifact_for_run_requires_a_path(client):
    _, run_id = new_run(client)
    response = client.get("/get-artifact", params={"run_id": run_id})
    assert response.status_code == 400
    assert response.json()["message"].startswith("Missing value for required parameter 'path'")


@pytest.mark.parametrize(
    "artifact_uri",
    [
        "file:///etc",
        "/etc",
        "s3://bucket/path",
        "mlflow-artifacts:/{exp}/{other}/artifacts",  # another run's directory
        "mlflow-artifacts:/999/{run}/artifacts",  # a different experiment
        "mlflow-artifacts:/{exp}/{run}/artifacts/../../{other}/artifacts",
        "mlflow-artifacts:/{exp}/{run}",
        "mlflow-artifacts:/{exp}/{run}/artifacts/sub",
    ],
)
def test_a_run_whose_artifact_uri_points_elsewhere_is_not_served(client, artifact_uri):
    experiment_id, other = new_run(client)
    client.put(f"{R}/artifacts/{experiment_id}/{other}/artifacts/secret.txt", content=b"other run")
    run_id = uuid.uuid4().hex
    uri = artifact_uri.format(exp=experiment_id, run=run_id, other=other)
    engine = client.app.state.tracking.engine
    with engine.begin() as conn:
        conn.execute(runs.insert().values(
            run_uuid=run_id, name="r", experiment_id=experiment_id, user_id="u", status="RUNNING",
            start_time=0, lifecycle_stage="active", artifact_uri=uri,
        ))
    for url, params in ((f"{A}/artifacts/list", {"run_id": run_id}),
                        ("/get-artifact", {"run_id": run_id, "path": "secret.txt"}),
                        ("/get-artifact", {"run_id": run_id, "path": "passwd"})):
        response = client.get(url, params=params)
        assert response.status_code == 400, (url, response.text)
        assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert b"other run" not in response.content
