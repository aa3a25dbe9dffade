"""The audit trail: every login, failure, lockout, token and user change, to the table and the log.

Records name who, what, when, from where, the outcome and a reason; they never contain a password,
token or cookie (callers pass names and ids only).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from contextvars import ContextVar

from auth.audit_chain import Appended
from auth.store import IdentityStore, now_ms

log = logging.getLogger("mlgate.audit")

# The workspace of the request being served (the gateway sets it as soon as it knows it), so that every
# record written while serving it carries it without each caller passing it.
REQUEST_WORKSPACE: ContextVar[str | None] = ContextVar("mlgate_request_workspace", default=None)


# Told of every record once it is committed (the SIEM export, the checkpoint schedule); must not block.
AuditListener = Callable[[dict, Appended], None]


class Auditor:
    """Appends audit records; a failing write is logged, never allowed to break the request."""

    def __init__(self, store: IdentityStore):
        self.store = store
        self.listeners: list[AuditListener] = []

    def record(self, action: str, outcome: str, *, actor: str | None = None, target: str | None = None,
               client: str | None = None, reason: str | None = None, workspace: str | None = None) -> None:
        """Write one record: ``action`` like ``login``, ``outcome`` ``success``/``failure``/``denied``;
        ``workspace`` defaults to the current request's."""
        entry = {"at": now_ms(), "actor": _clip(actor, 255), "action": action, "target": _clip(target, 255),
                 "client_address": _clip(client, 64), "outcome": outcome, "reason": _clip(reason, 1000),
                 "workspace": _clip(workspace or REQUEST_WORKSPACE.get(), 63)}
        log.info(json.dumps({"event": "audit", **entry}, ensure_ascii=True))
        try:
            appended = self.store.append_audit(entry)
        except Exception:
            log.exception("could not write audit record for %s", action)
            return
        self.committed(entry, appended)

    def committed(self, entry: dict, appended: Appended) -> None:
        """Tell the listeners of a record now in the chain (also records appended elsewhere, like a prune's)."""
        for listener in self.listeners:
            try:
                listener(entry, appended)
            except Exception:
                log.exception("audit listener failed for record %s", appended.id)


def _clip(value: str | None, limit: int) -> str | None:
    return None if value is None else value[:limit]
