"""The authorization matrix against one real ``mlgate server`` (issue 6): every route group x every kind of user.

One server per module starts with a policy file that gives the group ``ml-team`` EDIT and the user
``reader`` READ on the name patterns ``team/*`` (experiments) and ``team-*`` (models). The owner
creates the resources and grants ``editor`` EDIT through the MLflow 2.x permission API. ``member``
gets EDIT only through the group, ``nobody`` gets nothing.

Each row of the matrix is (operation, expected status per user). A resource the caller cannot see
must answer byte-for-byte like a missing one; a visible resource without enough permission answers
403 PERMISSION_DENIED; every denial lands in ``auth_audit_log`` with the rule that decided it.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from auth.tables import audit_log
from tests.conftest import LiveServer, start_server
from tests.services import fresh_postgres_database
from tests.tracking.otlp_builders import two_span_trace
from tracking.db.engine import make_engine

pytestmark = pytest.mark.e2e

A, B, R = "/api/2.0/mlflow", "/api/3.0/mlflow", "/api/2.0/mlflow-artifacts"
USERS = ("admin", "owner", "editor", "reader", "member", "nobody")
# Passwords must not contain the username; one random suffix per module run.
PASSWORD = "Matrix-Pw-" + secrets.token_urlsafe(12)

POLICY = """\
version: 1
access:
  mode: additive
  default_permission: NO_PERMISSIONS
  groups:
    ml-team: [member]
  grants:
    - {principal: "group:ml-team", resource: "experiment-name:team/*", permission: EDIT}
    - {principal: "group:ml-team", resource: "model-name:team-*", permission: EDIT}
    - {principal: "user:reader", resource: "experiment-name:team/*", permission: READ}
    - {principal: "user:reader", resource: "model-name:team-*", permission: READ}
  denies:
    - {principal: "group:ml-team", resource: "experiment-name:team/frozen*", permission: EDIT}
  # The owner (not in ml-team) creates the team's resources. Without create rules that is now refused
  # (issue #18, finding 6: a name a grant promises to a team is the team's to create), so the matrix
  # says explicitly that anyone may create anything, which is what its rows were written against.
  create:
    experiments: [{principal: "*", name: "*"}]
    models: [{principal: "*", name: "*"}]
"""


def _check(response: httpx.Response, what: str) -> dict:
    assert response.status_code == 200, f"{what}: {response.status_code} {response.text}"
    return response.json()


def new_trace_id() -> str:
    """A trace id in MLflow 3's ``tr-<32 hex>`` form."""
    return "tr-" + uuid.uuid4().hex


