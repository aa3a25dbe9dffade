"""MLflow 3 with the real client against a real mlgate server (SQLite and PostgreSQL): logged models
(pyfunc log/load/predict, by model id and by registered version) and tracing (spans, search, tags,
assessments)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e


def _python_model(n: int):
    import mlflow.pyfunc

    # Defined here so that cloudpickle serializes it by value (the test module is not importable
    # from the model's environment by name).
    class _Model(mlflow.pyfunc.PythonModel):
        def __init__(self, n):
            self.n = n

        def predict(self, context, model_input, params=None):
            return model_input + self.n

    return _Model(n)


@pytest.fixture(params=["otlp", "artifact"])
def span_transport(request, monkeypatch):
    """How the client ships spans: OTLP to /v1/traces, or a traces.json artifact after StartTraceV3.

    MLflow's client picks OTLP only when GET /version reports 3.4 or later; the probe is pinned here
    so both paths are exercised whatever version this server reports. The tracer is reset so the
    exporter probes again (it remembers a server without OTLP for the rest of the process).
    """
    import mlflow.tracing.provider
    from mlflow.store.tracking.rest_store import RestStore
    from packaging.version import Version

    version = Version("3.17.2") if request.param == "otlp" else Version("3.3.0")
    monkeypatch.setattr(RestStore, "_get_server_version", staticmethod(lambda host_creds: version))
    mlflow.tracing.provider.reset()
    yield request.param
    mlflow.tracing.provider.reset()


def _flush_traces():
    import mlflow

    # The client exports traces on a background queue; wait for it before reading them back.
    mlflow.flush_trace_async_logging(terminate=False)


def test_pyfunc_log_model_load_by_model_id_and_predict(mlflow_client, unique_name):
    import mlflow
    import pandas as pd

    mlflow.set_experiment(unique_name)
    with mlflow.start_run() as run:
        info = mlflow.pyfunc.log_model(name="adder", python_model=_python_model(3),
                                       input_example=pd.DataFrame({"x": [1.0]}), params={"n": 3})
        mlflow.log_metric("rmse", 0.25, model_id=info.model_id)
    assert info.model_id.startswith("m-")
    assert info.model_uri == f"models:/{info.model_id}"

    model = mlflow_client.get_logged_model(info.model_id)
    assert model.name == "adder"
    assert model.source_run_id == run.info.run_id
    assert str(model.status) == "READY"
    assert model.artifact_location.endswith(f"/models/{info.model_id}/artifacts")
    assert [(m.key, m.value, m.run_id) for m in model.metrics] == [("rmse", 0.25, run.info.run_id)]

    loaded = mlflow.pyfunc.load_model(f"models:/{info.model_id}")
    out = loaded.predict(pd.DataFrame({"x": [1.0, 2.5]}))
    assert list(out["x"]) == [4.0, 5.5]

    found = mlflow.search_logged_models(experiment_ids=[model.experiment_id], filter_string="name = 'adder'",
                                        output_format="list")
    assert [m.model_id for m in found] == [info.model_id]
    by_metric = mlflow.search_logged_models(experiment_ids=[model.experiment_id],
                                            filter_string="metrics.rmse < 0.5", output_format="list")
    assert [m.model_id for m in by_metric] == [info.model_id]

    mlflow_client.set_logged_model_tags(info.model_id, {"stage": "candidate"})
    assert mlflow_client.get_logged_model(info.model_id).tags["stage"] == "candidate"
    mlflow_client.delete_logged_model_tag(info.model_id, "stage")
    assert "stage" not in mlflow_client.get_logged_model(info.model_id).tags


def test_registered_version_loads_and_predicts(mlflow_client, unique_name):
    import mlflow
    import pandas as pd

    mlflow.set_experiment(unique_name)
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(name="adder", python_model=_python_model(10))
    version = mlflow.register_model(f"models:/{info.model_id}", unique_name)
    assert version.version == "1"
    loaded = mlflow.pyfunc.load_model(f"models:/{unique_name}/1")
    assert list(loaded.predict(pd.DataFrame({"x": [1.0]}))["x"]) == [11.0]


def test_traced_function_spans_search_get_tags_and_feedback(mlflow_client, unique_name, span_transport):
    import mlflow
    from mlflow.entities import AssessmentSource, AssessmentSourceType

    experiment_id = mlflow.set_experiment(unique_name).experiment_id

    @mlflow.trace(span_type="TOOL")
    def double(y):
        return y * 2

    @mlflow.trace(name="pipeline")
    def pipeline(x):
        return {"result": double(x) + 1}

    assert pipeline(20) == {"result": 41}
    _flush_traces()
    trace_id = mlflow.get_last_active_trace_id()
    assert trace_id.startswith("tr-")

    found = mlflow.search_traces(locations=[experiment_id], return_type="list")
    assert [t.info.trace_id for t in found] == [trace_id]
    spans = {s.name: s for s in found[0].data.spans}
    assert set(spans) == {"pipeline", "double"}

    trace = mlflow.get_trace(trace_id)
    assert trace.info.state.value == "OK"
    # Over OTLP the server holds the spans (and says so); otherwise they are the client's artifact.
    held_by_server = trace.info.tags.get("mlflow.trace.spansLocation") == "TRACKING_STORE"
    assert held_by_server == (span_transport == "otlp")
    by_name = {s.name: s for s in trace.data.spans}
    assert by_name["pipeline"].parent_id is None
    assert by_name["double"].parent_id == by_name["pipeline"].span_id
    assert by_name["pipeline"].inputs == {"x": 20}
    assert by_name["pipeline"].outputs == {"result": 41}
    assert by_name["double"].inputs == {"y": 20}
    assert by_name["double"].outputs == 40
    assert by_name["double"].span_type == "TOOL"

    # The server's own GetTrace answers with the same spans, whichever way they arrived.
    served = mlflow_client._tracing_client.store.get_trace(trace_id)
    served_by_name = {s.name: s for s in served.data.spans}
    assert served_by_name["pipeline"].inputs == {"x": 20}
    assert served_by_name["double"].outputs == 40
    assert served_by_name["double"].parent_id == by_name["pipeline"].span_id

    mlflow.set_trace_tag(trace_id, "reviewed", "yes")
    assert mlflow.get_trace(trace_id).info.tags["reviewed"] == "yes"
    tagged = mlflow.search_traces(locations=[experiment_id], filter_string="tags.reviewed = 'yes'",
                                  return_type="list")
    assert [t.info.trace_id for t in tagged] == [trace_id]
    mlflow.delete_trace_tag(trace_id, "reviewed")
    assert "reviewed" not in mlflow.get_trace(trace_id).info.tags

    feedback = mlflow.log_feedback(
        trace_id=trace_id, name="correct", value=True, rationale="41 is right",
        source=AssessmentSource(source_type=AssessmentSourceType.HUMAN, source_id="reviewer@example.com"))
    got = mlflow.get_assessment(trace_id, feedback.assessment_id)
    assert got.name == "correct"
    assert got.value is True
    assert got.rationale == "41 is right"
    assert got.source.source_id == "reviewer@example.com"
    assessments = mlflow.get_trace(trace_id).info.assessments
    assert [(a.name, a.value) for a in assessments] == [("correct", True)]

    mlflow.log_expectation(trace_id=trace_id, name="expected", value={"result": 41})
    names = sorted(a.name for a in mlflow.get_trace(trace_id).info.assessments)
    assert names == ["correct", "expected"]


def test_delete_traces(mlflow_client, unique_name, span_transport):
    import mlflow

    experiment_id = mlflow.set_experiment(unique_name).experiment_id

    @mlflow.trace
    def work(i):
        return i

    for i in range(3):
        work(i)
    _flush_traces()
    ids = [t.info.trace_id for t in mlflow.search_traces(locations=[experiment_id], return_type="list")]
    assert len(ids) == 3
    deleted = mlflow_client.delete_traces(experiment_id, trace_ids=ids[:1])
    assert deleted == 1
    left = [t.info.trace_id for t in mlflow.search_traces(locations=[experiment_id], return_type="list")]
    assert sorted(left) == sorted(ids[1:])
