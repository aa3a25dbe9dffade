"""Prometheus metrics: requests, latencies, authorization decisions, rate-limit hits and lockouts.

One :class:`Metrics` per app, each with its own registry (several apps may live in one test process).
With ``--workers N`` the server sets ``PROMETHEUS_MULTIPROC_DIR`` before any worker starts; every worker
then writes its samples to files there, and ``/metrics`` on any worker answers the sum over all workers
(prometheus_client's multiprocess mode). Counters and histograms only: they aggregate exactly by summing.
"""

from __future__ import annotations

import json
import logging
import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Seconds; covers a cached token check (~1 ms) up to a slow artifact transfer.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
UNROUTED = "unrouted"  # refused before routing (host, size, rate limit) or no such endpoint


class Metrics:
    """The app's counters and histograms, and their text exposition."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("mlgate_http_requests", "HTTP requests answered, by operation id, method and "
                                "status.", ["operation", "method", "status"], registry=r)
        self.latency = Histogram("mlgate_http_request_duration_seconds", "Time from request to the end of the "
                                 "response, by operation id.", ["operation"], buckets=LATENCY_BUCKETS, registry=r)
        self.decisions = Counter("mlgate_authz_decisions", "Authorization decisions on routed requests, by "
                                 "operation id and outcome (allowed, denied).", ["operation", "outcome"], registry=r)
        self.denials = Counter("mlgate_authz_denials", "Authorization refusals, by operation id and error code "
                               "(UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_DOES_NOT_EXIST, ...).",
                               ["operation", "error_code"], registry=r)
        self.rate_limited = Counter("mlgate_rate_limit_hits", "Requests refused with 429 because a rate budget "
                                    "was spent.", registry=r)
        self.lockout_refusals = Counter("mlgate_lockout_refusals", "Requests refused with 429 because the "
                                        "username or client address is locked out.", registry=r)
        self.audit_events = Counter("mlgate_audit_events", "Audit records written, by action and outcome "
                                    "(login failures, lockouts started, token use, user changes).",
                                    ["action", "outcome"], registry=r)
        self.audit_export_lost = Counter("mlgate_audit_export_lost", "Audit records a SIEM sink did not get, by "
                                         "sink and reason (queue_full, delivery_failed); the database keeps them.",
                                         ["sink", "reason"], registry=r)

    def exposition(self) -> tuple[bytes, str]:
        """The text exposition (body, content type): this process's, or every worker's in multiprocess mode."""
        path = os.environ.get(MULTIPROC_ENV)
        if path:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=path)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class AuditCounter(logging.Handler):
    """Counts the audit trail's records (the ``mlgate.audit`` log carries one JSON object per record)."""

    def __init__(self, metrics: Metrics):
        super().__init__(level=logging.INFO)
        self.metrics = metrics

    def attach(self, logger: logging.Logger) -> None:
        """Count ``logger``'s records; it must let INFO through, or the audit events would go uncounted."""
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
        logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            entry = json.loads(record.getMessage())
        except (TypeError, ValueError):
            return
        if isinstance(entry, dict) and entry.get("event") == "audit":
            self.metrics.audit_events.labels(str(entry.get("action")), str(entry.get("outcome"))).inc()