def trace_body(trace_id: str, experiment_id: str) -> dict:
    """A StartTraceV3 body (the shape MLflow's client sends when a trace ends)."""
    return {"trace": {"trace_info": {
        "trace_id": trace_id,
        "trace_location": {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": experiment_id}},
        "request_time": "2024-05-01T10:00:00.000Z", "execution_duration": "0.010s", "state": "OK",
        "trace_metadata": {"mlflow.trace_schema.version": "3"}, "tags": {"mlflow.traceName": "t"}}}}


@dataclass
class World:
    """The server, one HTTP client per user, and the owner's resources."""

    server: LiveServer
    http: dict[str, httpx.Client]
    exp: str  # team/main: owner MANAGE, editor EDIT (API), member EDIT (group), reader READ (file)
    hidden_exp: str  # private/main: the owner's alone
    run: str
    hidden_run: str
    model: str  # team-model: same levels as exp, on the registry side
    trace: str
    logged_model: str
    hidden_model: str = ""  # the owner's private-* model, its trace and logged model in hidden_exp
    hidden_trace: str = ""
    hidden_logged_model: str = ""
    audit_engine: object = None

    def owner_experiment(self, name: str, *, editor: str | None = "EDIT") -> str:
        """A new experiment of the owner, with an API grant for editor (as ``exp`` has)."""
        exp = _check(self.http["owner"].post(f"{A}/experiments/create", json={"name": name}), name)["experiment_id"]
        if editor:
            _check(self.http["owner"].post(f"{A}/experiments/permissions/create", json={
                "experiment_id": exp, "username": "editor", "permission": editor}), "grant editor")
        return exp

    def owner_run(self, experiment_id: str) -> str:
        """A new run of the owner in ``experiment_id``."""
        made = self.http["owner"].post(f"{A}/runs/create", json={"experiment_id": experiment_id, "start_time": 1})
        return _check(made, "create run")["run"]["info"]["run_id"]

    def owner_model(self, name: str, *, editor: bool = True) -> str:
        """A new registered model of the owner, with an API grant of EDIT for editor (as ``model`` has)."""
        _check(self.http["owner"].post(f"{A}/registered-models/create", json={"name": name}), name)
        if editor:
            _check(self.http["owner"].post(f"{A}/registered-models/permissions/create", json={
                "name": name, "username": "editor", "permission": "EDIT"}), "grant editor on model")
        return name


class Ctx:
    """What a matrix row's request names: the shared resources (``mode="real"``), the owner's private
    ones (``"hidden"``), or ids that do not exist (``"missing"``)."""

    def __init__(self, world: World, mode: str = "real"):
        self.w, self.mode = world, mode
        if mode == "missing":
            self.exp, self.exp_name, self.run, self.model = "987654321", "team/no-such", "0" * 32, "team-no-such"
            self.trace, self.logged_model = "tr-" + "0" * 32, "m-" + "0" * 32
        elif mode == "hidden":
            self.exp, self.exp_name, self.run, self.model = (world.hidden_exp, "private/main", world.hidden_run,
                                                             world.hidden_model)
            self.trace, self.logged_model = world.hidden_trace, world.hidden_logged_model
        else:
            self.exp, self.exp_name, self.run, self.model = world.exp, "team/main", world.run, world.model
            self.trace, self.logged_model = world.trace, world.logged_model

    def fresh_experiment(self) -> str:
        """A throw-away experiment like ``exp`` (for update and delete rows)."""
        if self.mode == "missing":
            return self.exp
        if self.mode == "hidden":
            return self.w.owner_experiment(f"private/tmp-{_u()}", editor=None)
        return self.w.owner_experiment(f"team/tmp-{_u()}")

    def fresh_run(self) -> str:
        """A throw-away run in ``exp``."""
        return self.run if self.mode == "missing" else self.w.owner_run(self.exp)

    def fresh_artifact(self) -> str:
        """A throw-away artifact file of ``run`` (its proxied path)."""
        path = f"{self.exp}/{self.run}/artifacts/tmp-{_u()}.txt"
        if self.mode != "missing":
            _check(self.w.http["owner"].put(f"{R}/artifacts/{path}", content=b"tmp"), "upload tmp artifact")
        return path

    def _owner(self, method: str, path: str, what: str, **kwargs) -> dict:
        return _check(self.w.http["owner"].request(method, path, **kwargs), what)

    def deleted_experiment(self) -> str:
        """A throw-away experiment the owner has deleted (for restore rows)."""
        exp = self.fresh_experiment()
        if self.mode != "missing":
            self._owner("POST", f"{A}/experiments/delete", "delete", json={"experiment_id": exp})
        return exp

    def deleted_run(self) -> str:
        """A throw-away run the owner has deleted (for restore rows)."""
        run = self.fresh_run()
        if self.mode != "missing":
            self._owner("POST", f"{A}/runs/delete", "delete run", json={"run_id": run})
        return run

    def tagged(self, kind: str) -> str:
        """``exp``, ``run``, ``model`` or ``trace`` after the owner set the tag ``dk`` on it (for delete-tag rows)."""
        if self.mode != "missing":
            if kind == "exp":
                self._owner("POST", f"{A}/experiments/set-experiment-tag", "tag",
                            json={"experiment_id": self.exp, "key": "dk", "value": "v"})
            elif kind == "run":
                self._owner("POST", f"{A}/runs/set-tag", "tag", json={"run_id": self.run, "key": "dk", "value": "v"})
            elif kind == "model":
                self._owner("POST", f"{A}/registered-models/set-tag", "tag",
                            json={"name": self.model, "key": "dk", "value": "v"})
            else:
                self._owner("PATCH", f"{B}/traces/{self.trace}/tags", "tag", json={"key": "dk", "value": "v"})
        return {"exp": self.exp, "run": self.run, "model": self.model, "trace": self.trace}[kind]

    def aliased_model(self) -> str:
        """``model`` after the owner pointed alias ``champ`` at version 1."""
        if self.mode != "missing":
            self._owner("POST", f"{A}/registered-models/alias", "alias",
                        json={"name": self.model, "alias": "champ", "version": "1"})
        return self.model

    def fresh_version(self) -> str:
        """A throw-away version of ``model`` (from ``run``)."""
        if self.mode == "missing":
            return "1"
        made = self._owner("POST", f"{A}/model-versions/create", "version", json={
            "name": self.model, "source": f"mlflow-artifacts:/{self.exp}/{self.run}/artifacts", "run_id": self.run})
        return made["model_version"]["version"]

    def fresh_logged_model(self) -> str:
        """A throw-away logged model in ``exp``."""
        if self.mode == "missing":
            return self.logged_model
        made = self._owner("POST", f"{A}/logged-models", "logged model", json={"experiment_id": self.exp, "name": "t"})
        return made["model"]["info"]["model_id"]

    def fresh_trace(self) -> str:
        """A throw-away trace in ``exp``."""
        if self.mode == "missing":
            return self.trace
        trace = new_trace_id()
        self._owner("POST", f"{B}/traces", "trace", json=trace_body(trace, self.exp))
        return trace

    def assessment(self) -> str:
        """A new assessment of the owner on ``trace`` (its id)."""
        if self.mode == "missing":
            return "a-" + "0" * 32
        made = self._owner("POST", f"{B}/traces/{self.trace}/assessments", "assessment", json={"assessment": {
            "assessment_name": "q", "trace_id": self.trace, "source": {"source_type": "HUMAN", "source_id": "o"},
            "feedback": {"value": 1}}})
        return made["assessment"]["assessment_id"]

    def fresh_model(self) -> str:
        """A throw-away registered model like ``model``."""
        if self.mode == "missing":
            return self.model
        if self.mode == "hidden":
            return self.w.owner_model(f"private-tmp-{_u()}", editor=False)
        return self.w.owner_model(f"team-tmp-{_u()}")


def _u() -> str:
    return uuid.uuid4().hex[:8]


def _otlp(ctx: Ctx):
    _, request = two_span_trace()
    return ("POST", "/v1/traces", {"content": request.SerializeToString(), "headers": {
        "content-type": "application/x-protobuf", "x-mlflow-experiment-id": ctx.exp}})


# Expected status per user for the three levels, on an experiment and on a registered model (the
# policy gives every user the same level on both): READ, EDIT and MANAGE.
READ = {"admin": 200, "owner": 200, "editor": 200, "reader": 200, "member": 200, "nobody": 404}
EDIT = {**READ, "reader": 403}
MANAGE = {**EDIT, "editor": 403, "member": 403}
ADMIN_ONLY = {user: 200 if user == "admin" else 403 for user in USERS}

Request = Callable[[Ctx], tuple[str, str, dict]]
OPERATIONS: list[tuple[str, dict[str, int], Request]] = [
    # Experiments.
    ("experiments.get", READ, lambda c: ("GET", f"{A}/experiments/get", {"params": {"experiment_id": c.exp}})),
    ("experiments.get_by_name", READ, lambda c: ("GET", f"{A}/experiments/get-by-name", {
        "params": {"experiment_name": c.exp_name}})),
    ("experiments.update", MANAGE, lambda c: ("POST", f"{A}/experiments/update", {
        "json": {"experiment_id": c.fresh_experiment(), "new_name": f"team/renamed-{_u()}"}})),
    ("experiments.delete", MANAGE, lambda c: ("POST", f"{A}/experiments/delete", {
        "json": {"experiment_id": c.fresh_experiment()}})),
    ("experiments.set_tag", EDIT, lambda c: ("POST", f"{A}/experiments/set-experiment-tag", {
        "json": {"experiment_id": c.exp, "key": "k", "value": _u()}})),
    # Runs.
    ("runs.create", EDIT, lambda c: ("POST", f"{A}/runs/create", {"json": {"experiment_id": c.exp, "start_time": 1}})),
    ("runs.get", READ, lambda c: ("GET", f"{A}/runs/get", {"params": {"run_id": c.run}})),
    ("runs.log_metric", EDIT, lambda c: ("POST", f"{A}/runs/log-metric", {
        "json": {"run_id": c.run, "key": "m", "value": 1.5, "timestamp": 1, "step": 0}})),
    ("runs.log_param", EDIT, lambda c: ("POST", f"{A}/runs/log-parameter", {
        "json": {"run_id": c.run, "key": f"p-{_u()}", "value": "v"}})),
    ("runs.log_batch", EDIT, lambda c: ("POST", f"{A}/runs/log-batch", {"json": {
        "run_id": c.run, "metrics": [{"key": "b", "value": 2.0, "timestamp": 1, "step": 1}],
        "params": [{"key": f"bp-{_u()}", "value": "v"}], "tags": [{"key": "t", "value": "v"}]}})),
    ("runs.set_tag", EDIT, lambda c: ("POST", f"{A}/runs/set-tag", {
        "json": {"run_id": c.run, "key": "t", "value": "x"}})),
    ("runs.delete", MANAGE, lambda c: ("POST", f"{A}/runs/delete", {"json": {"run_id": c.fresh_run()}})),
    ("metrics.get_history", READ, lambda c: ("GET", f"{A}/metrics/get-history", {
        "params": {"run_id": c.run, "metric_key": "m"}})),
    # Artifacts: the proxy (download, list, upload, delete) and the run-addressed UI routes.
    ("artifacts.get", READ, lambda c: ("GET", f"{R}/artifacts/{c.exp}/{c.run}/artifacts/a.txt", {})),
    ("artifacts.list", READ, lambda c: ("GET", f"{R}/artifacts", {"params": {"path": f"{c.exp}/{c.run}/artifacts"}})),
    ("artifacts.put", EDIT, lambda c: ("PUT", f"{R}/artifacts/{c.exp}/{c.run}/artifacts/up-{_u()}.txt",
                                       {"content": b"uploaded"})),
    ("artifacts.delete", MANAGE, lambda c: ("DELETE", f"{R}/artifacts/{c.fresh_artifact()}", {})),
    ("artifacts.get_for_run", READ, lambda c: ("GET", "/get-artifact", {"params": {"run_id": c.run, "path": "a.txt"}})),
    ("artifacts.list_for_run", READ, lambda c: ("GET", f"{A}/artifacts/list", {"params": {"run_id": c.run}})),
    # Registered models and versions.
    ("registered_models.get", READ, lambda c: ("GET", f"{A}/registered-models/get", {"params": {"name": c.model}})),
    ("registered_models.update", EDIT, lambda c: ("PATCH", f"{A}/registered-models/update", {
        "json": {"name": c.model, "description": _u()}})),
    ("registered_models.set_tag", EDIT, lambda c: ("POST", f"{A}/registered-models/set-tag", {
        "json": {"name": c.model, "key": "k", "value": "v"}})),
    ("registered_models.delete", MANAGE, lambda c: ("DELETE", f"{A}/registered-models/delete", {
        "json": {"name": c.fresh_model()}})),
    # EDIT on the model and READ on the source run's experiment: every user with EDIT has both here.
    ("model_versions.create", EDIT, lambda c: ("POST", f"{A}/model-versions/create", {"json": {
        "name": c.model, "source": f"mlflow-artifacts:/{c.w.exp}/{c.w.run}/artifacts", "run_id": c.w.run}})),
    ("model_versions.get", READ, lambda c: ("GET", f"{A}/model-versions/get", {
        "params": {"name": c.model, "version": "1"}})),
    ("model_versions.get_download_uri", READ, lambda c: ("GET", f"{A}/model-versions/get-download-uri", {
        "params": {"name": c.model, "version": "1"}})),
    # Logged models.
    ("logged_models.create", EDIT, lambda c: ("POST", f"{A}/logged-models", {
        "json": {"experiment_id": c.exp, "name": "lm"}})),
    ("logged_models.get", READ, lambda c: ("GET", f"{A}/logged-models/{c.logged_model}", {})),
    # Traces, assessments and OTLP ingestion.
    ("traces.start", EDIT, lambda c: ("POST", f"{B}/traces", {"json": trace_body(new_trace_id(), c.exp)})),
    ("traces.get_info", READ, lambda c: ("GET", f"{B}/traces/{c.trace}", {})),
    ("traces.set_tag", EDIT, lambda c: ("PATCH", f"{B}/traces/{c.trace}/tags", {"json": {"key": "k", "value": _u()}})),
    ("assessments.create", EDIT, lambda c: ("POST", f"{B}/traces/{c.trace}/assessments", {"json": {"assessment": {
        "assessment_name": "quality", "trace_id": c.trace, "source": {"source_type": "HUMAN", "source_id": "x"},
        "feedback": {"value": True}}}})),
    ("otlp.ingest", EDIT, _otlp),
    # The rest of each route group.
    ("experiments.delete_tag", EDIT, lambda c: ("POST", f"{A}/experiments/delete-experiment-tag", {
        "json": {"experiment_id": c.tagged("exp"), "key": "dk"}})),
    ("experiments.restore", MANAGE, lambda c: ("POST", f"{A}/experiments/restore", {
        "json": {"experiment_id": c.deleted_experiment()}})),
    ("runs.update", EDIT, lambda c: ("POST", f"{A}/runs/update", {"json": {"run_id": c.run, "run_name": _u()}})),
    ("runs.restore", MANAGE, lambda c: ("POST", f"{A}/runs/restore", {"json": {"run_id": c.deleted_run()}})),
    ("runs.delete_tag", EDIT, lambda c: ("POST", f"{A}/runs/delete-tag", {"json": {"run_id": c.tagged("run"),
                                                                                    "key": "dk"}})),
    ("runs.log_inputs", EDIT, lambda c: ("POST", f"{A}/runs/log-inputs", {"json": {"run_id": c.run, "datasets": [
        {"dataset": {"name": "d", "digest": "abc", "source_type": "local", "source": "s"}, "tags": []}]}})),
    ("runs.log_outputs", EDIT, lambda c: ("POST", f"{A}/runs/outputs", {"json": {
        "run_id": c.run, "models": [{"model_id": c.logged_model, "step": 0}]}})),
    ("metrics.get_history_bulk_interval", READ, lambda c: ("GET", f"{A}/metrics/get-history-bulk-interval", {
        "params": {"run_ids": c.run, "metric_key": "m"}})),
    ("registered_models.rename", MANAGE, lambda c: ("POST", f"{A}/registered-models/rename", {
        "json": {"name": c.fresh_model(), "new_name": f"team-renamed-{_u()}"}})),
    ("registered_models.delete_tag", EDIT, lambda c: ("DELETE", f"{A}/registered-models/delete-tag", {
        "json": {"name": c.tagged("model"), "key": "dk"}})),
    ("registered_models.get_latest_versions", READ, lambda c: ("POST", f"{A}/registered-models/get-latest-versions",
                                                               {"json": {"name": c.model}})),
    ("registered_models.get_latest_versions_via_get", READ, lambda c: (
        "GET", f"{A}/registered-models/get-latest-versions", {"params": {"name": c.model}})),
    ("registered_models.set_alias", EDIT, lambda c: ("POST", f"{A}/registered-models/alias", {
        "json": {"name": c.model, "alias": "matrix", "version": "1"}})),
    ("registered_models.get_version_by_alias", READ, lambda c: ("GET", f"{A}/registered-models/alias", {
        "params": {"name": c.aliased_model(), "alias": "champ"}})),
    ("registered_models.delete_alias", MANAGE, lambda c: ("DELETE", f"{A}/registered-models/alias", {
        "json": {"name": c.aliased_model(), "alias": "champ"}})),
    ("model_versions.update", EDIT, lambda c: ("PATCH", f"{A}/model-versions/update", {
        "json": {"name": c.model, "version": "1", "description": _u()}})),
    ("model_versions.set_tag", EDIT, lambda c: ("POST", f"{A}/model-versions/set-tag", {
        "json": {"name": c.model, "version": "1", "key": "k", "value": "v"}})),
    ("model_versions.transition_stage", EDIT, lambda c: ("POST", f"{A}/model-versions/transition-stage", {
        "json": {"name": c.model, "version": "1", "stage": "Staging", "archive_existing_versions": False}})),
    ("model_versions.delete", MANAGE, lambda c: ("DELETE", f"{A}/model-versions/delete", {
        "json": {"name": c.model, "version": c.fresh_version()}})),
    ("logged_models.finalize", EDIT, lambda c: ("PATCH", f"{A}/logged-models/{c.logged_model}", {
        "json": {"model_id": c.logged_model, "status": "LOGGED_MODEL_READY"}})),
    ("logged_models.set_tags", EDIT, lambda c: ("PATCH", f"{A}/logged-models/{c.logged_model}/tags", {
        "json": {"tags": [{"key": "k", "value": _u()}]}})),
    ("logged_models.log_params", EDIT, lambda c: ("POST", f"{A}/logged-models/{c.logged_model}/params", {
        "json": {"params": [{"key": f"p-{_u()}", "value": "v"}]}})),
    ("logged_models.list_artifacts", READ, lambda c: ("GET",
                                                      f"{A}/logged-models/{c.logged_model}/artifacts/directories", {})),
    ("logged_models.delete", MANAGE, lambda c: ("DELETE", f"{A}/logged-models/{c.fresh_logged_model()}", {})),
    ("traces.get", READ, lambda c: ("GET", f"{B}/traces/get", {"params": {"trace_id": c.trace,
                                                                           "allow_partial": "true"}})),
    ("traces.batch_get", READ, lambda c: ("GET", f"{B}/traces/batchGet", {"params": {"trace_ids": c.trace}})),
    ("traces.delete_tag", EDIT, lambda c: ("DELETE", f"{B}/traces/{c.tagged('trace')}/tags", {
        "params": {"key": "dk"}})),
    ("traces.delete", MANAGE, lambda c: ("POST", f"{B}/traces/delete-traces", {
        "json": {"experiment_id": c.exp, "request_ids": [c.fresh_trace()]}})),
    ("assessments.get", READ, lambda c: ("GET", f"{B}/traces/{c.trace}/assessments/{c.assessment()}", {})),
    ("assessments.update", EDIT, lambda c: ("PATCH", f"{B}/traces/{c.trace}/assessments/{c.assessment()}", {
        "json": {"assessment": {"assessment_name": "q", "feedback": {"value": 2}}, "update_mask": "feedback"}})),
    ("assessments.delete", MANAGE, lambda c: ("DELETE", f"{B}/traces/{c.trace}/assessments/{c.assessment()}", {})),
    # Managing permissions needs MANAGE (2.x routes by the route table, 3.x by their handler). The
    # allowed rows grant reader READ by id, which it already holds through the file.
    ("permissions.experiments.get", MANAGE, lambda c: ("GET", f"{A}/experiments/permissions/get", {
        "params": {"experiment_id": c.exp, "username": "editor"}})),
    ("permissions.experiments.create", MANAGE, lambda c: ("POST", f"{A}/experiments/permissions/create", {
        "json": {"experiment_id": c.exp, "username": "reader", "permission": "READ"}})),
    ("permissions.registered_models.create", MANAGE, lambda c: ("POST", f"{A}/registered-models/permissions/create", {
        "json": {"name": c.model, "username": "reader", "permission": "READ"}})),
    ("permissions.users.grant", MANAGE, lambda c: ("POST", f"{B}/users/permissions/grant", {"json": {
        "username": "reader", "resource_type": "experiment", "resource_id": c.exp, "permission": "READ"}})),
    ("permissions.users.get", MANAGE, lambda c: ("GET", f"{B}/users/permissions/get", {"params": {
        "username": "admin", "resource_type": "experiment", "resource_id": c.exp}})),
    ("permissions.users.list", ADMIN_ONLY, lambda c: ("GET", f"{B}/users/permissions/list", {
        "params": {"username": "admin"}})),
    # The UI's /ajax-api mount is the same router under the same operation ids.
    ("ajax:experiments.get", READ, lambda c: ("GET", "/ajax-api/2.0/mlflow/experiments/get", {
        "params": {"experiment_id": c.exp}})),
    ("ajax:runs.log_metric", EDIT, lambda c: ("POST", "/ajax-api/2.0/mlflow/runs/log-metric", {
        "json": {"run_id": c.run, "key": "m", "value": 1.5, "timestamp": 1, "step": 0}})),
    ("ajax:traces.get_info", READ, lambda c: ("GET", f"/ajax-api/3.0/mlflow/traces/{c.trace}", {})),
]

MATRIX = [(user, op, expected[user], build) for op, expected, build in OPERATIONS for user in USERS]


def _send(client: httpx.Client, ctx: Ctx, build: Request) -> httpx.Response:
    method, path, kwargs = build(ctx)
    return client.request(method, path, **kwargs)


def _build_world(server: LiveServer) -> World:
    admin = httpx.Client(base_url=server.url, auth=server.admin_auth, timeout=30)
    http = {"admin": admin}
    for name in USERS[1:]:
        _check(admin.post(f"{A}/users/create", json={"username": name, "password": PASSWORD}), f"create {name}")
        http[name] = httpx.Client(base_url=server.url, auth=(name, PASSWORD), timeout=30)
    owner = http["owner"]
    w = World(server, http, exp="", hidden_exp="", run="", hidden_run="", model="", trace="", logged_model="")
    w.exp = w.owner_experiment("team/main")
    w.hidden_exp = w.owner_experiment("private/main", editor=None)
    w.run, w.hidden_run = w.owner_run(w.exp), w.owner_run(w.hidden_exp)
    _check(owner.post(f"{A}/runs/log-metric", json={"run_id": w.run, "key": "m", "value": 1, "timestamp": 1}), "metric")
    _check(owner.put(f"{R}/artifacts/{w.exp}/{w.run}/artifacts/a.txt", content=b"hello"), "artifact")
    w.model = w.owner_model("team-model")
    _check(owner.post(f"{A}/model-versions/create", json={
        "name": w.model, "source": f"mlflow-artifacts:/{w.exp}/{w.run}/artifacts", "run_id": w.run}), "version 1")
    made = owner.post(f"{A}/logged-models", json={"experiment_id": w.exp, "name": "lm"})
    w.logged_model = _check(made, "logged model")["model"]["info"]["model_id"]
    w.trace = new_trace_id()
    _check(owner.post(f"{B}/traces", json=trace_body(w.trace, w.exp)), "trace")
    w.hidden_model = w.owner_model("private-model", editor=False)
    _check(owner.post(f"{A}/model-versions/create", json={"name": w.hidden_model, "source": (
        f"mlflow-artifacts:/{w.hidden_exp}/{w.hidden_run}/artifacts"), "run_id": w.hidden_run}), "hidden version")
    made = owner.post(f"{A}/logged-models", json={"experiment_id": w.hidden_exp, "name": "hidden-lm"})
    w.hidden_logged_model = _check(made, "hidden logged model")["model"]["info"]["model_id"]
    w.hidden_trace = new_trace_id()
    _check(owner.post(f"{B}/traces", json=trace_body(w.hidden_trace, w.hidden_exp)), "hidden trace")
    _check(owner.put(f"{R}/artifacts/{w.hidden_exp}/{w.hidden_run}/artifacts/a.txt", content=b"secret"), "artifact")
    _check(owner.post(f"{A}/runs/log-metric", json={"run_id": w.hidden_run, "key": "m", "value": 1,
                                                      "timestamp": 1}), "hidden metric")
    return w


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[World]:
    """One real server (SQLite) with the policy file, the six users and the owner's resources."""
    workdir: Path = tmp_path_factory.mktemp("authz-matrix")
    policy = workdir / "policy.yaml"
    policy.write_text(POLICY)
    uri = f"sqlite:///{workdir / 'mlgate.db'}"
    yield from _serve(workdir, uri, policy)


def _serve(workdir: Path, uri: str, policy: Path) -> Iterator[World]:
    server = start_server(workdir, uri, "--policy", str(policy))
    engine = make_engine(uri)
    w = None
    try:
        w = _build_world(server)
        w.audit_engine = engine
        yield w
    finally:
        for client in (w.http.values() if w else ()):
            client.close()
        engine.dispose()
        server.stop()


def _last_audit_id(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.coalesce(func.max(audit_log.c.id), 0))).scalar_one()


