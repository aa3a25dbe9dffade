"""Stream audit records to a SIEM as they are written: ECS-shaped JSON lines, and OTLP/HTTP log records.

Each sink has its own bounded queue and thread: :meth:`AuditExporter.submit` never waits, so a slow or
dead collector never slows or fails a request. When a queue is full the record is dropped for that sink;
when a batch cannot be delivered after a few tries it is dropped too. Both are counted
(:meth:`AuditExporter.stats`) and logged at most once a minute per sink, naming the sink without its
headers, credentials or the records themselves. The database stays the record of truth: a gap in the
export shows as a jump in ``event.sequence`` and is filled from ``mlgate audit export``.

The shape is the Elastic Common Schema (ECS 8.11, https://www.elastic.co/guide/en/ecs/current/): ``@timestamp``,
``event.{kind,category,type,action,outcome,reason,sequence,dataset}``, ``user.name``, ``source.ip``,
and mlgate's own fields under ``mlgate.audit`` (docs/governance.md#siem-export lists them). Records never
contain a password, token or cookie (:mod:`auth.audit`); the export adds nothing but their fields.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs, SeverityNumber
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from auth.audit_chain import Appended
from auth.audit_checkpoints import Checkpoint

log = logging.getLogger("mlgate.audit.export")

ECS_VERSION = "8.11.0"
BATCH = 256
ATTEMPTS = 3
WARN_EVERY_SECONDS = 60.0
_AUTHENTICATION = ("login", "lockout", "logout", "token.use", "session", "sso")
_CONFIGURATION = ("policy.", "audit.", "workspace.")


def ecs_event(record: Mapping, appended: Appended | None = None) -> dict:
    """One audit record as an ECS document (only the record's own fields, renamed)."""
    outcome = record["outcome"]
    action = record["action"]
    category = "authentication" if action.startswith(_AUTHENTICATION) else \
        "configuration" if action.startswith(_CONFIGURATION) else "iam"
    event = {"kind": "event", "dataset": "mlgate.audit", "module": "mlgate", "action": action,
             "category": [category], "type": ["denied"] if outcome == "denied" else ["info"],
             # ECS allows success, failure and unknown: a denial is a failure of the attempt.
             "outcome": "success" if outcome == "success" else "failure"}
    if record.get("reason"):
        event["reason"] = record["reason"]
    document: dict = {"@timestamp": _iso(record["at"]), "ecs": {"version": ECS_VERSION}, "event": event,
                      "service": {"name": "mlgate", "type": "mlgate"}}
    if appended is not None:
        event["sequence"] = appended.id
    if record.get("actor"):
        document["user"] = {"name": record["actor"]}
    client = record.get("client_address")
    if client:
        document["source"] = {"ip": client} if _is_ip(client) else {"address": client}
    own = {"outcome": outcome, "target": record.get("target"), "workspace": record.get("workspace")}
    if appended is not None:
        own.update(id=appended.id, hash=appended.hash, position=appended.count)
    document["mlgate"] = {"audit": {k: v for k, v in own.items() if v is not None}}
    return document


def ecs_checkpoint(checkpoint: Checkpoint) -> dict:
    """A signed checkpoint as an ECS document; ``mlgate audit verify --checkpoints`` reads it back."""
    return {"@timestamp": _iso(checkpoint.at), "ecs": {"version": ECS_VERSION},
            "event": {"kind": "event", "dataset": "mlgate.audit", "module": "mlgate", "action": "audit.checkpoint",
                      "category": ["configuration"], "type": ["info"], "outcome": "success"},
            "service": {"name": "mlgate", "type": "mlgate"}, "mlgate": {"checkpoint": checkpoint.to_json()}}


def _iso(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# Told of every loss: (the sink's shown name, "queue_full" or "delivery_failed", how many records).
LossListener = Callable[[str, str, int], None]


class ExportFailed(Exception):
    """A sink could not take a batch; the message is safe to log (no headers, no records)."""


class JsonLinesWriter:
    """Appends documents to a file (created 0600) or writes them to standard output."""

    def __init__(self, path: str):
        self.path = path
        self.name = "stdout" if path == "-" else path

    def send(self, documents: list[dict]) -> None:
        """Write the batch, one JSON object per line, flushed."""
        text = "".join(json.dumps(d, ensure_ascii=True, sort_keys=True) + "\n" for d in documents)
        try:
            if self.path == "-":
                sys.stdout.write(text)
                sys.stdout.flush()
                return
            # O_NOFOLLOW: a symbolic link planted at the path after startup is not followed (ELOOP: counted).
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as handle:
                handle.write(text)
        except OSError as exc:
            raise ExportFailed(f"cannot write: {exc.strerror or exc.__class__.__name__}") from None


def otlp_request(documents: list[dict]) -> ExportLogsServiceRequest:
    """The OTLP logs request for a batch: one log record per document, its ECS fields as attributes."""
    records = []
    for document in documents:
        nanos = int(datetime.fromisoformat(document["@timestamp"].replace("Z", "+00:00")).timestamp() * 1000) \
            * 1_000_000
        failed = document["event"]["outcome"] != "success"
        records.append(LogRecord(
            time_unix_nano=nanos, observed_time_unix_nano=time.time_ns(),
            severity_number=SeverityNumber.SEVERITY_NUMBER_WARN if failed else SeverityNumber.SEVERITY_NUMBER_INFO,
            severity_text="WARN" if failed else "INFO", event_name=document["event"]["action"],
            body=AnyValue(string_value=json.dumps(document, ensure_ascii=True, sort_keys=True)),
            attributes=[KeyValue(key=k, value=_any(v)) for k, v in _flatten(document)]))
    resource = Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value="mlgate"))])
    scope = InstrumentationScope(name="mlgate.audit")
    return ExportLogsServiceRequest(resource_logs=[ResourceLogs(
        resource=resource, scope_logs=[ScopeLogs(scope=scope, log_records=records)])])


