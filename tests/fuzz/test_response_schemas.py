"""The OpenAPI document's success answers: described per operation, and true to what the server sends.

The fuzzer's response_schema_conformance check can only be as good as these schemas, and a generated request
rarely succeeds, so here a scripted session makes each described operation succeed once (as the admin, through
the real app) and validates its 200 body against the document. The JSON operations still answered by a bare
``{"type": "object"}`` are listed, and the list may only shrink.
"""

from __future__ import annotations

import secrets

import jsonschema
import pytest

from gateway.openapi import CONTRACTS, RESULTS

A, A3 = "/api/2.0/mlflow", "/api/3.0/mlflow"
M = "/api/2.0/mlgate"

# JSON operations whose success body is not described yet. Describe one (gateway/openapi.py RESULTS, with a
# call in test_success_bodies_match_the_document), then remove it here: the test requires this exact list.
# The multipart routes answer 501 (uploads always pass through the gateway); OTLP answers an OTLP export response.
UNDESCRIBED = {"artifacts.mpu_create", "artifacts.mpu_complete", "artifacts.mpu_abort", "otlp.ingest"}


def _operations(doc: dict):
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            yield path, method, operation


def _success_schema(operation: dict) -> dict | None:
    success = next(v for k, v in operation["responses"].items() if k.startswith("2"))
    return success.get("content", {}).get("application/json", {}).get("schema")


def test_json_success_answers_are_described_and_the_undescribed_list_only_shrinks(app_factory):
    doc = app_factory().openapi()
    bare = set()
    for path, method, operation in _operations(doc):
        op_id = operation["operationId"]
        schema = _success_schema(operation)
        if CONTRACTS[op_id].success != "json" or schema is None:
            continue
        if schema == {"type": "object"}:
            bare.add(op_id)
        else:
            assert op_id in RESULTS, (method, path)
    assert sorted(bare - UNDESCRIBED) == [], "a new JSON operation needs its success schema in RESULTS"
    assert sorted(UNDESCRIBED - bare) == [], "described now: remove it from UNDESCRIBED"
    described = sum(1 for _, _, op in _operations(doc) if op["operationId"] in RESULTS)
    assert described >= 118


def _validator(doc: dict, op_id: str) -> jsonschema.Draft202012Validator:
    for _, _, operation in _operations(doc):
        if operation["operationId"] == op_id:
            schema = {**_success_schema(operation), "components": doc["components"]}
            return jsonschema.Draft202012Validator(schema)
    raise AssertionError(f"no operation {op_id}")


class _Session:
    """Calls operations through the app and checks each 200 body against the document."""

    def __init__(self, client, doc: dict):
        self.client, self.doc, self.checked = client, doc, set()

    def __call__(self, op_id: str, method: str, path: str, status: int = 200, **kwargs) -> dict:
        response = self.client.request(method, path, **kwargs)
        assert response.status_code == status, (op_id, response.text)
        body = response.json()
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                  for e in _validator(self.doc, op_id).iter_errors(body)]
        assert errors == [], (op_id, errors, body)
        self.checked.add(op_id)
        return body


