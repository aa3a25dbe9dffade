"""Schemathesis against a real mlgate server, as a non-admin user with a few grants.

The server is seeded with resources the user may see (a shared experiment and model, the user's own
experiment and run) and resources the user may not (another team's experiment, run, registered
model, model version, logged model and trace). The OpenAPI document is the server's own; the test
only widens the schemas of id and name fields so that generated requests also name the real visible
and hidden resources (their ids and names: the probes), not only random strings.

Every hidden resource also carries markers the fuzzer never sends (a tag or param value, a
description, a run or model name, a trace preview). Every generated request, valid and invalid
(positive and negative generation), must get: no 5xx; a status and content type the document
declares, and a body matching the declared schema; and no trace of a hidden resource: no marker in
any answer; no probe unless this very request carried it (an error may echo what was asked) or an
earlier successful write of the fuzzer's own put it in its own resources; and no hidden experiment id
in an ``experiment_id`` field.

Budget: ``MLGATE_FUZZ_EXAMPLES`` generated examples per operation and mode (default 8), derandomized,
so CI sends the same requests every time and finishes in about two minutes; raise it for a deeper run.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import LiveServer, default_database, start_server

pytestmark = [pytest.mark.e2e, pytest.mark.backend_switch]
A = "/api/2.0/mlflow"
EXAMPLES = int(os.environ.get("MLGATE_FUZZ_EXAMPLES", "8"))
# Request fields that name a resource: generation draws them from the seeded ids too.
ID_FIELDS = {"experiment_id", "run_id", "run_uuid", "model_id", "source_run_id", "trace_id", "request_id",
             "name", "experiment_name", "new_name"}
ID_LIST_FIELDS = {"experiment_ids", "run_ids", "trace_ids", "request_ids"}


@dataclass
class World:
    """The server, the fuzzing user's token, and what it may and may not see."""

    server: LiveServer
    token: str
    visible: list[str] = field(default_factory=list)
    hidden_ids: list[str] = field(default_factory=list)  # probes: drawn by generation, to ask for hidden things
    hidden_markers: list[str] = field(default_factory=list)  # never sent: must never appear in any answer
    hidden_experiment_ids: set[str] = field(default_factory=set)
    written: set[str] = field(default_factory=set)  # probes the fuzzer stored in its own resources (2xx writes)
    # How the admin reads each hidden resource (path, query), for the controls.
    hidden_reads: dict[str, tuple[str, dict]] = field(default_factory=dict)