def _flatten(document: Mapping, prefix: str = ""):
    for key, value in document.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _flatten(value, name + ".")
        else:
            yield name, value


def _any(value) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, list):
        return AnyValue(string_value=",".join(map(str, value)))
    return AnyValue(string_value=str(value))


class OtlpLogsSender:
    """POSTs batches to an OTLP/HTTP logs endpoint as protobuf (https://opentelemetry.io/docs/specs/otlp/)."""

    def __init__(self, endpoint: str, headers: Mapping[str, str], timeout_seconds: float,
                 transport: httpx.BaseTransport | None = None):
        parts = urlsplit(endpoint)
        # Shown in logs: scheme, host, port and path; the configuration refuses credentials in the URL.
        self.name = f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}{parts.path}"
        self.endpoint = endpoint
        self._client = httpx.Client(timeout=timeout_seconds, follow_redirects=False, transport=transport,
                                    headers={**headers, "Content-Type": "application/x-protobuf"})

    def __repr__(self) -> str:
        return f"OtlpLogsSender({self.name!r})"

    def send(self, documents: list[dict]) -> None:
        """Deliver the batch; raises :class:`ExportFailed` naming the status or error class only."""
        body = otlp_request(documents).SerializeToString()
        try:
            response = self._client.post(self.endpoint, content=body)
        except httpx.HTTPError as exc:
            raise ExportFailed(exc.__class__.__name__) from None
        if response.status_code // 100 != 2:
            raise ExportFailed(f"HTTP {response.status_code}")

    def close(self) -> None:
        """Release the connection pool."""
        self._client.close()


class _Channel:
    """One sink's bounded queue, its thread and its counters."""

    def __init__(self, sender, queue_size: int, clock: Callable[[], float], retry_pause: float,
                 on_loss: LossListener | None):
        self.sender = sender
        self._on_loss = on_loss
        self.queue: queue.Queue[dict] = queue.Queue(maxsize=queue_size)
        self.sent = self.dropped = self.failed = 0
        self._clock = clock
        self._retry_pause = retry_pause
        self._warned_at = float("-inf")
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"mlgate-audit-export:{sender.name}", daemon=True)

    def offer(self, document: dict) -> None:
        try:
            self.queue.put_nowait(document)
        except queue.Full:
            with self._lock:
                self.dropped += 1
            self._lost("queue_full", 1)
            self._warn(f"queue full ({self.queue.maxsize}); record dropped")

    def _lost(self, reason: str, count: int) -> None:
        if self._on_loss is not None:
            try:
                self._on_loss(self.sender.name, reason, count)
            except Exception:
                log.exception("audit export loss listener failed")

    def _warn(self, what: str) -> None:
        now = self._clock()
        with self._lock:
            if now - self._warned_at < WARN_EVERY_SECONDS:
                return
            self._warned_at = now
            dropped, failed = self.dropped, self.failed
        log.warning("audit export to %s: %s (so far: %d dropped when the queue was full, %d lost in failed "
                    "deliveries)", self.sender.name, what, dropped, failed)

    def _run(self) -> None:
        while not (self._stop.is_set() and self.queue.empty()):
            try:
                first = self.queue.get(timeout=0.2)
            except queue.Empty:
                continue
            batch = [first]
            while len(batch) < BATCH:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            self._deliver(batch)

    def _deliver(self, batch: list[dict]) -> None:
        problem = ""
        for attempt in range(ATTEMPTS):
            try:
                self.sender.send(batch)
            except ExportFailed as exc:
                problem = str(exc)
                if self._stop.is_set() or attempt == ATTEMPTS - 1:
                    break
                self._stop.wait(self._retry_pause * (2 ** attempt))
                continue
            except Exception as exc:  # a bug must not kill the thread
                problem = exc.__class__.__name__
                break
            with self._lock:
                self.sent += len(batch)
            return
        with self._lock:
            self.failed += len(batch)
        self._lost("delivery_failed", len(batch))
        self._warn(f"delivery failed ({problem}); {len(batch)} record(s) lost")

    def stop(self, timeout: float) -> None:
        self._stop.set()
        self.thread.join(timeout)
        close = getattr(self.sender, "close", None)
        if close is not None:
            close()


class AuditExporter:
    """Fans committed audit records and checkpoints out to every sink without ever blocking the caller."""

    def __init__(self, senders: list, queue_size: int, *, clock: Callable[[], float] = time.monotonic,
                 retry_pause: float = 0.5, on_loss: LossListener | None = None):
        self._channels = [_Channel(s, queue_size, clock, retry_pause, on_loss) for s in senders]

    def start(self) -> None:
        """Start each sink's thread."""
        for channel in self._channels:
            channel.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (up to ``timeout`` seconds per sink), then stop."""
        for channel in self._channels:
            channel.stop(timeout)

    def listener(self, record: dict, appended: Appended) -> None:
        """An :data:`auth.audit.AuditListener`: export one committed record."""
        self.submit(ecs_event(record, appended))

    def checkpoint(self, checkpoint: Checkpoint) -> None:
        """Export a signed checkpoint (so it leaves the host the database is on)."""
        self.submit(ecs_checkpoint(checkpoint))

    def submit(self, document: dict) -> None:
        """Queue one document for every sink; never waits."""
        for channel in self._channels:
            channel.offer(document)

    def stats(self) -> list[dict]:
        """Per sink: records sent, dropped (queue full), failed (undeliverable), waiting."""
        return [{"sink": c.sender.name, "sent": c.sent, "dropped": c.dropped, "failed": c.failed,
                 "queued": c.queue.qsize()} for c in self._channels]