def _denials_since(engine, after: int, actor: str) -> list:
    with engine.connect() as conn:
        return conn.execute(select(audit_log).where(audit_log.c.id > after, audit_log.c.actor == actor,
                                                    audit_log.c.outcome == "denied")).all()


def _fingerprint(world: World) -> tuple:
    """The owner's shared resources as the administrator sees them (to prove a refusal changed nothing)."""
    admin = world.http["admin"]
    reads = [admin.get(f"{A}/experiments/get", params={"experiment_id": world.exp}),
             admin.get(f"{A}/runs/get", params={"run_id": world.run}),
             admin.get(f"{R}/artifacts", params={"path": f"{world.exp}/{world.run}/artifacts"}),
             admin.get(f"{A}/registered-models/get", params={"name": world.model}),
             admin.post(f"{A}/model-versions/search", json={"filter": f"name='{world.model}'"}),
             admin.get(f"{B}/traces/{world.trace}"),
             admin.get(f"{A}/logged-models/{world.logged_model}"),
             admin.post(f"{A}/experiments/search", json={"max_results": 1000}),
             admin.post(f"{A}/registered-models/search", json={"max_results": 1000}),
             admin.post(f"{A}/runs/search", json={"experiment_ids": [world.exp], "max_results": 1000})]
    return tuple(_check(r, "fingerprint") for r in reads)


