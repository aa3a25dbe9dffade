"""A tamper-evident audit log: every record's hash covers the previous record's hash and its own fields.

``hash(n) = SHA-256(hash(n-1) || canonical JSON of record n's id, time, actor, action, target, client,
outcome and reason, then its workspace when it has one)``, starting from :data:`GENESIS`. (The workspace
came with revision 0009 and is appended only when set, so the hashes of records without one are those
revision 0008 wrote; moving a record into, out of or between workspaces breaks its hash all the same.)
Editing a record changes its hash; deleting or reordering records breaks the link of the next one;
deleting records from the end leaves the chain's head (``auth_audit_chain``: the last id, hash and count)
pointing at a record that is gone. Appends from every process go through one row lock on the head, so the
chain is one sequence per database.

What the hashes alone prove: that the table was not altered *without also recomputing every later hash and
the head*. A database writer can do that. Signed checkpoints (:mod:`auth.audit_checkpoints`) close that gap
up to the newest checkpoint the verifier holds: a record at or before it cannot be edited, deleted or cut
off without a checkpoint no longer matching, and only the private key could sign a new one. Records after
the newest checkpoint are protected by the hashes alone (docs/governance.md says so to operators).

Retention (:func:`prune`) deletes the oldest records up to a record it first verifies and then anchors
with a signed checkpoint; verification starts from that anchor.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import Connection, delete, func, insert, select, update

from auth.audit_checkpoints import Checkpoint, CheckpointSigner, CheckpointVerifier
from auth.tables import audit_chain, audit_checkpoints, audit_log

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


def _lock_head(conn: Connection) -> None:
    # Updating the head row takes its row lock (PostgreSQL) or the database's write lock (SQLite) before
    # anything is read, so appenders, checkpoints and pruning queue instead of forking the chain.
    locked = conn.execute(update(audit_chain).where(audit_chain.c.id == _HEAD)
                          .values(count=audit_chain.c.count)).rowcount
    if locked == 0:
        conn.execute(insert(audit_chain).values(id=_HEAD, last_id=0, last_hash=GENESIS, count=0))


def _head(conn: Connection):
    return conn.execute(select(audit_chain).where(audit_chain.c.id == _HEAD)).first()


@dataclass(frozen=True)
class Appended:
    """Where :func:`append` put a record: its id, its position in the chain and its hash."""

    id: int
    count: int
    hash: str


def append(conn: Connection, entry: dict) -> Appended:
    """Insert one record into the chain, in the caller's transaction (after taking the head's lock)."""
    _lock_head(conn)
    head = _head(conn)
    new_id = conn.execute(insert(audit_log).values(**entry)).inserted_primary_key[0]
    digest = record_hash(head.last_hash, {**entry, "id": new_id})
    conn.execute(update(audit_log).where(audit_log.c.id == new_id).values(hash=digest))
    conn.execute(update(audit_chain).where(audit_chain.c.id == _HEAD)
                 .values(last_id=new_id, last_hash=digest, count=head.count + 1))
    return Appended(new_id, head.count + 1, digest)

@dataclass(frozen=True)
class Verification:
    """The outcome of :func:`verify`: ``ok``, how many records were checked, and the first problem."""

    ok: bool
    checked: int
    unchained: int  # records older than the chain (written before revision 0008)
    first_bad_id: int | None = None
    problem: str | None = None
    head_hash: str | None = None
    anchor_id: int = 0  # records up to this id were pruned by retention
    signatures_checked: bool = False  # whether checkpoints were checked against public keys
    checkpoints_matched: int = 0  # trusted checkpoints that the recomputed chain matches
    last_checkpoint_id: int | None = None  # the newest such: records after it rest on the hashes alone
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict:
        """The result as the API and ``mlgate audit verify --output json`` show it."""
        return {"ok": self.ok, "checked": self.checked, "unchained": self.unchained,
                "first_bad_id": self.first_bad_id, "problem": self.problem, "head_hash": self.head_hash,
                "anchor_id": self.anchor_id, "signatures_checked": self.signatures_checked,
                "checkpoints_matched": self.checkpoints_matched, "last_checkpoint_id": self.last_checkpoint_id,
                "notes": list(self.notes)}


def stored_checkpoints(conn: Connection, after_id: int = 0, limit: int | None = None) -> list[Checkpoint]:
    """The checkpoints in the database, oldest first."""
    query = select(audit_checkpoints).where(audit_checkpoints.c.id > after_id).order_by(audit_checkpoints.c.id)
    if limit is not None:
        query = query.limit(limit)
    return [Checkpoint(r.seq, r.count, r.hash, r.at, r.kind, r.key_id, r.signature) for r in conn.execute(query)]


def stored_checkpoint_rows(conn: Connection, after_id: int = 0, limit: int = 1000) -> list[dict]:
    """Stored checkpoints with their row ``id`` (for paging), oldest first."""
    query = select(audit_checkpoints).where(audit_checkpoints.c.id > after_id).order_by(audit_checkpoints.c.id)
    return [dict(r._mapping) for r in conn.execute(query.limit(limit))]


class _Broken(Exception):
    def __init__(self, record_id: int | None, problem: str):
        super().__init__(problem)
        self.record_id = record_id
        self.problem = problem


@dataclass
class _Walk:
    """The state of a chain walk: the previous hash, the chain position, and what was seen."""

    previous: str
    position: int
    last_id: int = 0
    checked: int = 0
    unchained: int = 0
    started: bool = False
    confirmed: set[int] = field(default_factory=set)  # records a checkpoint named and matched


def _walk(conn: Connection, walk: _Walk, after: int, until: int | None = None, *,
          allow_unchained: bool = True, expected: dict[int, list[Checkpoint]] | None = None) -> None:
    """Recompute the chain over records with ``after < id <= until``; raise :class:`_Broken` at the first
    record that does not fit (its hash, or a checkpoint naming it)."""
    columns = [audit_log.c[n] for n in CHAINED_FIELDS + OPTIONAL_FIELDS]
    while True:
        query = select(*columns, audit_log.c.hash).where(audit_log.c.id > after)
        if until is not None:
            query = query.where(audit_log.c.id <= until)
        rows = list(conn.execute(query.order_by(audit_log.c.id).limit(VERIFY_PAGE)))
        if not rows:
            return
        for row in rows:
            record = dict(row._mapping)
            if record["hash"] is None and not walk.started and allow_unchained:
                walk.unchained += 1  # before the chain began (revision 0008)
                continue
            walk.started = True
            if record["hash"] is None:
                raise _Broken(record["id"], f"record {record['id']} has no hash but follows chained records "
                                            "(inserted by hand, or its hash was removed)")
            if record["hash"] != record_hash(walk.previous, record):
                raise _Broken(record["id"], f"record {record['id']} does not match its hash: it was edited, or a "
                                            "record before it was deleted or reordered")
            walk.position += 1
            for checkpoint in (expected or {}).get(record["id"], ()):
                if checkpoint.hash != record["hash"] or checkpoint.count != walk.position:
                    raise _Broken(record["id"], f"record {record['id']} is not what the checkpoint signed at "
                                                f"{checkpoint.at} says (position {checkpoint.count}, hash "
                                                f"{checkpoint.hash[:12]}...): the log was rewritten")
                walk.confirmed.add(record["id"])
            walk.previous = record["hash"]
            walk.last_id = record["id"]
            walk.checked += 1
        after = rows[-1].id


def verify(conn: Connection, verifier: CheckpointVerifier | None = None,
           extra_checkpoints: Iterable[Checkpoint] = ()) -> Verification:
    """Recompute the chain from its anchor, oldest first, against the head and the checkpoints; name the
    first record that does not fit.

    With ``verifier`` (the public keys), a checkpoint is believed only if a trusted key signed it, a badly
    signed one is itself a finding, and a pruned log's anchor must be a signed checkpoint. Without it the
    stored checkpoints are compared as they are (a database writer could have forged them)."""
    head = _head(conn)
    anchor_id, anchor_hash, anchor_count = (head.anchor_id, head.anchor_hash, head.anchor_count) if head \
        else (0, GENESIS, 0)
    checkpoints = list({(c.seq, c.hash, c.signature): c for c in
                        [*stored_checkpoints(conn), *extra_checkpoints]}.values())
    notes: list[str] = []
    trusted: list[Checkpoint] = []
    for checkpoint in checkpoints:
        if verifier is None or verifier.valid(checkpoint):
            trusted.append(checkpoint)
        elif verifier.knows(checkpoint):
            return Verification(False, 0, 0, checkpoint.seq,
                                f"the checkpoint of record {checkpoint.seq} (signed at {checkpoint.at}) does not "
                                "carry a valid signature of its key: it was forged or edited", anchor_id=anchor_id,
                                signatures_checked=True)
    unknown = len(checkpoints) - len(trusted) if verifier is not None else 0
    if unknown:
        notes.append(f"{unknown} checkpoint(s) signed by other keys were not used (pass every --public-key)")
    expected: dict[int, list[Checkpoint]] = {}
    for checkpoint in trusted:
        if checkpoint.seq > anchor_id:
            expected.setdefault(checkpoint.seq, []).append(checkpoint)

    def broken(record_id, problem, walk):
        return Verification(False, walk.checked, walk.unchained, record_id, problem, anchor_id=anchor_id,
                            signatures_checked=verifier is not None)

    walk = _Walk(anchor_hash, anchor_count)
    if anchor_id:
        anchored = [c for c in trusted if (c.seq, c.hash, c.count) == (anchor_id, anchor_hash, anchor_count)]
        if verifier is not None and not anchored:
            return broken(anchor_id, f"the log starts after record {anchor_id} (pruned), but no checkpoint signed "
                                     "by a trusted key vouches for that start: records were deleted from the "
                                     "beginning, or the anchor was edited", walk)
        stray = conn.execute(select(func.min(audit_log.c.id)).where(audit_log.c.id <= anchor_id)).scalar()
        if stray is not None:
            return broken(stray, f"record {stray} lies in the pruned range (up to {anchor_id}): inserted by hand",
                          walk)
    try:
        _walk(conn, walk, anchor_id, allow_unchained=not anchor_id, expected=expected)
    except _Broken as exc:
        return broken(exc.record_id, exc.problem, walk)
    beyond = [c for c in trusted if c.seq > walk.last_id or c.count > walk.position]
    if beyond:
        newest = max(beyond, key=lambda c: (c.count, c.seq))
        return broken(newest.seq, f"a checkpoint signed at {newest.at} covers record {newest.seq} (the "
                                  f"{newest.count}th), but the log ends at record {walk.last_id or '(none)'} (the "
                                  f"{walk.position}th): records were deleted from the end", walk)
    missing = sorted(seq for seq in expected if seq not in walk.confirmed)
    if missing:
        return broken(missing[0], f"record {missing[0]}, named by a checkpoint, is missing: it was deleted", walk)
    if head is None:
        if walk.checked:
            return broken(walk.last_id, "the chain's head row is missing (deleted by hand)", walk)
        return Verification(True, 0, walk.unchained, head_hash=GENESIS, notes=tuple(notes))
    if head.last_id != walk.last_id or head.last_hash != walk.previous or head.count != walk.position:
        shown_last = walk.last_id or "(none)"
        return broken(head.last_id, f"the chain's head names record {head.last_id} of {head.count}, but the log "
                                    f"ends at record {shown_last} of {walk.position}: records were deleted from the "
                                    "end, or the head was edited", walk)
    matched = [c for c in trusted if c.seq > anchor_id or (c.seq, c.hash) == (anchor_id, anchor_hash)]
    return Verification(True, walk.checked, walk.unchained, head_hash=walk.previous, anchor_id=anchor_id,
                        signatures_checked=verifier is not None, checkpoints_matched=len(matched),
                        last_checkpoint_id=max((c.seq for c in matched), default=None), notes=tuple(notes))


class ChainBroken(Exception):
    """The chain does not verify, so it will not be signed or pruned (that would launder the damage)."""


def _verified_until_head(conn: Connection, verifier: CheckpointVerifier, until: int | None = None) -> _Walk:
    """Walk from the newest checkpoint this key signed (or the anchor) to ``until`` (default: the head)."""
    head = _head(conn)
    walk = _Walk(head.anchor_hash, head.anchor_count)
    after = head.anchor_id
    # The newest few checkpoints that could start the walk (not all of them: there is one every few minutes).
    query = select(audit_checkpoints).where(audit_checkpoints.c.seq > after,
                                            audit_checkpoints.c.seq <= (head.last_id if until is None else until))
    candidates = conn.execute(query.order_by(audit_checkpoints.c.seq.desc(), audit_checkpoints.c.id.desc())
                              .limit(16))
    for r in candidates:
        checkpoint = Checkpoint(r.seq, r.count, r.hash, r.at, r.kind, r.key_id, r.signature)
        if verifier.valid(checkpoint):
            row = conn.execute(select(audit_log.c.hash).where(audit_log.c.id == checkpoint.seq)).first()
            if row is None or row.hash != checkpoint.hash:
                # A rewritten log whose hashes agree again: signing its head now would vouch for the rewrite.
                raise ChainBroken(f"record {checkpoint.seq} is not what the checkpoint signed at {checkpoint.at} "
                                  "says: the log was rewritten")
            walk = _Walk(checkpoint.hash, checkpoint.count, last_id=checkpoint.seq, started=True)
            after = checkpoint.seq
            break
    try:
        _walk(conn, walk, after, until, allow_unchained=not head.anchor_id and after == 0)
    except _Broken as exc:
        raise ChainBroken(exc.problem) from None
    if until is None and (walk.last_id, walk.previous, walk.position) != (head.last_id, head.last_hash, head.count):
        raise ChainBroken(f"the chain's head names record {head.last_id} of {head.count}, but the log ends at "
                          f"record {walk.last_id or '(none)'} of {walk.position}")
    return walk


def checkpoint(conn: Connection, signer: CheckpointSigner, kind: str, at: int, *,
               only_if_moved: bool = False) -> Checkpoint | None:
    """Sign the chain's head, in the caller's transaction, after verifying the records since the previous
    checkpoint; None when there is nothing to sign (or, ``only_if_moved``, nothing new since the last one)."""
    _lock_head(conn)
    head = _head(conn)
    if head.last_id == 0 or head.count == head.anchor_count:
        return None
    if only_if_moved:
        newest = conn.execute(select(func.max(audit_checkpoints.c.seq))
                              .where(audit_checkpoints.c.key_id == signer.key_id)).scalar()
        if newest is not None and newest >= head.last_id:
            return None
    _verified_until_head(conn, signer.verifier())
    signed = signer.sign(seq=head.last_id, count=head.count, hash=head.last_hash, at=at, kind=kind)
    conn.execute(insert(audit_checkpoints).values(**signed.to_json()))
    return signed


@dataclass(frozen=True)
class Pruned:
    """What :func:`prune` did: the records it removed, the anchor checkpoint, and its own audit record."""

    deleted: int
    first_id: int
    last_id: int
    anchor: Checkpoint
    record: dict
    appended: Appended


def prune(conn: Connection, signer: CheckpointSigner, before: int, at: int, *, actor: str,
          reason: str) -> Pruned | None:
    """Delete the oldest records, up to the first written at or after ``before`` (epoch ms), in the caller's
    transaction.

    The newest such record is verified from the previous anchor (or checkpoint), then signed as the new
    anchor; the prune is itself appended to the chain (before the delete, so its id follows every pruned
    one even where SQLite would reuse ids of an emptied table). None when nothing is old enough."""
    _lock_head(conn)
    head = _head(conn)
    # The oldest run of records only: a record younger than ``before`` ends it, so a record written within
    # the retention is never deleted, even behind an older-dated one (another process's clock).
    young = conn.execute(select(func.min(audit_log.c.id))
                         .where(audit_log.c.id > head.anchor_id, audit_log.c.at >= before)).scalar()
    query = select(func.max(audit_log.c.id)).where(audit_log.c.id > head.anchor_id, audit_log.c.at < before,
                                                   audit_log.c.hash.is_not(None))
    target = conn.execute(query if young is None else query.where(audit_log.c.id < young)).scalar()
    if target is None:
        return None
    walk = _verified_until_head(conn, signer.verifier(), until=target)
    if walk.last_id != target:
        raise ChainBroken(f"record {target} could not be reached from the chain's start")
    first_id = conn.execute(select(func.min(audit_log.c.id))).scalar()
    anchor = signer.sign(seq=target, count=walk.position, hash=walk.previous, at=at, kind="anchor")
    conn.execute(insert(audit_checkpoints).values(**anchor.to_json()))
    deleted_count = conn.execute(select(func.count()).select_from(audit_log)
                                 .where(audit_log.c.id <= target)).scalar_one()
    record = {"at": at, "actor": actor, "action": "audit.prune", "target": f"records {first_id}..{target}",
              "client_address": None, "outcome": "success",
              "reason": f"{reason}: {deleted_count} record(s) written before {before} (epoch ms) removed; the chain "
                        f"now starts after record {target}, anchored by a checkpoint signed by key {signer.key_id}",
              "workspace": None}
    appended = append(conn, record)
    conn.execute(delete(audit_log).where(audit_log.c.id <= target))
    conn.execute(update(audit_chain).where(audit_chain.c.id == _HEAD)
                 .values(anchor_id=target, anchor_hash=walk.previous, anchor_count=walk.position))
    return Pruned(deleted_count, first_id, target, anchor, record, appended)
