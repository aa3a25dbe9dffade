"""GET /model-versions/get-artifact: serves a version's files from the artifact root, never outside it."""

from __future__ import annotations

import os

import pytest

from tests.tracking.registry_support import api_fixture, error_of  # noqa: F401  (fixture)


def _version_with_files(api) -> str:
    api.create_model("m")
    run_id = api.create_run()
    model_dir = api.artifact_root / "0" / run_id / "artifacts" / "model"
    model_dir.mkdir(parents=True)
    (model_dir / "MLmodel").write_text("flavors: {}\n")
    (model_dir / "data").mkdir()
    (model_dir / "data" / "weights.bin").write_bytes(b"\x00\x01\x02")
    api.create_version("m", source=f"runs:/{run_id}/model", run_id=run_id)
    return run_id


def _get(api, path: str, version: str = "1", name: str = "m"):
    return api.client.get("/model-versions/get-artifact", params={"name": name, "version": version, "path": path})


def test_serves_files_of_the_version(api):
    _version_with_files(api)
    r = _get(api, "MLmodel")
    assert r.status_code == 200
    assert r.text == "flavors: {}\n"
    assert r.headers["content-disposition"].startswith("attachment")
    r = _get(api, "data/weights.bin")
    assert r.status_code == 200
    assert r.content == b"\x00\x01\x02"


def test_serves_proxied_sources_too(api):
    api.create_model("m")
    run_id = api.create_run()
    target = api.artifact_root / "0" / run_id / "artifacts" / "clf"
    target.mkdir(parents=True)
    (target / "MLmodel").write_text("x")
    api.create_version("m", source=f"mlflow-artifacts:/0/{run_id}/artifacts/clf", run_id=run_id)
    assert _get(api, "MLmodel").text == "x"


def test_serves_logged_model_sources(api):
    api.create_model("m")
    model_id = api.create_logged_model(api.create_run())
    target = api.artifact_root / "0" / "models" / model_id / "artifacts"
    target.mkdir(parents=True)
    (target / "MLmodel").write_text("logged")
    api.create_version("m", source=f"models:/{model_id}", model_id=model_id)
    assert _get(api, "MLmodel").text == "logged"


@pytest.mark.parametrize("path", [
    "../MLmodel", "../../../../etc/passwd", "data/../../other", "/etc/passwd", "%2e%2e/%2e%2e/secret",
    "..%2f..%2fsecret", "data\\..\\..\\x", "C:/Windows/win.ini", "", "a\x00b",
])
def test_traversal_is_refused(api, path):
    _version_with_files(api)
    (api.artifact_root / "secret").write_text("top secret")
    r = _get(api, path)
    assert error_of(r) == (400, "INVALID_PARAMETER_VALUE"), path
    assert "top secret" not in r.text


def test_symlink_escaping_the_root_is_refused(api, tmp_path):
    run_id = _version_with_files(api)
    outside = tmp_path / "outside.txt"
    outside.write_text("outside the root")
    os.symlink(outside, api.artifact_root / "0" / run_id / "artifacts" / "model" / "link.txt")
    os.symlink(tmp_path, api.artifact_root / "0" / run_id / "artifacts" / "model" / "dirlink")
    for path in ("link.txt", "dirlink/outside.txt"):
        r = _get(api, path)
        assert r.status_code == 400, path
        assert "outside the root" not in r.text


def test_missing_file_version_and_remote_sources(api):
    _version_with_files(api)
    assert error_of(_get(api, "nope.txt")) == (404, "RESOURCE_DOES_NOT_EXIST")
    assert error_of(_get(api, "MLmodel", version="9")) == (404, "RESOURCE_DOES_NOT_EXIST")
    assert error_of(_get(api, "MLmodel", name="zz")) == (404, "RESOURCE_DOES_NOT_EXIST")
    assert error_of(_get(api, "MLmodel", version="x")) == (400, "INVALID_PARAMETER_VALUE")
    api.create_version("m", source="s3://bucket/model")
    assert error_of(_get(api, "MLmodel", version="2")) == (400, "INVALID_PARAMETER_VALUE")
    assert error_of(api.client.get("/model-versions/get-artifact", params={"name": "m", "version": "1"})) == (
        400, "INVALID_PARAMETER_VALUE")