@pytest.mark.parametrize(("user", "operation", "expected", "build"), MATRIX,
                         ids=[f"{op}-{user}" for user, op, _, _ in MATRIX])
def test_matrix(world: World, user: str, operation: str, expected: int, build: Request):
    check_row(world, user, operation, expected, build)


def check_row(world: World, user: str, operation: str, expected: int, build: Request) -> None:
    """One matrix cell: the status; for a refusal also its body, its audit record, and that nothing changed."""
    before = _last_audit_id(world.audit_engine)
    method, path, kwargs = build(Ctx(world))  # throw-away resources are made here, before the snapshot
    state = None if expected == 200 else _fingerprint(world)
    response = world.http[user].request(method, path, **kwargs)
    assert response.status_code == expected, f"{user} {operation}: {response.status_code} {response.text}"
    if expected == 200:
        return
    assert _fingerprint(world) == state, "a refused request changed the owner's resources"
    body = response.json()
    if expected == 403:
        assert body["error_code"] == "PERMISSION_DENIED", body
    else:
        # Hidden equals missing: the same request naming resources that do not exist answers identically.
        missing = _send(world.http[user], Ctx(world, "missing"), build)
        assert (response.status_code, body) == (missing.status_code, missing.json())
        assert body["error_code"] == "RESOURCE_DOES_NOT_EXIST", body
    # Every denial is audited with the operation and the rule that decided it.
    records = _denials_since(world.audit_engine, before, user)  # the audit names an actor by its bare name
    ours = [r for r in records if r.target == operation.removeprefix("ajax:")]
    assert ours, f"no audit record for {user} {operation}: {[(r.target, r.reason) for r in records]}"
    assert all("[rule: " in r.reason and "[rule: None]" not in r.reason for r in ours), [r.reason for r in ours]