def _workspaces_session(app_factory, doc: dict, checked: set) -> None:
    """The workspaces and roles operations, on an app with --enable-workspaces."""
    from starlette.testclient import TestClient

    from tests.conftest import TEST_ADMIN_TOKEN

    with TestClient(app_factory(enable_workspaces=True), base_url="http://127.0.0.1:5000") as client:
        client.headers["Authorization"] = f"Bearer {TEST_ADMIN_TOKEN}"
        call = _Session(client, doc)
        call.checked = checked
        call("workspaces.create", "POST", f"{A3}/workspaces", status=201, json={"name": "team-s", "description": "d"})
        call("workspaces.get", "GET", f"{A3}/workspaces/team-s")
        call("workspaces.update", "PATCH", f"{A3}/workspaces/team-s", json={"description": "e"})
        call("workspaces.list", "GET", f"{A3}/workspaces")
        call("users.create", "POST", f"{A}/users/create", json={"username": "dora", "password": "Pw-" + "x" * 16})
        role = call("roles.create", "POST", f"{A3}/roles/create", json={"workspace": "team-s", "name": "r"})["role"]
        call("roles.get", "GET", f"{A3}/roles/get", params={"role_id": role["id"]})
        call("roles.update", "PATCH", f"{A3}/roles/update", json={"role_id": role["id"], "description": "x"})
        permission = call("roles.permissions.add", "POST", f"{A3}/roles/permissions/add", json={
            "role_id": role["id"], "resource_type": "experiment", "resource_pattern": "*", "permission": "READ"})
        call("roles.permissions.update", "PATCH", f"{A3}/roles/permissions/update",
             json={"role_permission_id": permission["role_permission"]["id"], "permission": "EDIT"})
        call("roles.permissions.list", "GET", f"{A3}/roles/permissions/list", params={"role_id": role["id"]})
        call("roles.list", "GET", f"{A3}/roles/list", params={"workspace": "team-s"})
        call("roles.assign", "POST", f"{A3}/roles/assign", json={"username": "dora", "role_id": role["id"]})
        call("roles.users.list", "GET", f"{A3}/roles/users/list", params={"role_id": role["id"]})
        call("roles.users.roles", "GET", f"{A3}/users/roles/list", params={"username": "dora"})
        call("roles.unassign", "DELETE", f"{A3}/roles/unassign", json={"username": "dora", "role_id": role["id"]})
        call("roles.permissions.remove", "DELETE", f"{A3}/roles/permissions/remove",
             json={"role_permission_id": permission["role_permission"]["id"]})
        call("roles.delete", "DELETE", f"{A3}/roles/delete", json={"role_id": role["id"]})
        assert client.delete(f"{A3}/workspaces/team-s").status_code == 204


