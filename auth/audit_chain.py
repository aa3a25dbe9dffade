"""A tamper-evident audit log: every record's hash covers the previous record's hash and its own fields.

``hash(n) = SHA-256(hash(n-1) || canonical JSON of record n's id, time, actor, action, target, client,
outcome and reason, then its workspace when it has one)``, starting from :data:`GENESIS`. (The workspace
came with revision 0009 and is appended only when set, so the hashes of records without one are those
revision 0008 wrote; moving a record into, out of or between workspaces breaks its hash all the same.)
Editing a record changes its hash; deleting or reordering records breaks the link of the next one;
deleting records from the end leaves the chain's head (``auth_audit_chain``: the last id, hash and count)
pointing at a record that is gone. Appends from every process go through one row lock on the head, so the
chain is one sequence per database.

What this proves: that the table was not altered *without also recomputing every later hash and the head*.
An attacker with write access to the database can do that; export the log (or its head hash) elsewhere
to detect that too (docs/governance.md).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select, update

from auth.tables import audit_chain, audit_log

GENESIS = "0" * 64
CHAINED_FIELDS = ("id", "at", "actor", "action", "target", "client_address", "outcome", "reason")
# Hashed after CHAINED_FIELDS when not NULL (see the module docstring).
OPTIONAL_FIELDS = ("workspace",)
_HEAD = 1
VERIFY_PAGE = 5000


def record_hash(previous: str, record: dict) -> str:
    """The hash of ``record`` (a mapping with :data:`CHAINED_FIELDS`) chained to ``previous``."""
    values = [record.get(name) for name in CHAINED_FIELDS]
    values += [[name, record[name]] for name in OPTIONAL_FIELDS if record.get(name) is not None]
    body = json.dumps(values, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(f"{previous}\n{body}".encode()).hexdigest()


def append(conn: Connection, entry: dict) -> int:
    """Insert one record into the chain, in the caller's transaction; returns its id.

    The head row is updated first: that takes its row lock (PostgreSQL) or the database's write lock
    (SQLite) before the previous hash is read, so concurrent appenders queue instead of forking the chain.
    """
    locked = conn.execute(update(audit_chain).where(audit_chain.c.id == _HEAD)
                          .values(count=audit_chain.c.count + 1)).rowcount
    if locked == 0:
        conn.execute(insert(audit_chain).values(id=_HEAD, last_id=0, last_hash=GENESIS, count=1))
    previous = conn.execute(select(audit_chain.c.last_hash).where(audit_chain.c.id == _HEAD)).scalar_one()
    new_id = conn.execute(insert(audit_log).values(**entry)).inserted_primary_key[0]
    digest = record_hash(previous, {**entry, "id": new_id})
    conn.execute(update(audit_log).where(audit_log.c.id == new_id).values(hash=digest))
    conn.execute(update(audit_chain).where(audit_chain.c.id == _HEAD).values(last_id=new_id, last_hash=digest))
    return new_id


@dataclass(frozen=True)
class Verification:
    """The outcome of :func:`verify`: ``ok``, how many records were checked, and the first problem."""

    ok: bool
    checked: int
    unchained: int  # records older than the chain (written before revision 0008)
    first_bad_id: int | None = None
    problem: str | None = None
    head_hash: str | None = None

    def to_json(self) -> dict:
        """The result as the API and ``mlgate audit verify --output json`` show it."""
        return {"ok": self.ok, "checked": self.checked, "unchained": self.unchained,
                "first_bad_id": self.first_bad_id, "problem": self.problem, "head_hash": self.head_hash}


def verify(conn: Connection) -> Verification:
    """Recompute the chain over every record, oldest first; name the first record that does not fit."""
    head = conn.execute(select(audit_chain.c.last_id, audit_chain.c.last_hash, audit_chain.c.count)
                        .where(audit_chain.c.id == _HEAD)).first()
    previous = GENESIS
    checked = unchained = 0
    last_id = 0
    started = False
    after = 0
    while True:
        columns = [audit_log.c[n] for n in CHAINED_FIELDS + OPTIONAL_FIELDS]
        rows = list(conn.execute(select(*columns, audit_log.c.hash)
                                 .where(audit_log.c.id > after).order_by(audit_log.c.id).limit(VERIFY_PAGE)))
        if not rows:
            break
        for row in rows:
            record = dict(row._mapping)
            if record["hash"] is None and not started:
                unchained += 1  # before the chain began (revision 0008)
                continue
            started = True
            if record["hash"] is None:
                return Verification(False, checked, unchained, record["id"],
                                    f"record {record['id']} has no hash but follows chained records "
                                    "(inserted by hand, or its hash was removed)")
            expected = record_hash(previous, record)
            if record["hash"] != expected:
                return Verification(False, checked, unchained, record["id"],
                                    f"record {record['id']} does not match its hash: it was edited, or a record "
                                    "before it was deleted or reordered")
            previous = record["hash"]
            last_id = record["id"]
            checked += 1
        after = rows[-1].id
    if head is None:
        if checked:
            return Verification(False, checked, unchained, last_id,
                                "the chain's head row is missing (deleted by hand)")
        return Verification(True, 0, unchained, head_hash=GENESIS)
    if head.last_id != last_id or head.last_hash != previous or head.count != checked:
        return Verification(False, checked, unchained, head.last_id,
                            f"the chain's head names record {head.last_id} of {head.count}, but the log ends at "
                            f"record {last_id or '(none)'} of {checked}: records were deleted from the end, or "
                            "the head was edited")
    return Verification(True, checked, unchained, head_hash=previous)