def test_private_resources_answer_like_missing_ones_for_every_non_owner(world: World):
    """The owner's private experiment and model: every route group answers other users as for missing ids."""
    for op, expected, build in OPERATIONS:
        if expected["nobody"] != 404:
            continue  # not about a resource
        for user in ("editor", "reader", "member", "nobody"):
            got = _send(world.http[user], Ctx(world, "hidden"), build)
            missing = _send(world.http[user], Ctx(world, "missing"), build)
            assert got.status_code == missing.status_code == 404, (user, op, got.text)
            assert got.json() == missing.json(), (user, op)


def test_model_version_from_an_unreadable_run_is_refused(world: World):
    """EDIT on the model is not enough: the source run's experiment must be readable too."""
    for user in ("editor", "member"):
        body = {"name": world.model, "source": f"mlflow-artifacts:/{world.hidden_exp}/{world.hidden_run}/artifacts",
                "run_id": world.hidden_run}
        before = _check(world.http["admin"].post(f"{A}/model-versions/search",
                                                 json={"filter": f"name='{world.model}'"}), "versions")
        refused = world.http[user].post(f"{A}/model-versions/create", json=body)
        missing = world.http[user].post(f"{A}/model-versions/create", json={
            **body, "run_id": "0" * 32, "source": f"mlflow-artifacts:/{world.hidden_exp}/{'0' * 32}/artifacts"})
        assert refused.status_code == missing.status_code == 404, refused.text
        assert refused.json() == missing.json()
        after = _check(world.http["admin"].post(f"{A}/model-versions/search",
                                                json={"filter": f"name='{world.model}'"}), "versions")
        assert len(after.get("model_versions", [])) == len(before.get("model_versions", []))


