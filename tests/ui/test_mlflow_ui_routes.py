"""The routes MLflow's web UI calls besides the tracking API: dataset summaries, trace metrics and span data,
the caller's permission rows, and the features mlgate does not serve (answered "off", as MLflow does)."""

from __future__ import annotations

import os

from starlette.testclient import TestClient

from tests.tracking.otlp_builders import export_request, make_span, new_otel_trace_id
from tests.ui.conftest import BASE, READER_PASSWORD, new_run, ok, sign_in

A = "/api/2.0/mlflow"
AJAX2, AJAX3 = "/ajax-api/2.0/mlflow", "/ajax-api/3.0/mlflow"
MISSING = {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "The requested resource does not exist."}


def _reader(ui):
    reader = sign_in(ui["app"], "reader", READER_PASSWORD)
    reader.headers["X-CSRF-Token"] = reader.get(f"{AJAX2}/users/current").json()["csrf_token"]
    return reader


def _log_dataset(api, run_id: str, name: str) -> None:
    ok(api.post(f"{A}/runs/log-inputs", json={"run_id": run_id, "datasets": [{
        "tags": [{"key": "mlflow.data.context", "value": "training"}],
        "dataset": {"name": name, "digest": "d1", "source_type": "local", "source": "{}"}}]}))


def _trace(api, experiment_id: str) -> str:
    tid, root, child = new_otel_trace_id(), os.urandom(8), os.urandom(8)
    spans = [make_span(tid, root, "agent", start_ns=10**18, end_ns=10**18 + 900),
             make_span(tid, child, "retrieve", parent=root, start_ns=10**18 + 100, end_ns=10**18 + 500, error=True)]
    sent = api.post("/v1/traces", content=export_request(*spans).SerializeToString(),
                    headers={"content-type": "application/x-protobuf", "x-mlflow-experiment-id": experiment_id})
    assert sent.status_code == 200, sent.text
    return "tr-" + tid.hex()


def test_dataset_summaries_and_trace_metrics_check_every_experiment(ui):
    api = ui["api"]
    _log_dataset(api, new_run(api, ui["shared"], "r1"), "shared-data")
    _log_dataset(api, new_run(api, ui["hidden"], "r2"), "hidden-data")
    reader = _reader(ui)
    found = ok(reader.post(f"{AJAX2}/experiments/search-datasets", json={"experiment_ids": [ui["shared"]]}))
    assert found == {"dataset_summaries": [{"experiment_id": ui["shared"], "name": "shared-data", "digest": "d1",
                                            "context": "training"}]}
    for body in ({"experiment_ids": [ui["hidden"]]}, {"experiment_ids": [ui["shared"], ui["hidden"]]},
                 {"experiment_ids": ["987654"]}):
        for path in (f"{AJAX2}/experiments/search-datasets", f"{AJAX3}/traces/metrics"):
            refused = reader.post(path, json=body)
            assert refused.status_code == 404, (path, body, refused.text)
            assert refused.json() == MISSING
    assert reader.post(f"{AJAX3}/traces/metrics", json={"experiment_ids": [ui["shared"]], "view_type": "TRACES",
                                                        "metric_name": "trace_count"}).status_code == 400
    too_many = reader.post(f"{AJAX2}/experiments/search-datasets", json={"experiment_ids": [ui["shared"]] * 21})
    assert too_many.status_code == 400


def test_trace_span_data_in_the_form_mlflows_ui_reads(ui):
    api = ui["api"]
    visible, hidden = _trace(api, ui["shared"]), _trace(api, ui["hidden"])
    reader = _reader(ui)
    spans = ok(reader.get(f"{AJAX3}/get-trace-artifact", params={"request_id": visible}))["spans"]
    assert [s["name"] for s in spans] == ["agent", "retrieve"]
    assert spans[0]["parent_span_id"] is None
    assert spans[1]["parent_span_id"] == spans[0]["span_id"]
    assert spans[1]["status"]["code"] == "STATUS_CODE_ERROR"
    assert isinstance(spans[0]["start_time_unix_nano"], int)
    assert ok(reader.get(f"{AJAX2}/get-trace-artifact", params={"request_id": visible}))["spans"] == spans
    for trace_id in (hidden, "tr-" + "0" * 32):
        refused = reader.get(f"{AJAX3}/get-trace-artifact", params={"request_id": trace_id})
        assert refused.status_code == 404
        assert refused.json() == MISSING


