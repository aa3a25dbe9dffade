"""Reading a locator's values out of the parsed request."""

from __future__ import annotations

import pytest

from policies.locate import MAX_VALUES, LocatorError, locate
from policies.routes import ROUTE_TABLE


def values(op: str, args=None, path=None, headers=None, index: int | None = None):
    requirement = ROUTE_TABLE[op] if index is None else ROUTE_TABLE[op].also[index]
    return locate(requirement.locator, args or {}, path or {}, headers or {})


def test_first_present_alternative_wins():
    assert values("runs.get", {"run_id": "r1", "run_uuid": "r2"}) == ("r1",)
    assert values("runs.get", {"run_uuid": "r2"}) == ("r2",)
    assert values("runs.get", {"run_id": None, "run_uuid": "r2"}) == ("r2",)
    assert values("runs.get", {}) is None


def test_nested_paths_and_lists():
    body = {"trace": {"trace_info": {"trace_location": {"mlflow_experiment": {"experiment_id": "7"}}}}}
    assert values("traces.start", body) == ("7",)
    assert values("traces.start", {"trace": {"trace_info": {}}}) is None
    batch = {"run_id": "r", "metrics": [{"key": "a", "model_id": "m-1"}, {"key": "b"}, {"model_id": "m-2"}]}
    assert values("runs.log_batch", batch, index=0) == ("m-1", "m-2")
    assert values("runs.log_batch", {"run_id": "r", "metrics": []}, index=0) == ()
    assert values("assessments.create", {"assessment": {"trace_id": "tr-1"}}, index=0) == ("tr-1",)


def test_many_valued_fields():
    assert values("metrics.get_history_bulk_interval", {"run_ids": ["a", "b"]}) == ("a", "b")
    assert values("traces.batch_get", {"trace_ids": ["t"]}) == ("t",)
    with pytest.raises(LocatorError, match="names more than"):
        values("traces.batch_get", {"trace_ids": ["t"] * (MAX_VALUES + 1)})
    # A locator's own, lower cap: the compare page names at most 10 runs.
    assert values("ui.compare", {"runs": [f"r{i}" for i in range(10)]}) == tuple(f"r{i}" for i in range(10))
    with pytest.raises(LocatorError, match=r"runs names more than 10 resources \(300 given\)"):
        values("ui.compare", {"runs": ["r"] * 300})


def test_path_and_header_sources():
    assert values("artifacts.get", path={"artifact_path": "3/abc/artifacts/x"}) == ("3/abc/artifacts/x",)
    assert values("traces.set_tag", path={"request_id": "tr-9"}) == ("tr-9",)
    assert values("otlp.ingest", headers={"x-mlflow-experiment-id": "12"}) == ("12",)
    assert values("otlp.ingest", args={"x-mlflow-experiment-id": "12"}) is None


@pytest.mark.parametrize(("op", "args", "message"), [
    ("runs.get", {"run_id": ["a", "b"]}, "run_id must be a single value"),
    ("runs.get", {"run_id": {"x": 1}}, "run_id must be a string"),
    ("runs.get", {"run_id": True}, "run_id must be a string"),
    ("experiments.get", {"experiment_id": 1.5}, "experiment_id must be a string"),
    ("traces.start", {"trace": "x"}, "expected an object above 'trace_info'"),
    ("metrics.get_history_bulk_interval", {"run_ids": [1, {}]}, "run_ids must be a string"),
])
def test_wrongly_shaped_fields_are_errors(op, args, message):
    with pytest.raises(LocatorError, match=message):
        values(op, args)


def test_numbers_name_the_same_id_as_their_text():
    assert values("experiments.get", {"experiment_id": 12}) == ("12",)


def test_a_batch_whose_metrics_are_not_a_list_is_an_error():
    with pytest.raises(LocatorError, match="'metrics' must be a list"):
        values("runs.log_batch", {"metrics": {"model_id": "m"}}, index=0)