def test_otlp_into_a_hidden_experiment_stores_nothing(world: World):
    """x-mlflow-experiment-id naming an experiment the caller cannot see: refused, and no trace is stored."""
    locations = [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": world.hidden_exp}}]
    search = {"locations": locations, "max_results": 500}
    before = _check(world.http["admin"].post(f"{B}/traces/search", json=search), "search").get("traces", [])
    for user in ("editor", "reader", "member", "nobody"):
        got = _send(world.http[user], Ctx(world, "hidden"), _otlp)
        assert got.status_code == 404, got.text
    after = _check(world.http["admin"].post(f"{B}/traces/search", json=search), "search").get("traces", [])
    assert len(after) == len(before)


@pytest.mark.parametrize("resource_type", ["experiment", "registered_model"])
def test_asking_about_ones_own_permission_reveals_no_hidden_resource(world: World, resource_type: str):
    """GET users/permissions/get about oneself: the effective level where readable, else the missing answer."""
    def ask(user: str, ctx: Ctx) -> httpx.Response:
        rid = ctx.exp if resource_type == "experiment" else ctx.model
        return world.http[user].get(f"{B}/users/permissions/get", params={
            "username": user, "resource_type": resource_type, "resource_id": rid})

    assert _check(ask("reader", Ctx(world)), "own")["permission"] == "READ"
    assert _check(ask("member", Ctx(world)), "own")["permission"] == "EDIT"
    for user in ("reader", "nobody"):
        hidden, missing = ask(user, Ctx(world, "hidden")), ask(user, Ctx(world, "missing"))
        assert hidden.status_code == missing.status_code == 404, hidden.text
        assert hidden.json() == missing.json()


def test_a_deny_in_the_file_vetoes_the_group_grant_and_is_cited(world: World):
    """access.denies[0] takes EDIT from ml-team on team/frozen*: member still reads, cannot write; audited."""
    exp = world.owner_experiment(f"team/frozen-{_u()}", editor=None)
    run = world.owner_run(exp)
    member = world.http["member"]
    assert _check(member.get(f"{A}/runs/get", params={"run_id": run}), "read")["run"]["info"]["run_id"] == run
    before = _last_audit_id(world.audit_engine)
    refused = member.post(f"{A}/runs/log-metric", json={"run_id": run, "key": "m", "value": 1, "timestamp": 1})
    assert refused.status_code == 403, refused.text
    assert refused.json()["error_code"] == "PERMISSION_DENIED"
    reasons = [r.reason for r in _denials_since(world.audit_engine, before, "member")]
    assert any(r.endswith("[rule: access.denies[0]]") for r in reasons), reasons
    # The deny names the group only: the owner and users outside it keep their levels.
    assert world.http["owner"].post(f"{A}/runs/log-metric", json={
        "run_id": run, "key": "m", "value": 1, "timestamp": 1}).status_code == 200
    assert world.http["reader"].get(f"{A}/runs/get", params={"run_id": run}).status_code == 200


# Requests on resources the caller may change that smuggle in one it cannot see (``c`` is the hidden
# or the missing context; ``c.w`` holds the visible ones). Each must answer as for a missing id.
SMUGGLED_REFERENCES: list[tuple[str, Request]] = [
    ("version source: another experiment's artifacts", lambda c: ("POST", f"{A}/model-versions/create", {"json": {
        "name": c.w.model, "source": f"mlflow-artifacts:/{c.exp}/{c.run}/artifacts", "run_id": c.w.run}})),
    ("version source: runs:/ of a hidden run", lambda c: ("POST", f"{A}/model-versions/create", {"json": {
        "name": c.w.model, "source": f"runs:/{c.run}/model"}})),
    ("version source: models:/ of a hidden model", lambda c: ("POST", f"{A}/model-versions/create", {"json": {
        "name": c.w.model, "source": f"models:/{c.model}/1"}})),
    ("logged model from a hidden source run", lambda c: ("POST", f"{A}/logged-models", {"json": {
        "experiment_id": c.w.exp, "name": "smuggled", "source_run_id": c.run}})),
    ("metric for a hidden logged model", lambda c: ("POST", f"{A}/runs/log-metric", {"json": {
        "run_id": c.w.run, "key": "smuggled", "value": 1, "timestamp": 1, "model_id": c.logged_model}})),
    ("batch metric for a hidden logged model", lambda c: ("POST", f"{A}/runs/log-batch", {"json": {
        "run_id": c.w.run, "metrics": [{"key": "smuggled", "value": 1, "timestamp": 1, "step": 0,
                                        "model_id": c.logged_model}]}})),
    ("run input of a hidden logged model", lambda c: ("POST", f"{A}/runs/log-inputs", {"json": {
        "run_id": c.w.run, "models": [{"model_id": c.logged_model}]}})),
    ("assessment body naming a hidden trace", lambda c: ("POST", f"{B}/traces/{c.w.trace}/assessments", {"json": {
        "assessment": {"assessment_name": "smuggled", "trace_id": c.trace,
                       "source": {"source_type": "HUMAN", "source_id": "x"}, "feedback": {"value": 1}}}})),
    ("bulk metric history with a hidden run", lambda c: ("GET", f"{A}/metrics/get-history-bulk-interval", {
        "params": [("run_ids", c.w.run), ("run_ids", c.run), ("metric_key", "m")]})),
    ("batch get with a hidden trace", lambda c: ("GET", f"{B}/traces/batchGet", {
        "params": [("trace_ids", c.w.trace), ("trace_ids", c.trace)]})),
]


@pytest.mark.parametrize("build", [b for _, b in SMUGGLED_REFERENCES], ids=[n for n, _ in SMUGGLED_REFERENCES])
def test_a_hidden_resource_cannot_ride_along_on_a_visible_one(world: World, build: Request):
    """member has EDIT on team/main and team-model; naming the owner's private resources beside them fails."""
    versions = {"filter": f"name='{world.model}'"}
    before_versions = _check(world.http["admin"].post(f"{A}/model-versions/search", json=versions), "v")
    before_run = _run_state(world, world.run)
    got = _send(world.http["member"], Ctx(world, "hidden"), build)
    missing = _send(world.http["member"], Ctx(world, "missing"), build)
    assert got.status_code == missing.status_code == 404, got.text
    assert got.json() == missing.json()
    after_versions = _check(world.http["admin"].post(f"{A}/model-versions/search", json=versions), "v")
    assert len(after_versions.get("model_versions", [])) == len(before_versions.get("model_versions", []))
    assert _run_state(world, world.run) == before_run


@pytest.mark.parametrize("user", ["editor", "member"])
def test_artifact_traversal_cannot_leave_a_visible_run(world: World, user: str):
    """Encoded '..' in proxied or run-relative paths never reads or writes the owner's private experiment."""
    up = "%2e%2e/" * 3
    hidden_file = f"{world.hidden_exp}/{world.hidden_run}/artifacts/a.txt"
    client = world.http[user]
    base = f"{R}/artifacts/{world.exp}/{world.run}/artifacts/{up}"
    put = client.put(f"{base}{world.hidden_exp}/{world.hidden_run}/artifacts/planted.txt", content=b"x")
    assert put.status_code in (400, 404), put.text
    got = client.get(f"{base}{hidden_file}")
    assert got.status_code in (400, 404), got.text
    for params in ({"run_id": world.run, "path": f"../../../{hidden_file}"},
                   {"run_id": world.run, "path": "../../.."}):
        assert b"secret" not in client.get("/get-artifact", params=params).content
        listed = client.get(f"{A}/artifacts/list", params=params)
        assert listed.status_code in (400, 404) or world.hidden_run not in listed.text, listed.text
    planted = world.http["admin"].get(f"{R}/artifacts/{world.hidden_exp}/{world.hidden_run}/artifacts/planted.txt")
    assert planted.status_code == 404


def _pages(client: httpx.Client, path: str, body: dict, key: str, id_of: Callable[[dict], str]) -> list[list[str]]:
    pages: list[list[str]] = []
    token = None
    for _ in range(50):  # bounded: a broken page token must not loop forever
        page = _check(client.post(path, json={**body, **({"page_token": token} if token else {})}), path)
        pages.append([id_of(item) for item in page.get(key, [])])
        token = page.get("next_page_token")
        if not token:
            return pages
    raise AssertionError(f"{path} did not finish paging")


def test_experiment_search_pages_are_full_and_hide_the_rest(world: World):
    """7 visible of 20 experiments with max_results=3: pages of 3, 3 and 1, and no hidden id."""
    prefix = f"page-{_u()}/"
    made = [world.owner_experiment(f"{prefix}{i:02d}", editor=None) for i in range(20)]
    granted = set(made[1::3])  # 7 of 20, spread so that filtering cannot fill a page by accident
    assert len(granted) == 7
    for exp in granted:
        _check(world.http["owner"].post(f"{A}/experiments/permissions/create", json={
            "experiment_id": exp, "username": "nobody", "permission": "READ"}), "grant")
    body = {"filter": f"name LIKE '{prefix}%'", "max_results": 3}
    pages = _pages(world.http["nobody"], f"{A}/experiments/search", body, "experiments", lambda e: e["experiment_id"])
    assert [len(p) for p in pages] == [3, 3, 1]
    assert {e for p in pages for e in p} == granted
    # The GET form filters the same way; a user with no grant on them sees none.
    got = world.http["nobody"].get(f"{A}/experiments/search", params={"filter": f"name LIKE '{prefix}%'",
                                                                        "max_results": 50})
    assert {e["experiment_id"] for e in _check(got, "GET search")["experiments"]} == granted
    reader = _check(world.http["reader"].post(f"{A}/experiments/search", json=body), "reader")
    assert reader.get("experiments", []) == []
    owner_pages = _pages(world.http["owner"], f"{A}/experiments/search", body, "experiments",
                         lambda e: e["experiment_id"])
    assert [len(p) for p in owner_pages] == [3] * 6 + [2]


def test_run_search_spans_visible_experiments_only(world: World):
    """Searching a visible and a hidden experiment together returns every visible run, paged, and no hidden one."""
    exps = [world.exp, world.hidden_exp]
    all_runs = _pages(world.http["admin"], f"{A}/runs/search", {"experiment_ids": exps, "max_results": 1000},
                      "runs", lambda r: r["info"]["run_id"])
    admin_ids = {r for p in all_runs for r in p}
    hidden_ids = {r for p in _pages(world.http["admin"], f"{A}/runs/search", {"experiment_ids": [world.hidden_exp]},
                                    "runs", lambda r: r["info"]["run_id"]) for r in p}
    assert world.hidden_run in hidden_ids
    for user in ("reader", "member", "editor"):
        pages = _pages(world.http[user], f"{A}/runs/search", {"experiment_ids": exps, "max_results": 2},
                       "runs", lambda r: r["info"]["run_id"])
        seen = [r for p in pages for r in p]
        assert all(len(p) == 2 for p in pages[:-1]), pages
        assert pages[-1], pages
        assert set(seen) == admin_ids - hidden_ids
        assert len(seen) == len(set(seen))
    nobody = _check(world.http["nobody"].post(f"{A}/runs/search", json={"experiment_ids": exps}), "nobody")
    assert nobody.get("runs", []) == []


def test_logged_model_and_trace_searches_page_fully_and_hide_the_private_experiment(world: World):
    """Logged models and traces of a hidden experiment, interleaved with visible ones, never appear in a
    search that names both experiments, and every page but the last is full."""
    owner, admin = world.http["owner"], world.http["admin"]
    for _ in range(3):  # interleave creation so hidden rows sit between visible ones in every ordering
        for exp in (world.exp, world.hidden_exp):
            _check(owner.post(f"{A}/logged-models", json={"experiment_id": exp, "name": "p"}), "logged model")
            _check(owner.post(f"{B}/traces", json=trace_body(new_trace_id(), exp)), "trace")
    exps = [world.exp, world.hidden_exp]
    locations = [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": e}} for e in exps]

    def model_ids(client: httpx.Client, experiment_ids: list[str], size: int) -> list[list[str]]:
        return _pages(client, f"{A}/logged-models/search", {"experiment_ids": experiment_ids, "max_results": size},
                      "models", lambda m: m["info"]["model_id"])

    def trace_ids(client: httpx.Client, where: list[dict], size: int) -> list[list[str]]:
        return _pages(client, f"{B}/traces/search", {"locations": where, "max_results": size}, "traces",
                      lambda t: t["trace_id"])

    visible_models = {m for p in model_ids(admin, [world.exp], 1000) for m in p}
    visible_traces = {t for p in trace_ids(admin, locations[:1], 500) for t in p}
    assert world.hidden_logged_model in {m for p in model_ids(admin, exps, 1000) for m in p}
    assert world.hidden_trace in {t for p in trace_ids(admin, locations, 500) for t in p}
    for user in ("reader", "member"):
        for pages, visible in ((model_ids(world.http[user], exps, 2), visible_models),
                               (trace_ids(world.http[user], locations, 2), visible_traces)):
            seen = [i for p in pages for i in p]
            assert [len(p) for p in pages[:-1]] == [2] * (len(pages) - 1), pages
            assert sorted(seen) == sorted(visible)
    assert model_ids(world.http["nobody"], exps, 2) == [[]]
    assert trace_ids(world.http["nobody"], locations, 2) == [[]]


def test_registry_and_prompt_searches_show_only_visible_ones(world: World, monkeypatch):
    """search_registered_models and the real client's search_prompts list only what the caller may read."""
    from mlflow import MlflowClient

    owner = world.http["owner"]
    suffix = _u()
    prompt_tag = [{"key": "mlflow.prompt.is_prompt", "value": "true"}]
    for name in (f"team-prompt-{suffix}", f"private-prompt-{suffix}"):
        _check(owner.post(f"{A}/registered-models/create", json={"name": name, "tags": prompt_tag}), name)
    _check(owner.post(f"{A}/registered-models/create", json={"name": f"private-model-{suffix}"}), "private model")
    models = _check(world.http["reader"].post(f"{A}/registered-models/search", json={"max_results": 1000}), "s")
    names = {m["name"] for m in models.get("registered_models", [])}
    assert world.model in names
    assert f"private-model-{suffix}" not in names
    assert all(n.startswith("team-") for n in names), names
    versions = _check(world.http["reader"].post(f"{A}/model-versions/search", json={"max_results": 1000}), "v")
    assert {v["name"] for v in versions.get("model_versions", [])} == {world.model}
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    for user, expected in (("reader", {f"team-prompt-{suffix}"}), ("nobody", set()),
                           ("owner", {f"team-prompt-{suffix}", f"private-prompt-{suffix}"})):
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
        found = MlflowClient(world.server.url).search_prompts(filter_string=f"name LIKE '%prompt-{suffix}'")
        assert {p.name for p in found} == expected, user


def test_real_client_gets_permission_denied_and_resource_missing(world: World, monkeypatch):
    """The unmodified mlflow client surfaces the two refusals with MLflow's error codes."""
    from mlflow import MlflowClient
    from mlflow.exceptions import RestException

    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "reader")
    client = MlflowClient(world.server.url)
    assert client.get_run(world.run).info.run_id == world.run
    with pytest.raises(RestException) as denied:
        client.log_metric(world.run, "x", 1.0)
    assert denied.value.error_code == "PERMISSION_DENIED"
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "nobody")
    with pytest.raises(RestException) as hidden:
        MlflowClient(world.server.url).get_run(world.run)
    assert hidden.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def _run_state(world: World, run_id: str) -> dict:
    data = _check(world.http["admin"].get(f"{A}/runs/get", params={"run_id": run_id}), "get run")["run"]["data"]
    return {"metrics": data.get("metrics", []), "params": data.get("params", []),
            "tags": [t for t in data.get("tags", []) if not t["key"].startswith("mlflow.")]}