def test_features_mlgate_does_not_serve_answer_off(ui):
    reader = _reader(ui)
    assert ok(reader.get(f"{AJAX3}/assistant/config")) == {"providers": {}, "projects": {},
                                                           "remote_access_allowed": False}
    assert ok(reader.get(f"{AJAX3}/assistant/providers"))["providers"] == []
    assert ok(reader.get(f"{AJAX3}/ui-telemetry"))["disable_ui_telemetry"] is True
    assert ok(reader.post(f"{AJAX3}/ui-telemetry", json={"records": [{"x": 1}]})) == {"status": "disabled"}
    assert ok(reader.get(f"{AJAX2}/gateway-proxy", params={"gateway_path": "api/2.0/endpoints/"})) == {"endpoints": []}
    assert ok(reader.post(f"{AJAX3}/datasets/search", json={"experiment_ids": [ui["shared"]]})) == {"datasets": []}
    assert ok(reader.get(f"{AJAX3}/users/current/permissions")) == {"is_admin": False, "permissions": []}
    admin = ui["admin"]()
    assert ok(admin.get(f"{AJAX3}/users/current/permissions"))["is_admin"] is True
    # Signed-in people only.
    assert TestClient(ui["app"], base_url=BASE).get(f"{AJAX3}/assistant/config").status_code == 401