def _ok(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def _seed(server: LiveServer) -> World:
    tag = secrets.token_hex(4)
    with httpx.Client(base_url=server.url, auth=server.admin_auth, timeout=30) as admin:
        password = "Fz-" + secrets.token_urlsafe(18)
        _ok(admin.post(f"{A}/users/create", json={"username": "fuzzer", "password": password}))
        token = _ok(admin.post(f"{A}/users/tokens/create", json={"name": "fuzz", "expires_in_days": 1,
                                                                 "username": "fuzzer"}))["token"]
        # Hidden: another team's experiment, run, logged model, registered model and version.
        hidden_name = f"hidden-exp-{tag}"
        hidden_exp = _ok(admin.post(f"{A}/experiments/create", json={"name": hidden_name}))["experiment_id"]
        hidden_run = _ok(admin.post(f"{A}/runs/create", json={
            "experiment_id": hidden_exp, "run_name": f"hidden-run-{tag}",
            "tags": [{"key": "secret", "value": f"hidden-tag-{tag}"}]}))["run"]["info"]["run_id"]
        _ok(admin.post(f"{A}/runs/log-parameter", json={"run_id": hidden_run, "key": "p",
                                                        "value": f"hidden-param-{tag}"}))
        _ok(admin.post(f"{A}/experiments/set-experiment-tag", json={
            "experiment_id": hidden_exp, "key": "note", "value": f"hidden-exp-tag-{tag}"}))
        hidden_lm = _ok(admin.post(f"{A}/logged-models", json={"experiment_id": hidden_exp,
                                                               "name": f"hidden-lm-{tag}"}))["model"]["info"]
        hidden_model = f"hidden-model-{tag}"
        _ok(admin.post(f"{A}/registered-models/create", json={
            "name": hidden_model, "description": f"hidden-model-desc-{tag}",
            "tags": [{"key": "note", "value": f"hidden-model-tag-{tag}"}]}))
        _ok(admin.post(f"{A}/model-versions/create", json={
            "name": hidden_model, "source": f"runs:/{hidden_run}/model", "run_id": hidden_run,
            "description": f"hidden-version-desc-{tag}",
            "tags": [{"key": "note", "value": f"hidden-version-tag-{tag}"}]}))
        hidden_trace = "tr-" + secrets.token_hex(16)
        _ok(admin.post("/api/3.0/mlflow/traces", json={"trace": {"trace_info": {
            "trace_id": hidden_trace, "request_time": "2026-01-01T00:00:00Z", "state": "OK",
            "trace_location": {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": hidden_exp}},
            "request_preview": f"hidden-trace-preview-{tag}", "tags": {"note": f"hidden-trace-tag-{tag}"}}}}))
        # Visible: a shared experiment and model (READ), and the user's own experiment and run.
        shared_exp = _ok(admin.post(f"{A}/experiments/create", json={"name": f"shared-exp-{tag}"}))["experiment_id"]
        shared_run = _ok(admin.post(f"{A}/runs/create", json={"experiment_id": shared_exp}))["run"]["info"]["run_id"]
        shared_model = f"shared-model-{tag}"
        _ok(admin.post(f"{A}/registered-models/create", json={"name": shared_model}))
        _ok(admin.post(f"{A}/experiments/permissions/create", json={
            "experiment_id": shared_exp, "username": "fuzzer", "permission": "READ"}))
        _ok(admin.post(f"{A}/registered-models/permissions/create", json={
            "name": shared_model, "username": "fuzzer", "permission": "READ"}))
    headers = {"Authorization": f"Bearer {token}"}
    own_exp = _ok(httpx.post(f"{server.url}{A}/experiments/create", json={"name": f"own-exp-{tag}"},
                             headers=headers, timeout=30))["experiment_id"]
    own_run = _ok(httpx.post(f"{server.url}{A}/runs/create", json={"experiment_id": own_exp}, headers=headers,
                             timeout=30))["run"]["info"]["run_id"]
    world = World(server, token)
    world.visible = [shared_exp, own_exp, shared_run, own_run, shared_model, f"shared-exp-{tag}"]
    world.hidden_ids = [hidden_exp, hidden_name, hidden_run, hidden_lm["model_id"], hidden_model, hidden_trace]
    # Never sent by the fuzzer (generation knows only the ids and names above): any answer containing one
    # leaked a hidden resource, whatever the request was. Each hidden resource has at least one.
    world.hidden_markers = [f"hidden-exp-tag-{tag}", f"hidden-run-{tag}", f"hidden-tag-{tag}", f"hidden-param-{tag}",
                            f"hidden-lm-{tag}", f"hidden-model-desc-{tag}", f"hidden-model-tag-{tag}",
                            f"hidden-version-desc-{tag}", f"hidden-version-tag-{tag}", f"hidden-trace-preview-{tag}",
                            f"hidden-trace-tag-{tag}"]
    world.hidden_experiment_ids = {hidden_exp}
    world.hidden_reads = {
        "experiment": (f"{A}/experiments/get", {"experiment_id": hidden_exp}),
        "run": (f"{A}/runs/get", {"run_id": hidden_run}),
        "logged model": (f"{A}/logged-models/{hidden_lm['model_id']}", {}),
        "registered model": (f"{A}/registered-models/get", {"name": hidden_model}),
        "model version": (f"{A}/model-versions/get", {"name": hidden_model, "version": "1"}),
        "trace": (f"/api/3.0/mlflow/traces/{hidden_trace}", {}),
    }
    # The hidden ids are real: the admin sees them (so "not leaked" below is not "not there").
    with httpx.Client(base_url=server.url, auth=server.admin_auth, timeout=30) as admin:
        assert hidden_run in admin.post(f"{A}/runs/search", json={"experiment_ids": [hidden_exp]}).text
    return world


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[World]:
    """One real server with the seeded resources (SQLite, or PostgreSQL under MLGATE_TEST_BACKEND=postgresql)."""
    workdir = tmp_path_factory.mktemp("fuzz")
    # The fuzzer sends thousands of requests from one address: the request rate limit and the per-address
    # lockout (each tested on its own) are lifted, so every answer comes from the API, never a blanket 429.
    policy = workdir / "policy.yaml"
    policy.write_text("version: 1\nauth:\n  lockout: {address_max_failures: 100000, user_max_failures: 1000}\n"
                      "network:\n  rate_limit: {enabled: false}\n")
    with default_database(workdir) as uri:
        # Workspaces on, so their API (and the roles API) is fuzzed too, not answered "feature disabled".
        server = start_server(workdir, uri, "--policy", str(policy), "--enable-workspaces")
        try:
            yield _seed(server)
        finally:
            server.stop()


def _aim(schema: dict, known: list[str]) -> dict:
    """``schema``, or one of the known ids: generation then reaches real (visible and hidden) resources."""
    return {"anyOf": [schema, {"enum": known}]}


def _widen(doc: dict, known: list[str]) -> dict:
    doc = copy.deepcopy(doc)
    for operations in doc["paths"].values():
        for operation in operations.values():
            for param in operation.get("parameters", []):
                if param["name"] in ID_FIELDS and "schema" in param and param["schema"].get("type") == "string":
                    param["schema"] = _aim(param["schema"], known)
                elif param["name"] in ID_LIST_FIELDS and "schema" in param:
                    param["schema"]["items"] = _aim(param["schema"]["items"], known)
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            for name, prop in body.get("properties", {}).items():
                if name in ID_FIELDS and prop.get("type") == "string":
                    body["properties"][name] = _aim(prop, known)
                elif name in ID_LIST_FIELDS and prop.get("type") == "array":
                    prop["items"] = _aim(prop["items"], known)
    return doc


@pytest.fixture(scope="module")
def api_schema(world: World):
    """The server's own OpenAPI document, as the fuzzing user reads it, with id fields aimed at the seed."""
    doc = httpx.get(f"{world.server.url}/api/openapi.json", headers={"Authorization": f"Bearer {world.token}"},
                    timeout=30)
    assert doc.status_code == 200, doc.text
    known = world.visible + world.hidden_ids
    schema = schemathesis.openapi.from_dict(_widen(doc.json(), known))
    schema.config.update(base_url=world.server.url)
    schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                                    max_examples=EXAMPLES, deterministic=True, with_security_parameters=False)
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


def _request_text(case) -> str:
    parts = [case.formatted_path, json.dumps(case.query or {}, default=str), json.dumps(case.path_parameters or {},
                                                                                           default=str)]
    if case.body is not None and not isinstance(case.body, bytes):
        parts.append(json.dumps(case.body, default=str, ensure_ascii=False))
    return " ".join(parts)


def _experiment_ids_in(value) -> Iterator[str]:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, item in node.items():
                if key == "experiment_id" and isinstance(item, str | int):
                    yield str(item)
                stack.append(item)
        elif isinstance(node, list):
            stack.extend(node)


def _content_type(response) -> str:
    """The answer's content type: schemathesis' responses keep a list per header, requests' a string."""
    value = response.headers.get("content-type") or ""
    return (value[0] if value else "") if isinstance(value, list) else value


def assert_no_hidden_resource(world: World, case, response) -> None:
    """No marker of a hidden resource; no probe the request did not carry; no hidden experiment id.

    A probe (a hidden id or name) may be echoed in the answer to the request that carried it (an error
    naming what was asked), and may come back in the fuzzer's own resources after a successful write of
    its own stored it (a registered model named like the hidden run id, say). Markers are never sent, so
    they are checked in every answer.
    """
    body = response.content.decode("utf-8", errors="replace")
    request = _request_text(case)
    leaked = [m for m in world.hidden_markers if m in body]
    # An experiment id is a short number found inside any text ("1" in "3.17.2"): it is checked where it means
    # something, in experiment_id fields (below); the other probes are long random ids and names.
    leaked += [p for p in world.hidden_ids
               if not p.isdigit() and p in body and p not in request and p not in world.written]
    assert leaked == [], f"{case.method} {case.formatted_path} leaked {leaked}: {body[:500]}"
    if case.method.upper() != "GET" and response.status_code < 300:
        world.written.update(p for p in world.hidden_ids if p in request)
    if _content_type(response).startswith("application/json"):
        try:
            payload = json.loads(body)
        except ValueError:
            return
        shown = set(_experiment_ids_in(payload)) & world.hidden_experiment_ids
        assert not shown, f"{case.method} {case.formatted_path} returned hidden experiment {shown}: {body[:500]}"


@schema.parametrize()
@pytest.mark.timeout(900)  # one item for all operations: a safety net on a loaded machine (about a minute idle)
@settings(deadline=None, derandomize=True, database=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_api_fuzz(case, world):
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {world.token}"
    # Unique names for creates, so repeated examples are not all "already exists".
    session.headers["X-Request-Id"] = uuid.uuid4().hex
    response = case.call(session=session)
    assert response.status_code != 429, "the fuzz server's rate limits are lifted: a 429 would hide the API's answer"
    assert response.status_code < 500, (f"{case.method} {case.formatted_path} -> {response.status_code}: "
                                        f"{response.text[:500]}\n{case.as_curl_command()}")
    # Not positive_data_acceptance: the document gives fields and types, while the handlers also apply
    # MLflow's value rules (id formats, lengths), so a schema-valid request may rightly get a 400.
    case.validate_response(response, checks=[not_a_server_error, status_code_conformance, content_type_conformance,
                                             response_schema_conformance, negative_data_rejection])
    assert_no_hidden_resource(world, case, response)


def test_the_leak_check_sees_a_hidden_experiment_id(world):
    """Control for the experiment_id branch: an answer with no marker and no long probe, whose only trace of
    the hidden experiment is its id in an ``experiment_id`` field (a plain run the admin made there)."""
    hidden_exp = next(iter(world.hidden_experiment_ids))
    with httpx.Client(base_url=world.server.url, auth=world.server.admin_auth, timeout=30) as admin:
        run_id = _ok(admin.post(f"{A}/runs/create", json={"experiment_id": hidden_exp}))["run"]["info"]["run_id"]
    answer = requests.get(f"{world.server.url}{A}/runs/get", params={"run_id": run_id}, timeout=30,
                          auth=world.server.admin_auth)
    assert answer.status_code == 200, answer.text
    assert not [m for m in world.hidden_markers + world.hidden_ids if not m.isdigit() and m in answer.text]

    class Case:
        method, formatted_path, query, path_parameters, body = "GET", f"{A}/runs/get", {"run_id": run_id}, {}, None

    with pytest.raises(AssertionError, match="returned hidden experiment"):
        assert_no_hidden_resource(world, Case(), answer)


@pytest.mark.parametrize("kind", ["experiment", "run", "logged model", "registered model", "model version", "trace"])
def test_the_leak_check_sees_each_hidden_resource(world, kind):
    """Control: the check fails on an answer that does show a hidden resource (here, the admin's), even when
    the request itself named it, so the probe is excused and only the never-sent markers can catch it."""
    path, query = world.hidden_reads[kind]

    class Case:
        method, formatted_path, query, path_parameters, body = "GET", path, {}, {}, None

    Case.query = query
    Case.body = {"every probe": world.hidden_ids}
    answer = requests.get(f"{world.server.url}{path}", params=query, timeout=30, auth=world.server.admin_auth)
    assert answer.status_code == 200, answer.text
    with pytest.raises(AssertionError, match="leaked"):
        assert_no_hidden_resource(world, Case(), answer)