def _audit_keeper_session(app_factory, doc: dict, checked: set, tmp_path) -> None:
    """The signed-checkpoint and retention operations, on an app with an audit signing key."""
    from starlette.testclient import TestClient

    from tests.audit_keys import write_signing_policy
    from tests.conftest import TEST_ADMIN_TOKEN

    policy = write_signing_policy(tmp_path, retention_days=30)  # the API prunes only to a configured retention
    with TestClient(app_factory(policy_file=str(policy)), base_url="http://127.0.0.1:5000") as client:
        client.headers["Authorization"] = f"Bearer {TEST_ADMIN_TOKEN}"
        call = _Session(client, doc)
        call.checked = checked
        call("admin.audit.checkpoint", "POST", f"{M}/audit/checkpoint", json={})
        call("admin.audit.checkpoints", "GET", f"{M}/audit/checkpoints")
        call("admin.audit.prune", "POST", f"{M}/audit/prune", json={"older_than_days": 30})


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_success_bodies_match_the_document(client, app_factory, tmp_path):
    doc = client.get("/api/openapi.json").json()
    call = _Session(client, doc)
    _workspaces_session(app_factory, doc, call.checked)
    _audit_keeper_session(app_factory, doc, call.checked, tmp_path)
    exp = call("experiments.create", "POST", f"{A}/experiments/create",
               json={"name": "schemas", "tags": [{"key": "a", "value": "b"}]})["experiment_id"]
    call("experiments.get", "GET", f"{A}/experiments/get", params={"experiment_id": exp})
    call("experiments.get_by_name", "GET", f"{A}/experiments/get-by-name", params={"experiment_name": "schemas"})
    call("experiments.set_tag", "POST", f"{A}/experiments/set-experiment-tag",
         json={"experiment_id": exp, "key": "k", "value": "v"})
    call("experiments.delete_tag", "POST", f"{A}/experiments/delete-experiment-tag",
         json={"experiment_id": exp, "key": "k"})
    call("experiments.update", "POST", f"{A}/experiments/update", json={"experiment_id": exp, "new_name": "schemas2"})
    call("experiments.search", "POST", f"{A}/experiments/search", json={"max_results": 1})
    call("experiments.search_via_get", "GET", f"{A}/experiments/search", params={"max_results": 5})
    run = call("runs.create", "POST", f"{A}/runs/create", json={
        "experiment_id": exp, "run_name": "r", "tags": [{"key": "t", "value": "v"}]})["run"]["info"]["run_id"]
    call("runs.log_metric", "POST", f"{A}/runs/log-metric",
         json={"run_id": run, "key": "nan", "value": "NaN", "timestamp": 1})
    call("runs.log_param", "POST", f"{A}/runs/log-parameter", json={"run_id": run, "key": "p", "value": "1"})
    call("runs.log_batch", "POST", f"{A}/runs/log-batch", json={
        "run_id": run, "metrics": [{"key": "m", "value": 1.5, "timestamp": 1, "step": 0}],
        "params": [{"key": "q", "value": "2"}], "tags": [{"key": "u", "value": "w"}]})
    call("runs.log_inputs", "POST", f"{A}/runs/log-inputs", json={"run_id": run, "datasets": [{
        "dataset": {"name": "d", "digest": "x", "source_type": "local", "source": "{}"},
        "tags": [{"key": "k", "value": "v"}]}]})
    call("runs.set_tag", "POST", f"{A}/runs/set-tag", json={"run_id": run, "key": "k", "value": "v"})
    call("runs.delete_tag", "POST", f"{A}/runs/delete-tag", json={"run_id": run, "key": "k"})
    call("runs.update", "POST", f"{A}/runs/update", json={"run_id": run, "status": "FINISHED", "end_time": 5})
    call("metrics.get_history", "GET", f"{A}/metrics/get-history", params={"run_id": run, "metric_key": "nan"})
    call("metrics.get_history_bulk_interval", "GET", f"{A}/metrics/get-history-bulk-interval",
         params={"run_ids": run, "metric_key": "m"})
    call("artifacts.put", "PUT", f"/api/2.0/mlflow-artifacts/artifacts/{exp}/{run}/artifacts/model/MLmodel",
         content=b"x")
    call("artifacts.put", "PUT", f"/api/2.0/mlflow-artifacts/artifacts/{exp}/{run}/artifacts/scratch.txt",
         content=b"y")
    call("artifacts.delete", "DELETE", f"/api/2.0/mlflow-artifacts/artifacts/{exp}/{run}/artifacts/scratch.txt")
    call("artifacts.list", "GET", "/api/2.0/mlflow-artifacts/artifacts", params={"path": f"{exp}/{run}/artifacts"})
    call("artifacts.list_for_run", "GET", f"{A}/artifacts/list", params={"run_id": run, "path": "model"})
    model = "schemas-model"
    call("registered_models.create", "POST", f"{A}/registered-models/create",
         json={"name": model, "description": "d", "tags": [{"key": "a", "value": "b"}]})
    call("model_versions.create", "POST", f"{A}/model-versions/create", json={
        "name": model, "source": f"mlflow-artifacts:/{exp}/{run}/artifacts/model", "run_id": run,
        "tags": [{"key": "a", "value": "b"}]})
    version = {"name": model, "version": "1"}
    call("registered_models.set_alias", "POST", f"{A}/registered-models/alias", json={**version, "alias": "champ"})
    call("registered_models.get", "GET", f"{A}/registered-models/get", params={"name": model})
    call("registered_models.update", "PATCH", f"{A}/registered-models/update", json={"name": model,
                                                                                     "description": "e"})
    call("registered_models.set_tag", "POST", f"{A}/registered-models/set-tag",
         json={"name": model, "key": "k", "value": "v"})
    call("registered_models.delete_tag", "DELETE", f"{A}/registered-models/delete-tag", json={"name": model,
                                                                                              "key": "k"})
    call("registered_models.search", "GET", f"{A}/registered-models/search")
    call("registered_models.search_via_post", "POST", f"{A}/registered-models/search", json={})
    call("registered_models.get_latest_versions", "POST", f"{A}/registered-models/get-latest-versions",
         json={"name": model})
    call("registered_models.get_latest_versions_via_get", "GET", f"{A}/registered-models/get-latest-versions",
         params={"name": model})
    call("registered_models.get_version_by_alias", "GET", f"{A}/registered-models/alias",
         params={"name": model, "alias": "champ"})
    call("model_versions.get", "GET", f"{A}/model-versions/get", params=version)
    call("model_versions.update", "PATCH", f"{A}/model-versions/update", json={**version, "description": "x"})
    call("model_versions.set_tag", "POST", f"{A}/model-versions/set-tag", json={**version, "key": "k", "value": "v"})
    call("model_versions.delete_tag", "DELETE", f"{A}/model-versions/delete-tag", json={**version, "key": "k"})
    call("model_versions.transition_stage", "POST", f"{A}/model-versions/transition-stage",
         json={**version, "stage": "Staging"})
    call("model_versions.search", "GET", f"{A}/model-versions/search")
    call("model_versions.search_via_post", "POST", f"{A}/model-versions/search", json={})
    call("model_versions.get_download_uri", "GET", f"{A}/model-versions/get-download-uri", params=version)
    call("registered_models.delete_alias", "DELETE", f"{A}/registered-models/alias",
         json={"name": model, "alias": "champ"})
    call("registered_models.rename", "POST", f"{A}/registered-models/rename", json={"name": model,
                                                                                   "new_name": model + "2"})
    logged = call("logged_models.create", "POST", f"{A}/logged-models", json={
        "experiment_id": exp, "name": "lm", "params": [{"key": "a", "value": "1"}],
        "tags": [{"key": "a", "value": "b"}], "source_run_id": run})["model"]["info"]["model_id"]
    call("logged_models.set_tags", "PATCH", f"{A}/logged-models/{logged}/tags",
         json={"tags": [{"key": "k", "value": "v"}]})
    call("logged_models.delete_tag", "DELETE", f"{A}/logged-models/{logged}/tags/k")
    call("logged_models.log_params", "POST", f"{A}/logged-models/{logged}/params",
         json={"params": [{"key": "b", "value": "2"}]})
    call("logged_models.get", "GET", f"{A}/logged-models/{logged}")
    call("logged_models.search", "POST", f"{A}/logged-models/search", json={"experiment_ids": [exp]})
    call("logged_models.list_artifacts", "GET", f"{A}/logged-models/{logged}/artifacts/directories")
    call("logged_models.finalize", "PATCH", f"{A}/logged-models/{logged}",
         json={"model_id": logged, "status": "LOGGED_MODEL_READY"})
    other = call("logged_models.create", "POST", f"{A}/logged-models",
                 json={"experiment_id": exp})["model"]["info"]["model_id"]
    call("logged_models.delete", "DELETE", f"{A}/logged-models/{other}")
    call("runs.log_outputs", "POST", f"{A}/runs/outputs", json={"run_id": run, "models": [{"model_id": logged,
                                                                                          "step": 0}]})
    call("runs.get", "GET", f"{A}/runs/get", params={"run_id": run})
    call("runs.search", "POST", f"{A}/runs/search", json={"experiment_ids": [exp]})
    call("runs.search_via_get", "GET", f"{A}/runs/search", params={"experiment_ids": exp})
    trace = "tr-" + secrets.token_hex(16)
    call("traces.start", "POST", f"{A3}/traces", json={"trace": {"trace_info": {
        "trace_id": trace, "request_time": "2026-01-01T00:00:00Z", "execution_duration": "1.5s", "state": "OK",
        "trace_location": {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": exp}},
        "request_preview": "q", "response_preview": "a", "tags": {"t": "v"}, "trace_metadata": {"m": "v"}}}})
    assessment = call("assessments.create", "POST", f"{A3}/traces/{trace}/assessments", json={"assessment": {
        "assessment_name": "relevance", "trace_id": trace, "source": {"source_type": "HUMAN", "source_id": "me"},
        "feedback": {"value": True}}})["assessment"]["assessment_id"]
    call("assessments.get", "GET", f"{A3}/traces/{trace}/assessments/{assessment}")
    call("assessments.update", "PATCH", f"{A3}/traces/{trace}/assessments/{assessment}", json={
        "assessment": {"rationale": "because"}, "update_mask": "rationale"})
    call("traces.set_tag", "PATCH", f"{A}/traces/{trace}/tags", json={"key": "k", "value": "v"})
    call("traces.delete_tag", "DELETE", f"{A}/traces/{trace}/tags", params={"key": "k"})
    call("traces.get_info", "GET", f"{A3}/traces/{trace}")
    call("traces.get", "GET", f"{A3}/traces/get", params={"trace_id": trace})
    call("traces.batch_get", "GET", f"{A3}/traces/batchGet", params={"trace_ids": trace})
    call("traces.search", "POST", f"{A3}/traces/search", json={"locations": [
        {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": exp}}]})
    call("traces.link_to_run", "POST", f"{A}/traces/link-to-run", json={"trace_ids": [trace], "run_id": run})
    # mlgate's user, token, permission and admin APIs
    call("assessments.delete", "DELETE", f"{A3}/traces/{trace}/assessments/{assessment}")
    call("traces.delete", "POST", f"{A}/traces/delete-traces", json={"experiment_id": exp, "request_ids": [trace]})
    call("server.info", "GET", f"{A3}/server-info")
    call("users.create", "POST", f"{A}/users/create", json={"username": "carol", "password": "Pw-" + "x" * 16})
    call("users.get", "GET", f"{A}/users/get", params={"username": "carol"})
    call("users.list", "GET", f"{A}/users/list")
    call("users.current", "GET", f"{A}/users/current")
    call("users.update_admin", "PATCH", f"{A}/users/update-admin", json={"username": "carol", "is_admin": False})
    call("users.update_password", "PATCH", f"{A}/users/update-password",
         json={"username": "carol", "password": "Pw-" + "y" * 16})
    token = call("tokens.create", "POST", f"{A}/users/tokens/create", json={"name": "t", "expires_in_days": 1})
    call("tokens.list", "GET", f"{A}/users/tokens/list")
    call("tokens.revoke", "POST", f"{A}/users/tokens/revoke", json={"token_id": token["token_info"]["id"]})
    grant = {"experiment_id": exp, "username": "carol"}
    call("permissions.experiments.create", "POST", f"{A}/experiments/permissions/create",
         json={**grant, "permission": "READ"})
    call("permissions.experiments.get", "GET", f"{A}/experiments/permissions/get", params=grant)
    call("permissions.experiments.update", "PATCH", f"{A}/experiments/permissions/update",
         json={**grant, "permission": "EDIT"})
    call("permissions.experiments.update_via_post", "POST", f"{A}/experiments/permissions/update",
         json={**grant, "permission": "EDIT"})
    call("permissions.experiments.delete", "DELETE", f"{A}/experiments/permissions/delete", json=grant)
    model_grant = {"name": model + "2", "username": "carol"}
    call("permissions.registered_models.create", "POST", f"{A}/registered-models/permissions/create",
         json={**model_grant, "permission": "READ"})
    call("permissions.registered_models.get", "GET", f"{A}/registered-models/permissions/get", params=model_grant)
    call("permissions.registered_models.update", "PATCH", f"{A}/registered-models/permissions/update",
         json={**model_grant, "permission": "MANAGE"})
    call("permissions.registered_models.update_via_post", "POST", f"{A}/registered-models/permissions/update",
         json={**model_grant, "permission": "READ"})
    call("permissions.registered_models.delete_via_post", "POST", f"{A}/registered-models/permissions/delete",
         json=model_grant)
    typed = {"resource_type": "experiment", "resource_id": exp, "username": "carol"}
    call("permissions.users.grant", "POST", f"{A3}/users/permissions/grant", json={**typed, "permission": "READ"})
    call("permissions.users.get", "GET", f"{A3}/users/permissions/get", params=typed)
    call("permissions.users.list", "GET", f"{A3}/users/permissions/list", params={"username": "carol"})
    call("permissions.users.revoke", "POST", f"{A3}/users/permissions/revoke", json=typed)
    call("permissions.experiments.create", "POST", f"{A}/experiments/permissions/create",
         json={**grant, "permission": "READ"})
    call("permissions.experiments.delete_via_post", "POST", f"{A}/experiments/permissions/delete", json=grant)
    call("permissions.registered_models.create", "POST", f"{A}/registered-models/permissions/create",
         json={**model_grant, "permission": "READ"})
    call("permissions.registered_models.delete", "DELETE", f"{A}/registered-models/permissions/delete",
         json=model_grant)
    call("admin.users.list", "GET", f"{M}/users/list")
    call("admin.users.get", "GET", f"{M}/users/get", params={"username": "carol"})
    call("admin.groups.create", "POST", f"{M}/groups/create", json={"name": "team"})
    call("admin.groups.add_member", "POST", f"{M}/groups/add-member", json={"group": "team", "username": "carol"})
    call("admin.groups.list", "GET", f"{M}/groups/list")
    call("admin.groups.remove_member", "POST", f"{M}/groups/remove-member", json={"group": "team",
                                                                                 "username": "carol"})
    call("admin.grants.put", "POST", f"{M}/grants/put", json={"subject": "group:team", "resource": f"experiment:{exp}",
                                                               "permission": "READ"})
    call("admin.grants.list", "GET", f"{M}/grants/list")
    call("admin.grants.revoke", "POST", f"{M}/grants/revoke", json={"subject": "group:team",
                                                                     "resource": f"experiment:{exp}"})
    call("admin.perms.explain", "GET", f"{M}/perms/explain", params={"username": "carol", "action": "READ",
                                                                     "experiment_id": exp})
    call("admin.policy.export", "GET", f"{M}/policy/export")
    call("admin.policy.apply", "POST", f"{M}/policy/apply", json={"dry_run": True, "access": {
        "groups": {"team": ["carol"], "other": []},
        "grants": [{"principal": "group:team", "resource": f"experiment:{exp}", "permission": "READ"}]}})
    call("admin.groups.delete", "POST", f"{M}/groups/delete", json={"name": "team"})
    call("admin.audit.list", "GET", f"{M}/audit/list", params={"limit": 20})
    call("admin.audit.verify", "GET", f"{M}/audit/verify")
    call("ops.ready", "GET", "/ready")
    call("users.update_disabled", "PATCH", f"{A}/users/update-disabled", json={"username": "carol", "disabled": True})
    call("users.delete", "DELETE", f"{A}/users/delete", json={"username": "carol"})
    call("model_versions.delete", "DELETE", f"{A}/model-versions/delete", json={"name": model + "2", "version": "1"})
    call("registered_models.delete", "DELETE", f"{A}/registered-models/delete", json={"name": model + "2"})
    call("runs.delete", "POST", f"{A}/runs/delete", json={"run_id": run})
    call("runs.restore", "POST", f"{A}/runs/restore", json={"run_id": run})
    call("experiments.delete", "POST", f"{A}/experiments/delete", json={"experiment_id": exp})
    call("experiments.restore", "POST", f"{A}/experiments/restore", json={"experiment_id": exp})
    # Every described operation was called (and matched) above.
    assert sorted(set(RESULTS) - call.checked) == []


@pytest.mark.parametrize(("op_id", "body"), [
    ("runs.get", {}),  # no run
    ("runs.get", {"run": {"info": {"run_id": "r", "experiment_id": "1", "status": "DONE"}, "data": {}}}),
    ("runs.get", {"run": {"info": {"run_id": "r", "experiment_id": "1", "status": "RUNNING"},
                          "data": {"metrics": [{"key": "m", "value": "high"}]}}}),
    ("experiments.search", {"experiments": [{"experiment_id": 1, "name": "e"}]}),
    ("model_versions.get", {"model_version": {"name": "m", "version": 1}}),
    ("registered_models.get", {"registered_model": {"name": "m", "tags": [{"value": "no key"}]}}),
    ("traces.get", {"trace": {"trace_info": {"trace_id": "t", "trace_location": {}, "tags": {"k": 1}}}}),
    ("tokens.create", {"token": "mlg_x"}),
    ("experiments.delete", {"unexpected": True}),
    ("permissions.users.get", {"allowed": True, "permission": "OWNER"}),
])
def test_the_schemas_reject_wrong_shapes(app_factory, op_id, body):
    # Control: the validation above can fail (types, required fields, enums, nested references, empty answers).
    assert not _validator(app_factory().openapi(), op_id).is_valid(body)