def _run_traces(api, experiment_id: str, run_id: str) -> list[str]:
    found = ok(api.post("/api/3.0/mlflow/traces/search", json={
        "locations": [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": experiment_id}}],
        "filter": f"run_id = '{run_id}'"}))
    return [t["trace_id"] for t in found.get("traces", [])]


def test_link_traces_to_run_needs_edit_on_the_run_and_every_trace(ui):
    api = ui["api"]
    editable = ok(api.post(f"{A}/experiments/create", json={"name": "editor-exp"}))["experiment_id"]
    ok(api.post(f"{A}/users/create", json={"username": "editor", "password": READER_PASSWORD}))
    ok(api.post(f"{A}/experiments/permissions/create",
                json={"experiment_id": editable, "username": "editor", "permission": "EDIT"}))
    ok(api.post(f"{A}/experiments/permissions/create",
                json={"experiment_id": ui["shared"], "username": "editor", "permission": "READ"}))
    run, shared_run = new_run(api, editable, "agent-run"), new_run(api, ui["shared"], "shared-run")
    mine, shared, hidden = _trace(api, editable), _trace(api, ui["shared"]), _trace(api, ui["hidden"])
    editor = sign_in(ui["app"], "editor", READER_PASSWORD)
    editor.headers["X-CSRF-Token"] = editor.get(f"{AJAX2}/users/current").json()["csrf_token"]
    reader = _reader(ui)
    assert _run_traces(api, editable, run) == []
    # READ on the run's experiment is not enough; neither is EDIT on the run with READ on a trace; a hidden
    # trace or run is missing. Nothing is linked by any refusal.
    for client, body, status in (
            (reader, {"run_id": shared_run, "trace_ids": [shared]}, 403),
            (editor, {"run_id": run, "trace_ids": [mine, shared]}, 403),
            (editor, {"run_id": shared_run, "trace_ids": [mine]}, 403),
            (editor, {"run_id": run, "trace_ids": [hidden]}, 404),
            (editor, {"run_id": new_run(api, ui["hidden"], "hidden-run"), "trace_ids": [mine]}, 404),
            (editor, {"run_id": run, "trace_ids": [mine] * 101}, 400),
            (editor, {"run_id": run, "trace_ids": "not-a-trace"}, 404),  # read as a trace id: none such
            (api, {"run_id": run, "trace_ids": "not-a-list"}, 400),
            (editor, {"trace_ids": [mine]}, 400)):
        for prefix in (A, AJAX2):
            answer = client.post(f"{prefix}/traces/link-to-run", json=body)
            assert answer.status_code == status, (body, answer.text)
    assert _run_traces(api, editable, run) == []
    assert _run_traces(api, ui["shared"], shared_run) == []
    # EDIT on both: linked (twice is a no-op), and the run's traces search finds it, as MLflow's does.
    for _ in range(2):
        assert ok(editor.post(f"{AJAX2}/traces/link-to-run", json={"run_id": run, "trace_ids": [mine]})) == {}
    assert _run_traces(api, editable, run) == [mine]
    assert _run_traces(editor, editable, run) == [mine]
    # A deleted trace takes its link with it (a trace id chosen again later links nothing).
    ok(api.post(f"{A}/traces/delete-traces", json={"experiment_id": editable, "request_ids": [mine]}))
    assert _run_traces(api, editable, run) == []


def _timed_trace(api, experiment_id: str, start_ms: int, duration_ms: int) -> None:
    tid = new_otel_trace_id()
    span = make_span(tid, os.urandom(8), "agent", start_ns=start_ms * 10**6, end_ns=(start_ms + duration_ms) * 10**6)
    sent = api.post("/v1/traces", content=export_request(span).SerializeToString(),
                    headers={"content-type": "application/x-protobuf", "x-mlflow-experiment-id": experiment_id})
    assert sent.status_code == 200, sent.text


def test_trace_metrics_count_and_latency_per_time_bucket_from_stored_traces(ui):
    api, hour = ui["api"], 3_600_000
    base = 1_764_000_000_000 // hour * hour
    for start, duration in ((base + 1_000, 100), (base + 2_000, 300), (base + hour + 5, 50)):
        _timed_trace(api, ui["shared"], start, duration)
    _timed_trace(api, ui["hidden"], base + 3_000, 9_999)  # another team's: never counted for the reader
    reader = _reader(ui)
    query = {"experiment_ids": [ui["shared"]], "view_type": "TRACES", "time_interval_seconds": 3600,
             "start_time_ms": base, "end_time_ms": base + 2 * hour}
    counts = ok(reader.post(f"{AJAX3}/traces/metrics", json={
        **query, "metric_name": "trace_count", "aggregations": [{"aggregation_type": "COUNT"}]}))
    assert counts == {"data_points": [
        {"metric_name": "trace_count", "values": {"COUNT": 2.0},
         "dimensions": {"time_bucket": "2025-11-24T16:00:00+00:00"}},
        {"metric_name": "trace_count", "values": {"COUNT": 1.0},
         "dimensions": {"time_bucket": "2025-11-24T17:00:00+00:00"}},
    ]}
    latency = ok(reader.post(f"{AJAX3}/traces/metrics", json={
        **query, "time_interval_seconds": None, "metric_name": "latency",
        "aggregations": [{"aggregation_type": "AVG"}, {"aggregation_type": "PERCENTILE", "percentile_value": 50},
                         {"aggregation_type": "MAX"}]}))
    assert latency == {"data_points": [{"metric_name": "latency", "values": {"AVG": 150.0, "P50.0": 100.0,
                                                                             "MAX": 300.0}}]}
    # Views, metrics, dimensions and filters not computed here have no data points (the charts say "no data").
    for other in ({"metric_name": "total_tokens"}, {"view_type": "SPANS"}, {"dimensions": ["trace_status"]},
                  {"filters": ["trace.status = 'OK'"]}):
        answer = ok(reader.post(f"{AJAX3}/traces/metrics", json={
            **query, "metric_name": "trace_count", "aggregations": [{"aggregation_type": "COUNT"}], **other}))
        assert answer == {"data_points": []}, other
    bad = reader.post(f"{AJAX3}/traces/metrics", json={
        **query, "metric_name": "latency",
        "aggregations": [{"aggregation_type": "PERCENTILE", "percentile_value": 101}]})
    assert bad.status_code == 400
