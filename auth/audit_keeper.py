"""Keeps the audit chain: signs checkpoints (every N records, on a timer, on request) and applies retention.

One background thread per process. Appends only wake it (an every-N checkpoint is never signed in a
request's thread); it signs when woken or when its interval passes with new records, and prunes at most
once an hour. Every process may run one: checkpoints and pruning take the chain head's lock, a timer
checkpoint is skipped when the head is already signed, and a second prune finds nothing left to delete.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine

from auth import audit_chain
from auth.audit import Auditor
from auth.audit_chain import Appended, Pruned
from auth.audit_checkpoints import Checkpoint, CheckpointSigner
from auth.audit_export import AuditExporter

log = logging.getLogger("mlgate.audit")
PRUNE_EVERY_SECONDS = 3600.0
DAY_MS = 86_400_000


@dataclass(frozen=True)
class KeeperPlan:
    """What the keeper does: sign with ``signer`` every ``every_records`` / ``interval_seconds``, write
    checkpoints to ``checkpoint_file``, prune records older than ``retention_days``."""

    signer: CheckpointSigner
    every_records: int = 1000
    interval_seconds: float = 300.0
    checkpoint_file: str | None = None
    retention_days: int | None = None


class AuditKeeper:
    """Signs checkpoints and prunes; every checkpoint is stored, logged, written to the checkpoint file and
    exported."""

    def __init__(self, engine: Engine, auditor: Auditor, plan: KeeperPlan, *,
                 exporter: AuditExporter | None = None, clock: Callable[[], float] = time.time):
        self.engine = engine
        self.auditor = auditor
        self.plan = plan
        self.exporter = exporter
        self.clock = clock
        self._due = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pruned_at = float("-inf")

    # --- on demand -------------------------------------------------------------------------------
    def checkpoint(self, kind: str = "manual", *, only_if_moved: bool = False) -> Checkpoint | None:
        """Verify the records since the last checkpoint, sign the head, and publish the checkpoint."""
        with self.engine.begin() as conn:
            signed = audit_chain.checkpoint(conn, self.plan.signer, kind, int(self.clock() * 1000),
                                            only_if_moved=only_if_moved)
        if signed is not None:
            self.publish(signed)
        return signed

    def prune(self, *, actor: str, before: int | None = None, reason: str | None = None) -> Pruned | None:
        """Delete records written before ``before`` (default: the retention), anchored by a signed checkpoint;
        the prune is audited. None when there is nothing to delete."""
        now = int(self.clock() * 1000)
        if before is None:
            if self.plan.retention_days is None:
                return None
            before = now - self.plan.retention_days * DAY_MS
            reason = reason or f"retention {self.plan.retention_days} day(s)"
        with self.engine.begin() as conn:
            pruned = audit_chain.prune(conn, self.plan.signer, before, now, actor=actor,
                                       reason=reason or "pruned on request")
        if pruned is not None:
            self.publish(pruned.anchor)
            log.info(json.dumps({"event": "audit", **pruned.record}, ensure_ascii=True))
            self.auditor.committed(pruned.record, pruned.appended)
        return pruned

    def publish(self, checkpoint: Checkpoint) -> None:
        """Send a checkpoint off the database: the log, the checkpoint file, the SIEM export."""
        log.info(json.dumps({"event": "audit.checkpoint", **checkpoint.to_json()}, ensure_ascii=True))
        if self.plan.checkpoint_file:
            try:
                flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)  # never through a link
                fd = os.open(self.plan.checkpoint_file, flags, 0o644)
                with os.fdopen(fd, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(checkpoint.to_json(), sort_keys=True) + "\n")
            except OSError as exc:
                log.error("could not append the audit checkpoint to %s: %s", self.plan.checkpoint_file,
                          exc.strerror or exc.__class__.__name__)
        if self.exporter is not None:
            self.exporter.checkpoint(checkpoint)

    # --- in the background -----------------------------------------------------------------------
    def listener(self, record: dict, appended: Appended) -> None:
        """An :data:`auth.audit.AuditListener`: wake the thread when the chain reached a multiple of N."""
        if appended.count % self.plan.every_records == 0:
            self._due.set()

    def start(self) -> None:
        """Start the background thread."""
        self._thread = threading.Thread(target=self._run, name="mlgate-audit-keeper", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the background thread."""
        self._stop.set()
        self._due.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            woken = self._due.wait(self.plan.interval_seconds)
            self._due.clear()
            if self._stop.is_set():
                return
            self.tick(kind="every" if woken else "periodic")

    def tick(self, kind: str = "periodic") -> None:
        """One round: sign the head if it moved, prune if retention is due. Failures are logged."""
        try:
            self.checkpoint(kind, only_if_moved=True)
        except audit_chain.ChainBroken as exc:
            log.error("audit checkpoint refused: the chain does not verify (%s); run `mlgate audit verify`", exc)
        except Exception:
            log.exception("audit checkpoint failed")
        if self.plan.retention_days is not None and self.clock() - self._pruned_at >= PRUNE_EVERY_SECONDS:
            self._pruned_at = self.clock()
            try:
                self.prune(actor="mlgate:retention")
            except audit_chain.ChainBroken as exc:
                log.error("audit retention refused to prune: the chain does not verify (%s)", exc)
            except Exception:
                log.exception("audit retention failed")
