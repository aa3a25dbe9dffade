"""Assessments on traces: feedback and expectations created, read, updated, overridden, deleted."""

from __future__ import annotations

import pytest

from tests.tracking.mlflow3_fixtures import (
    experiment_count,
    make_experiment,
)
from tests.tracking.otlp_builders import trace_info_body
from tracking.db.mlflow3_tables import assessments

B = "/api/3.0/mlflow"
TRACE = "tr-" + "ab" * 16


@pytest.fixture
def trace_id(client):
    exp_id = make_experiment(client)
    assert client.post(f"{B}/traces", json=trace_info_body(TRACE, exp_id)).status_code == 200
    return TRACE


def feedback(value, **extra):
    body = {"assessment_name": "quality", "trace_id": TRACE,
            "source": {"source_type": "HUMAN", "source_id": "bob@example.com"},
            "create_time": "2024-05-01T10:00:00.123Z", "last_update_time": "2024-05-01T10:00:00.123Z",
            "feedback": {"value": value}, "rationale": "reads well", "metadata": {"k": "v"}}
    body.update(extra)
    return {"assessment": body}


def create(client, trace_id, body):
    resp = client.post(f"{B}/traces/{trace_id}/assessments", json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()["assessment"]


@pytest.mark.parametrize("value", [True, 0.75, "good", {"score": 3, "tags": ["a", None]}, [1, "x"]])
def test_feedback_values_round_trip(client, trace_id, value):
    created = create(client, trace_id, feedback(value))
    assert created["assessment_id"].startswith("a-")
    assert created["feedback"] == {"value": value}
    assert created["source"] == {"source_type": "HUMAN", "source_id": "bob@example.com"}
    assert created["create_time"] == "2024-05-01T10:00:00.123Z"
    assert created["rationale"] == "reads well"
    assert created["metadata"] == {"k": "v"}
    assert created["valid"] is True
    got = client.get(f"{B}/traces/{trace_id}/assessments/{created['assessment_id']}")
    assert got.json()["assessment"] == created
    info = client.get(f"{B}/traces/{trace_id}").json()["trace"]["trace_info"]
    assert info["assessments"] == [created]


def test_expectation_and_feedback_error(client, trace_id):
    expectation = create(client, trace_id, {"assessment": {
        "assessment_name": "expected", "source": {"source_type": "CODE"}, "expectation": {"value": {"a": 1}}}})
    assert expectation["expectation"] == {"value": {"a": 1}}
    serialized = create(client, trace_id, {"assessment": {
        "assessment_name": "expected2", "source": {"source_type": "CODE"},
        "expectation": {"serialized_value": {"serialization_format": "JSON_FORMAT", "value": "[1, 2]"}}}})
    assert serialized["expectation"]["serialized_value"]["value"] == "[1, 2]"
    failed = create(client, trace_id, {"assessment": {
        "assessment_name": "judge", "source": {"source_type": "LLM_JUDGE", "source_id": "gpt"},
        "feedback": {"error": {"error_code": "RATE_LIMIT", "error_message": "slow down"}}}})
    assert failed["feedback"] == {"error": {"error_code": "RATE_LIMIT", "error_message": "slow down"}}


def test_update_with_field_mask(client, trace_id):
    created = create(client, trace_id, feedback(1))
    aid = created["assessment_id"]
    resp = client.patch(f"{B}/traces/{trace_id}/assessments/{aid}", json={
        "assessment": {"assessment_id": aid, "trace_id": trace_id, "assessment_name": "renamed",
                       "feedback": {"value": 5}, "rationale": "changed", "metadata": {"extra": "1"}},
        "update_mask": "assessmentName,feedback,rationale,metadata"})
    assert resp.status_code == 200, resp.text
    updated = resp.json()["assessment"]
    assert updated["assessment_name"] == "renamed"
    assert updated["feedback"] == {"value": 5}
    assert updated["rationale"] == "changed"
    assert updated["metadata"] == {"k": "v", "extra": "1"}
    assert updated["source"] == created["source"]
    assert updated["create_time"] == created["create_time"]
    assert updated["last_update_time"] != created["last_update_time"]
    wrong_kind = client.patch(f"{B}/traces/{trace_id}/assessments/{aid}", json={
        "assessment": {"expectation": {"value": 1}}, "update_mask": "expectation"})
    assert wrong_kind.status_code == 400
    bad_mask = client.patch(f"{B}/traces/{trace_id}/assessments/{aid}", json={
        "assessment": {"source": {"source_type": "CODE"}}, "update_mask": "source"})
    assert bad_mask.status_code == 400
    assert client.get(f"{B}/traces/{trace_id}/assessments/{aid}").json()["assessment"] == updated


def test_override_invalidates_and_delete_restores(client, trace_id):
    original = create(client, trace_id, feedback("bad"))
    override = create(client, trace_id, feedback("good", overrides=original["assessment_id"]))
    assert override["overrides"] == original["assessment_id"]
    got = client.get(f"{B}/traces/{trace_id}/assessments/{original['assessment_id']}").json()["assessment"]
    assert got["valid"] is False
    resp = client.request("DELETE", f"{B}/traces/{trace_id}/assessments/{override['assessment_id']}",
                          json={"trace_id": trace_id, "assessment_id": override["assessment_id"]})
    assert resp.status_code == 200
    got = client.get(f"{B}/traces/{trace_id}/assessments/{original['assessment_id']}").json()["assessment"]
    assert got["valid"] is True
    assert client.get(f"{B}/traces/{trace_id}/assessments/{override['assessment_id']}").status_code == 404
    # Deleting again is not an error (MLflow's delete is idempotent).
    assert client.delete(f"{B}/traces/{trace_id}/assessments/{override['assessment_id']}").status_code == 200


@pytest.mark.parametrize("mutate", [
    lambda a: a.pop("assessment_name"),
    lambda a: a.pop("source"),
    lambda a: a.update(source={"source_type": "ROBOT"}),
    lambda a: a.pop("feedback"),
    lambda a: a.update(expectation={"value": 1}),
    lambda a: a.update(feedback={}),
    lambda a: a.update(create_time="noon"),
    lambda a: a.update(metadata={"k": 1}),
    lambda a: a.update(overrides="a-doesnotexist"),
    lambda a: a.update(assessment_name="x" * 251),
])
def test_bad_assessments_are_refused(client, trace_id, mutate):
    body = feedback(1)
    mutate(body["assessment"])
    resp = client.post(f"{B}/traces/{trace_id}/assessments", json=body)
    assert resp.status_code in (400, 404), resp.text
    assert experiment_count(client, assessments) == 0


def test_unknown_trace_or_assessment_is_404(client, trace_id):
    other = "tr-" + "00" * 16
    body = feedback(1)
    body["assessment"].pop("trace_id")
    assert client.post(f"{B}/traces/{other}/assessments", json=body).status_code == 404
    mismatched = client.post(f"{B}/traces/{other}/assessments", json=feedback(1))
    assert mismatched.status_code == 400
    assert client.get(f"{B}/traces/{trace_id}/assessments/a-nope").status_code == 404
    assert client.get(f"{B}/traces/{other}/assessments/a-nope").status_code == 404
    resp = client.patch(f"{B}/traces/{trace_id}/assessments/a-nope",
                        json={"assessment": {"rationale": "x"}, "update_mask": "rationale"})
    assert resp.status_code == 404


def test_deleting_a_trace_deletes_its_assessments(client, trace_id):
    create(client, trace_id, feedback(1))
    exp_id = client.get(f"{B}/traces/{trace_id}").json()["trace"]["trace_info"]["trace_location"][
        "mlflow_experiment"]["experiment_id"]
    resp = client.post(f"{B}/traces/delete-traces", json={"experiment_id": exp_id, "request_ids": [trace_id]})
    assert resp.json() == {"traces_deleted": 1}
    assert experiment_count(client, assessments) == 0