# (body, refused): the MLflow 3.17.2 attack puts bob's run id where the authorizer looks and the
# victim's where the handler looks. Duplicate keys and keys with control characters are refused; a key
# that merely differs (run_uuid beside run_id, "run_id ") is a different field, and the handler must
# then read the same run_id the authorizer checked.
SMUGGLED = [
    ('{{"run_id": "{mine}", "run_id\\u0000": "{theirs}", KV}}', True),
    ('{{"run_id\\u0000": "{theirs}", "run_id": "{mine}", KV}}', True),
    ('{{"run_id": "{mine}", "run_id\\u001f": "{theirs}", KV}}', True),
    ('{{"run_id": "{mine}", "run_id": "{theirs}", KV}}', True),
    ('{{"run_id": "{theirs}", "run_id": "{mine}", KV}}', True),
    ('{{"run_id": "{mine}", "run_uuid": "{theirs}", KV}}', False),
    ('{{"run_id": "{mine}", "run_id ": "{theirs}", KV}}', False),
]
KV = {"runs/log-metric": '"key": "pwned", "value": 1, "timestamp": 1',
      "runs/set-tag": '"key": "pwned", "value": "1"', "runs/log-parameter": '"key": "pwned", "value": "1"'}


@pytest.mark.parametrize(("body", "refused"), SMUGGLED,
                         ids=["nul-after", "nul-before", "unit-separator", "dup-theirs-last", "dup-mine-last",
                              "run_uuid", "trailing-space"])
