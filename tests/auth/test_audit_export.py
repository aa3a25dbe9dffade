"""The SIEM export (auth.audit_export): ECS fields, OTLP to a real receiver, the file sink, and a sink that
is down or slow never blocking the caller, with its losses counted and logged without secrets."""

from __future__ import annotations

import logging
import os
import socket
import stat
import time

import pytest

from auth.audit_chain import Appended
from auth.audit_export import (
    AuditExporter,
    JsonLinesWriter,
    OtlpLogsSender,
    ecs_checkpoint,
    ecs_event,
)
from tests.otlp_receiver import otlp_receiver

RECORD = {"at": 1_765_150_867_120, "actor": "alice", "action": "authorize", "target": "experiments.get",
          "client_address": "10.20.0.7", "outcome": "denied", "reason": "no grant", "workspace": "team-a"}
HEADER_SECRET = "otel-header-secret-4f1c9b7e2a"


def _wait(predicate, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.mark.parametrize(("record", "expected"), [
    (RECORD, {"event.action": "authorize", "event.outcome": "failure", "event.type": ["denied"],
              "event.category": ["iam"], "user.name": "alice", "source.ip": "10.20.0.7",
              "mlgate.audit.outcome": "denied", "mlgate.audit.workspace": "team-a", "event.sequence": 7}),
    ({**RECORD, "action": "login", "outcome": "failure", "client_address": "testclient", "workspace": None},
     {"event.category": ["authentication"], "event.type": ["info"], "source.address": "testclient",
      "event.outcome": "failure"}),
    ({**RECORD, "action": "audit.prune", "outcome": "success", "actor": None, "client_address": None},
     {"event.category": ["configuration"], "event.outcome": "success", "user.name": None, "source.ip": None}),
])
def test_ecs_fields(record, expected):
    document = ecs_event(record, Appended(7, 7, "ab" * 32))
    assert document["@timestamp"] == "2025-12-07T23:41:07.120Z"
    assert document["ecs"] == {"version": "8.11.0"}
    for dotted, value in expected.items():
        node = document
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        assert node == value, dotted


def test_otlp_records_reach_a_real_receiver_with_their_ecs_attributes():
    with otlp_receiver() as (endpoint, received):
        sender = OtlpLogsSender(endpoint, {"Authorization": f"Bearer {HEADER_SECRET}"}, 5)
        exporter = AuditExporter([sender], 100)
        exporter.start()
        try:
            exporter.listener(RECORD, Appended(41, 41, "cd" * 32))
            assert _wait(lambda: len(received.log_records()) == 1)
        finally:
            exporter.stop()
        assert received.errors == []
        assert received.headers[0]["Authorization"] == f"Bearer {HEADER_SECRET}"  # sent where it belongs...
        (log_record,) = received.log_records()
        attributes = {kv.key: kv.value for kv in log_record.attributes}
        assert attributes["event.action"].string_value == "authorize"
        assert attributes["user.name"].string_value == "alice"
        assert attributes["event.sequence"].int_value == 41
        assert attributes["mlgate.audit.hash"].string_value == "cd" * 32
        assert log_record.severity_text == "WARN"
        assert log_record.event_name == "authorize"
        assert log_record.time_unix_nano == RECORD["at"] * 1_000_000
        assert received.documents()[0]["event"]["outcome"] == "failure"
        resource = received.requests[0].resource_logs[0].resource
        assert [(a.key, a.value.string_value) for a in resource.attributes] == [("service.name", "mlgate")]
        assert exporter.stats() == [{"sink": endpoint, "sent": 1, "dropped": 0, "failed": 0, "queued": 0}]


def test_a_sink_that_is_down_never_blocks_and_its_losses_are_counted_and_logged_without_secrets(caplog):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/v1/logs"
    sender = OtlpLogsSender(dead, {"Authorization": f"Bearer {HEADER_SECRET}"}, 1)
    losses: dict[tuple[str, str], int] = {}

    def lost(sink: str, reason: str, count: int) -> None:
        losses[(sink, reason)] = losses.get((sink, reason), 0) + count

    exporter = AuditExporter([sender], 5, retry_pause=0.01, on_loss=lost)
    exporter.start()
    caplog.set_level(logging.WARNING, logger="mlgate.audit.export")
    try:
        started = time.monotonic()
        for i in range(200):
            exporter.listener({**RECORD, "reason": f"r{i}"}, Appended(i + 1, i + 1, "ef" * 32))
        assert time.monotonic() - started < 0.5  # 200 submissions to a dead sink: no waiting
        assert _wait(lambda: (lambda s: s["dropped"] + s["failed"] == 200 and s["queued"] == 0)(exporter.stats()[0]))
    finally:
        exporter.stop()
    stats = exporter.stats()[0]
    assert stats["sent"] == 0
    assert stats["dropped"] > 0  # the queue (5) overflowed
    assert stats["failed"] > 0  # and what was taken could not be delivered
    # The metrics hook is told of every loss (the app counts them as mlgate_audit_export_lost).
    assert losses == {(dead, "queue_full"): stats["dropped"], (dead, "delivery_failed"): stats["failed"]}
    text = caplog.text
    assert f"audit export to {dead}" in text
    assert "ConnectError" in text or "queue full" in text
    assert HEADER_SECRET not in text
    assert "alice" not in text  # no record content in the warning either


def test_a_collector_answering_errors_is_retried_then_counted(caplog):
    with otlp_receiver() as (endpoint, received):
        received.status = 503
        exporter = AuditExporter([OtlpLogsSender(endpoint, {"X-Api-Key": HEADER_SECRET}, 2)], 100, retry_pause=0.01)
        exporter.start()
        caplog.set_level(logging.WARNING, logger="mlgate.audit.export")
        try:
            exporter.listener(RECORD, Appended(1, 1, "00" * 32))
            assert _wait(lambda: exporter.stats()[0]["failed"] == 1)
            assert len(received.bodies) == 3  # three attempts
            received.status = 200  # the collector is back: later records arrive
            exporter.listener(RECORD, Appended(2, 2, "00" * 32))
            assert _wait(lambda: exporter.stats()[0]["sent"] == 1)
        finally:
            exporter.stop()
    assert "delivery failed (HTTP 503)" in caplog.text
    assert HEADER_SECRET not in caplog.text


def test_the_file_sink_appends_json_lines_readable_by_the_owner_only(tmp_path):
    path = tmp_path / "audit.jsonl"
    exporter = AuditExporter([JsonLinesWriter(str(path))], 100)
    exporter.start()
    try:
        exporter.listener(RECORD, Appended(1, 1, "11" * 32))
        exporter.listener({**RECORD, "outcome": "success"}, Appended(2, 2, "22" * 32))
        assert _wait(lambda: exporter.stats()[0]["sent"] == 2)
    finally:
        exporter.stop()
    import json

    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["event"]["sequence"] for line in lines] == [1, 2]
    assert [line["event"]["outcome"] for line in lines] == ["failure", "success"]
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_checkpoint_event_carries_the_signed_checkpoint():
    from auth.audit_checkpoints import Checkpoint

    checkpoint = Checkpoint(5, 5, "aa" * 32, RECORD["at"], "every", "0123456789abcdef", "sig")
    document = ecs_checkpoint(checkpoint)
    assert document["event"]["action"] == "audit.checkpoint"
    assert Checkpoint.from_json(document["mlgate"]["checkpoint"]) == checkpoint


def test_the_file_sink_never_follows_a_symbolic_link_planted_after_startup(tmp_path):
    from auth.audit_export import ExportFailed, JsonLinesWriter

    victim = tmp_path / "victim.txt"
    victim.write_text("unchanged\n")
    path = tmp_path / "audit.jsonl"
    path.symlink_to(victim)
    with pytest.raises(ExportFailed, match="cannot write"):
        JsonLinesWriter(str(path)).send([{"event": {"action": "login"}}])
    assert victim.read_text() == "unchanged\n"
