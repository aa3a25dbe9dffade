"""Audit retention (auth.audit_chain.prune, auth.audit_keeper): old records go, verification still holds, the
pruned range is itself audited, and a database writer cannot pass a cut-off beginning off as a prune."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from auth import audit_chain
from auth.audit import Auditor
from auth.audit_keeper import DAY_MS, AuditKeeper, KeeperPlan
from auth.store import IdentityStore
from gateway.db import upgrade_database
from tests.auth.test_audit_checkpoints import _rechain, _signer, _verify
from tests.conftest import default_database
from tracking.db.engine import make_engine

NOW = 1_800_000_000.0  # seconds; the keeper's clock is pinned here


@pytest.fixture(params=["sqlite", "postgresql"])
def kept(request, tmp_path):
    with default_database(tmp_path, request.param) as uri:
        engine = make_engine(uri)
        upgrade_database(engine)
        auditor = Auditor(IdentityStore(engine))
        keeper = AuditKeeper(engine, auditor, KeeperPlan(_signer(), retention_days=30), clock=lambda: NOW)
        exported: list[dict] = []
        auditor.listeners.append(lambda record, appended: exported.append({**record, "id": appended.id}))
        yield engine, keeper, exported
        engine.dispose()


def _append(engine, days_ago: float, n: int, actor: str = "old") -> list[int]:
    """Chain ``n`` records written ``days_ago`` (the chain accepts any time; only ids order it)."""
    ids = []
    with engine.begin() as conn:
        for i in range(n):
            entry = {"at": int((NOW - days_ago * 86400) * 1000) + i, "actor": f"{actor}{i}", "action": "login",
                     "target": None, "client_address": "10.0.0.2", "outcome": "success", "reason": "basic",
                     "workspace": None}
            ids.append(audit_chain.append(conn, entry).id)
    return ids


def test_retention_prunes_old_records_and_verification_starts_at_the_signed_anchor(kept):
    engine, keeper, exported = kept
    old = _append(engine, 40, 5)
    recent = _append(engine, 2, 3, actor="new")
    pruned = keeper.prune(actor="mlgate:retention")
    assert (pruned.deleted, pruned.first_id, pruned.last_id) == (5, old[0], old[-1])
    assert pruned.anchor.kind == "anchor"
    assert pruned.anchor.seq == old[-1]
    assert pruned.anchor.count == 5
    with engine.connect() as conn:
        left = conn.execute(text("SELECT id, action, actor FROM auth_audit_log ORDER BY id")).all()
    assert [r.id for r in left[:3]] == recent
    # The prune is itself a record, after every pruned one, naming the range and the reason.
    prune_record = left[-1]
    assert prune_record.action == "audit.prune"
    assert prune_record.actor == "mlgate:retention"
    assert exported[-1]["action"] == "audit.prune"
    assert f"records {old[0]}..{old[-1]}" == exported[-1]["target"]
    assert "retention 30 day(s): 5 record(s)" in exported[-1]["reason"]
    result = _verify(engine, keeper.plan.signer.verifier())
    assert result.ok, result.problem
    assert (result.anchor_id, result.checked) == (old[-1], 4)
    # Nothing old is left: a second prune does nothing.
    assert keeper.prune(actor="mlgate:retention") is None
    assert _verify(engine, keeper.plan.signer.verifier()).ok


def test_a_pruned_log_keeps_finding_edits_deletions_and_truncation(kept):
    engine, keeper, _ = kept
    _append(engine, 40, 4)
    recent = _append(engine, 1, 4, actor="new")
    keeper.prune(actor="mlgate:retention")
    keeper.checkpoint()
    verifier = keeper.plan.signer.verifier()
    with engine.begin() as conn:
        conn.execute(text("UPDATE auth_audit_log SET actor = 'mallory' WHERE id = :i"), {"i": recent[1]})
    assert _verify(engine, verifier).first_bad_id == recent[1]
    _rechain(engine)
    assert not _verify(engine, verifier).ok  # the checkpoint after the prune still holds it


def test_cutting_off_the_beginning_and_moving_the_anchor_is_found_with_the_public_key(kept):
    engine, keeper, _ = kept
    _append(engine, 40, 3)
    recent = _append(engine, 1, 4, actor="new")
    keeper.prune(actor="mlgate:retention")
    verifier = keeper.plan.signer.verifier()
    assert _verify(engine, verifier).ok
    # The attacker deletes the oldest remaining records too and moves the anchor to hide it.
    with engine.begin() as conn:
        hidden = conn.execute(text("SELECT hash FROM auth_audit_log WHERE id = :i"), {"i": recent[1]}).scalar()
        conn.execute(text("DELETE FROM auth_audit_log WHERE id <= :i"), {"i": recent[1]})
        conn.execute(text("UPDATE auth_audit_chain SET anchor_id = :i, anchor_hash = :h, anchor_count = anchor_count"
                          " + 2"), {"i": recent[1], "h": hidden})
    assert _verify(engine).ok  # without the key, the stored anchor is taken as it is...
    found = _verify(engine, verifier)  # ...with it, the new start is not vouched for
    assert not found.ok
    assert found.first_bad_id == recent[1]
    assert "no checkpoint signed by a trusted key" in found.problem


def test_a_record_put_back_into_the_pruned_range_is_found(kept):
    engine, keeper, _ = kept
    old = _append(engine, 40, 3)
    _append(engine, 1, 2, actor="new")
    keeper.prune(actor="mlgate:retention")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO auth_audit_log (id, at, actor, action, outcome) VALUES (:i, 1, 'x', 'login', "
                          "'success')"), {"i": old[1]})
    found = _verify(engine, keeper.plan.signer.verifier())
    assert not found.ok
    assert found.first_bad_id == old[1]


def test_retention_refuses_to_prune_a_broken_chain(kept):
    # Pruning deletes evidence: it must never launder an edited record into a signed anchor.
    engine, keeper, _ = kept
    old = _append(engine, 40, 4)
    _append(engine, 1, 2, actor="new")
    with engine.begin() as conn:
        conn.execute(text("UPDATE auth_audit_log SET reason = 'edited' WHERE id = :i"), {"i": old[1]})
    with pytest.raises(audit_chain.ChainBroken, match=f"record {old[1]}"):
        keeper.prune(actor="mlgate:retention")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM auth_audit_log")).scalar() == 6
        assert conn.execute(text("SELECT count(*) FROM auth_audit_checkpoints")).scalar() == 0


def test_prune_everything_old_keeps_ids_increasing(kept):
    # Every record is old: the prune's own record must still get an id after the pruned ones (SQLite reuses
    # the ids of an emptied table).
    engine, keeper, _ = kept
    old = _append(engine, 40, 3)
    pruned = keeper.prune(actor="mlgate:retention")
    assert pruned.appended.id > old[-1]
    assert _verify(engine, keeper.plan.signer.verifier()).ok
    _append(engine, 0, 2, actor="later")
    assert _verify(engine, keeper.plan.signer.verifier()).ok


def test_the_keeper_prunes_on_its_own_at_most_once_an_hour(kept):
    engine, keeper, _ = kept
    clock = [NOW]
    keeper.clock = lambda: clock[0]
    keeper.tick()  # nothing old yet; the hour starts

    def old_left() -> int:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM auth_audit_log WHERE actor LIKE 'old%'")).scalar()

    _append(engine, 40, 2)
    clock[0] = NOW + 1800
    keeper.tick()
    assert old_left() == 2
    clock[0] = NOW + 3600
    keeper.tick()
    assert old_left() == 0
    assert _verify(engine, keeper.plan.signer.verifier()).ok


def test_a_record_within_the_retention_is_never_pruned_behind_an_older_dated_one(kept):
    engine, keeper, _ = kept
    _append(engine, 40, 2)
    young = _append(engine, 1, 1, actor="young")
    late = _append(engine, 40, 1, actor="late")  # written after, dated before (another process's clock)
    pruned = keeper.prune(actor="mlgate:retention")
    assert pruned.deleted == 2
    with engine.connect() as conn:
        left = [r[0] for r in conn.execute(text("SELECT id FROM auth_audit_log ORDER BY id"))]
    assert young[0] in left
    assert late[0] in left
    assert keeper.prune(actor="mlgate:retention") is None
    assert DAY_MS == 86_400_000