@pytest.mark.parametrize("path", list(KV))
def test_duplicate_and_control_character_keys_cannot_reach_another_run(world: World, body: str, refused: bool,
                                                                        path: str):
    """bob (nobody) owns a run of his own; smuggling the owner's run id beside it never writes to the owner's run."""
    nobody = world.http["nobody"]
    own_exp = _check(nobody.post(f"{A}/experiments/create", json={"name": f"nobody-{_u()}"}), "own")["experiment_id"]
    mine = _check(nobody.post(f"{A}/runs/create", json={"experiment_id": own_exp}), "own run")["run"]["info"]["run_id"]
    text = body.format(mine=mine, theirs=world.run).replace("KV", KV[path])
    theirs_before, mine_before = _run_state(world, world.run), _run_state(world, mine)
    response = nobody.post(f"{A}/{path}", content=text.encode(), headers={"content-type": "application/json"})
    if refused:
        assert response.status_code == 400, response.text
        assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert _run_state(world, mine) == mine_before
    else:
        assert response.status_code == 200, response.text
        assert _run_state(world, mine) != mine_before  # the write went to the run that was authorized
    assert _run_state(world, world.run) == theirs_before


def test_ids_of_hidden_children_under_ones_own_parent_change_nothing(world: World):
    """bob (nobody) manages his own experiment, run and trace; naming the owner's hidden run, trace or
    assessment beside them (second id field, delete list, assessment id) never reaches the owner's."""
    nobody, admin = world.http["nobody"], world.http["admin"]
    own = _check(nobody.post(f"{A}/experiments/create", json={"name": f"bob-{_u()}"}), "exp")["experiment_id"]
    mine = _check(nobody.post(f"{A}/runs/create", json={"experiment_id": own}), "run")["run"]["info"]["run_id"]
    my_trace = new_trace_id()
    _check(nobody.post(f"{B}/traces", json=trace_body(my_trace, own)), "trace")
    assessment = _check(world.http["owner"].post(f"{B}/traces/{world.hidden_trace}/assessments", json={
        "assessment": {"assessment_name": "q", "trace_id": world.hidden_trace,
                       "source": {"source_type": "HUMAN", "source_id": "x"}, "feedback": {"value": 1}}}),
        "assessment")["assessment"]
    theirs, trace = world.hidden_run, world.hidden_trace

    def victim() -> tuple:
        run = _check(admin.get(f"{A}/runs/get", params={"run_id": theirs}), "run")["run"]
        info = _check(admin.get(f"{B}/traces/{trace}"), "trace")["trace"]["trace_info"]
        kept = _check(admin.get(f"{B}/traces/{trace}/assessments/{assessment['assessment_id']}"), "a")["assessment"]
        return run["info"]["status"], run["info"]["lifecycle_stage"], run["data"], info.get("tags"), kept

    before = victim()
    attempts = [
        ("POST", f"{A}/runs/update", {"json": {"run_id": mine, "run_uuid": theirs, "status": "FAILED"}}),
        ("POST", f"{A}/runs/log-batch", {"json": {"run_id": mine, "run_uuid": theirs, "tags": [
            {"key": "pwned", "value": "1"}]}}),
        ("PATCH", f"{B}/traces/{my_trace}/tags", {"json": {"key": "pwned", "value": "1", "trace_id": trace}}),
        ("PATCH", f"{A}/traces/{my_trace}/tags", {"json": {"key": "pwned", "value": "1", "request_id": trace}}),
        ("PATCH", f"{B}/traces/{my_trace}/assessments/{assessment['assessment_id']}", {"json": {
            "assessment": {"assessment_name": "q", "feedback": {"value": 99}}, "update_mask": "feedback"}}),
        ("DELETE", f"{B}/traces/{my_trace}/assessments/{assessment['assessment_id']}", {}),
        ("POST", f"{B}/traces/delete-traces", {"json": {"experiment_id": own, "request_ids": [trace]}}),
        ("POST", f"{A}/traces/delete-traces", {"json": {"experiment_id": own, "request_ids": [trace]}}),
        ("POST", f"{A}/runs/delete", {"json": {"run_id": mine, "run_uuid": theirs}}),
    ]
    for method, path, kwargs in attempts:
        response = nobody.request(method, path, **kwargs)
        assert response.status_code < 500, response.text
        assert theirs not in response.text
        assert victim() == before, (method, path, response.text)


@pytest.fixture(scope="module")
def pg_world(tmp_path_factory) -> Iterator[World]:
    """The same world on PostgreSQL (a smaller matrix: a few rows per route group)."""
    workdir: Path = tmp_path_factory.mktemp("authz-matrix-pg")
    policy = workdir / "policy.yaml"
    policy.write_text(POLICY)
    with fresh_postgres_database() as uri:
        yield from _serve(workdir, uri, policy)


PG_OPERATIONS = {"experiments.get", "experiments.set_tag", "experiments.delete", "runs.log_batch", "runs.delete",
                 "metrics.get_history_bulk_interval", "artifacts.put", "artifacts.get", "artifacts.delete",
                 "registered_models.update", "model_versions.create", "registered_models.delete_alias",
                 "logged_models.get", "traces.set_tag", "traces.delete", "assessments.update", "otlp.ingest",
                 "permissions.users.grant"}
PG_MATRIX = [row for row in MATRIX if row[1] in PG_OPERATIONS]


@pytest.mark.parametrize(("user", "operation", "expected", "build"), PG_MATRIX,
                         ids=[f"{op}-{user}" for user, op, _, _ in PG_MATRIX])
def test_matrix_postgresql(pg_world: World, user: str, operation: str, expected: int, build: Request):
    check_row(pg_world, user, operation, expected, build)
