"""Signed audit checkpoints (auth.audit_checkpoints, auth.audit_chain): what a database writer can and cannot hide.

The attacker here has full write access to the database (direct SQL) and no private key. Each test alters the
log the way such an attacker would, including recomputing every later hash and the head row, and checks what
`audit verify` with the public key says. Run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from auth import audit_chain
from auth.audit import Auditor
from auth.audit_checkpoints import (
    Checkpoint,
    CheckpointSigner,
    CheckpointVerifier,
    load_private_key,
    load_private_key_file,
)
from auth.audit_keeper import AuditKeeper, KeeperPlan
from auth.store import IdentityStore
from gateway.db import upgrade_database
from tests.conftest import default_database
from tracking.db.engine import make_engine


def _signer() -> CheckpointSigner:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return CheckpointSigner(Ed25519PrivateKey.generate())


@pytest.fixture(params=["sqlite", "postgresql"])
def chain(request, tmp_path):
    with default_database(tmp_path, request.param) as uri:
        engine = make_engine(uri)
        upgrade_database(engine)
        auditor = Auditor(IdentityStore(engine))
        signer = _signer()
        keeper = AuditKeeper(engine, auditor, KeeperPlan(signer, checkpoint_file=str(tmp_path / "cp.jsonl")))
        yield engine, auditor, keeper, signer.verifier(), tmp_path / "cp.jsonl"
        engine.dispose()


def _write(auditor: Auditor, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        auditor.record("login", "failure", actor=f"user{i}", client="10.0.0.1", reason=f"basic: attempt {i}")


def _ids(engine) -> list[int]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT id FROM auth_audit_log ORDER BY id"))]


def _verify(engine, verifier=None, extra=()):
    with engine.connect() as conn:
        return audit_chain.verify(conn, verifier, extra)


def _rechain(engine, after_id: int = 0) -> None:
    """What an attacker with SQL access does after changing the log: recompute every hash and the head."""
    with engine.begin() as conn:
        head = conn.execute(text("SELECT anchor_hash, anchor_id FROM auth_audit_chain WHERE id = 1")).first()
        previous = head.anchor_hash
        rows = conn.execute(text("SELECT id, at, actor, action, target, client_address, outcome, reason, workspace "
                                 "FROM auth_audit_log WHERE id > :a ORDER BY id"), {"a": head.anchor_id}).all()
        count = conn.execute(text("SELECT anchor_count FROM auth_audit_chain WHERE id = 1")).scalar()
        last = 0
        for row in rows:
            digest = audit_chain.record_hash(previous, dict(row._mapping))
            conn.execute(text("UPDATE auth_audit_log SET hash = :h WHERE id = :i"), {"h": digest, "i": row.id})
            previous, last, count = digest, row.id, count + 1
        conn.execute(text("UPDATE auth_audit_chain SET last_id = :l, last_hash = :h, count = :c WHERE id = 1"),
                     {"l": last, "h": previous, "c": count})


def test_a_checkpoint_signs_the_head_and_verifies_with_the_public_key_only(chain):
    engine, auditor, keeper, verifier, file = chain
    _write(auditor, 5)
    signed = keeper.checkpoint("manual")
    ids = _ids(engine)
    assert (signed.seq, signed.count) == (ids[-1], 5)
    assert verifier.valid(signed)
    # The verifier holds the public key only; another key's verifier does not accept the signature.
    assert not _signer().verifier().valid(signed)
    result = _verify(engine, verifier)
    assert result.ok
    assert result.signatures_checked
    assert (result.checkpoints_matched, result.last_checkpoint_id) == (1, ids[-1])
    # Published off the database: the checkpoint file holds the same signed statement.
    assert [Checkpoint.from_json(json.loads(line)) for line in file.read_text().splitlines()] == [signed]


def test_a_modified_row_is_found_even_when_every_later_hash_is_recomputed(chain):
    engine, auditor, keeper, verifier, _ = chain
    _write(auditor, 6)
    keeper.checkpoint()
    victim = _ids(engine)[2]
    with engine.begin() as conn:
        conn.execute(text("UPDATE auth_audit_log SET reason = 'nothing happened' WHERE id = :i"), {"i": victim})
    assert _verify(engine, verifier).first_bad_id == victim
    _rechain(engine)  # the hashes alone now agree again...
    assert _verify(engine).ok is False  # ...but the stored checkpoint does not
    found = _verify(engine, verifier)
    assert not found.ok
    assert "not what the checkpoint signed" in found.problem


def test_a_row_deleted_in_the_middle_is_found(chain):
    engine, auditor, keeper, verifier, _ = chain
    _write(auditor, 6)
    keeper.checkpoint()
    ids = _ids(engine)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM auth_audit_log WHERE id = :i"), {"i": ids[3]})
    found = _verify(engine, verifier)
    assert not found.ok
    assert found.first_bad_id == ids[4]
    _rechain(engine)
    found = _verify(engine, verifier)
    assert not found.ok
    assert found.first_bad_id == ids[-1]  # the checkpoint's record now sits one position earlier


def test_truncation_past_the_last_checkpoint_is_found_and_after_it_is_not(chain):
    engine, auditor, keeper, verifier, _ = chain
    _write(auditor, 5)
    signed = keeper.checkpoint()
    _write(auditor, 4, start=5)
    ids = _ids(engine)
    # Cut the log back past the checkpoint and make the head agree: only the checkpoint notices.
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM auth_audit_log WHERE id >= :i"), {"i": ids[3]})
    _rechain(engine)
    found = _verify(engine, verifier)
    assert not found.ok
    assert found.first_bad_id == signed.seq
    assert "deleted from the end" in found.problem
    # Re-inserting look-alike records up to the checkpoint does not help: they are not the signed ones.
    with engine.begin() as conn:
        for i in ids[3:5]:
            conn.execute(text("INSERT INTO auth_audit_log (id, at, actor, action, outcome) VALUES (:i, 1, 'x', "
                              "'login', 'success')"), {"i": i})
    _rechain(engine)
    found = _verify(engine, verifier)
    assert not found.ok
    assert "not what the checkpoint signed" in found.problem


def test_records_after_the_last_checkpoint_can_be_cut_off_unnoticed(chain):
    # Pins what docs/governance.md says remains undetectable, so the docs stay true.
    engine, auditor, keeper, verifier, _ = chain
    _write(auditor, 5)
    keeper.checkpoint()
    _write(auditor, 3, start=5)
    ids = _ids(engine)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM auth_audit_log WHERE id > :i"), {"i": ids[4]})
    assert not _verify(engine, verifier).ok  # the head row still says 8 records...
    _rechain(engine)
    assert _verify(engine, verifier).ok  # ...rewritten with it, the last 3 records are gone unnoticed


def test_deleted_checkpoint_rows_are_caught_by_the_copy_kept_off_host(chain):
    engine, auditor, keeper, verifier, file = chain
    _write(auditor, 5)
    keeper.checkpoint()
    _write(auditor, 2, start=5)
    ids = _ids(engine)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM auth_audit_log WHERE id > :i"), {"i": ids[1]})
        conn.execute(text("DELETE FROM auth_audit_checkpoints"))
    _rechain(engine)
    assert _verify(engine, verifier).ok  # the database alone no longer knows
    shipped = [Checkpoint.from_json(json.loads(line)) for line in file.read_text().splitlines()]
    found = _verify(engine, verifier, shipped)
    assert not found.ok
    assert "deleted from the end" in found.problem


def test_a_forged_or_edited_checkpoint_is_itself_a_finding(chain):
    engine, auditor, keeper, verifier, _ = chain
    _write(auditor, 4)
    keeper.checkpoint()
    # A database writer moves the checkpoint to cover less (hoping to cut records off after it).
    with engine.begin() as conn:
        conn.execute(text("UPDATE auth_audit_checkpoints SET seq = seq - 1, count = count - 1"))
    found = _verify(engine, verifier)
    assert not found.ok
    assert "valid signature" in found.problem
    # A checkpoint signed by a key the verifier does not trust is ignored (and said so), not believed.
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM auth_audit_checkpoints"))
        head = conn.execute(text("SELECT last_id, count, last_hash FROM auth_audit_chain")).first()
    stranger = _signer().sign(seq=head.last_id + 50, count=head.count + 50, hash="f" * 64, at=1, kind="manual")
    result = _verify(engine, verifier, [stranger])
    assert result.ok
    assert "other keys" in result.notes[0]


def test_no_checkpoint_is_signed_over_a_broken_chain(chain):
    engine, auditor, keeper, _verifier, _ = chain
    _write(auditor, 4)
    victim = _ids(engine)[1]
    with engine.begin() as conn:
        conn.execute(text("UPDATE auth_audit_log SET actor = 'mallory' WHERE id = :i"), {"i": victim})
    with pytest.raises(audit_chain.ChainBroken, match=f"record {victim}"):
        keeper.checkpoint()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM auth_audit_checkpoints")).scalar() == 0


def test_a_rewritten_log_whose_hashes_agree_again_is_not_signed(chain):
    # The keeper must not launder a rewrite: after an edit with every later hash recomputed, the next
    # checkpoint would otherwise sign the forged head.
    engine, auditor, keeper, _, _ = chain
    _write(auditor, 4)
    signed = keeper.checkpoint()
    _write(auditor, 2, start=4)
    with engine.begin() as conn:
        conn.execute(text("UPDATE auth_audit_log SET actor = 'mallory' WHERE id = :i"), {"i": signed.seq})
    _rechain(engine)
    with pytest.raises(audit_chain.ChainBroken, match=f"record {signed.seq} is not what the checkpoint signed"):
        keeper.checkpoint()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM auth_audit_checkpoints")).scalar() == 1


def test_the_keeper_wakes_every_n_records_and_signs_in_its_own_thread(chain, tmp_path):
    engine, auditor, _, _verifier, _ = chain
    keeper = AuditKeeper(engine, auditor, KeeperPlan(_signer(), every_records=3, interval_seconds=3600))
    auditor.listeners.append(keeper.listener)
    keeper.start()
    try:
        _write(auditor, 7)
        import time

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                if conn.execute(text("SELECT count(*) FROM auth_audit_checkpoints")).scalar() >= 2:
                    break
            time.sleep(0.05)
    finally:
        keeper.stop()
    with engine.connect() as conn:
        kinds = [r[0] for r in conn.execute(text("SELECT kind FROM auth_audit_checkpoints"))]
    assert kinds
    assert set(kinds) == {"every"}
    assert _verify(engine, keeper.plan.signer.verifier()).ok


def test_keys_are_refused_with_a_reason_and_never_shown(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key

    from auth.audit_checkpoints import CheckpointKeyError, generate_key_pair

    private, _ = generate_key_pair()
    loose = tmp_path / "loose.pem"
    loose.write_bytes(private)
    loose.chmod(0o644)
    with pytest.raises(CheckpointKeyError, match="readable by other users"):
        load_private_key_file(str(loose))
    loose.chmod(0o600)
    assert load_private_key_file(str(loose)).key_id
    ec = generate_private_key(SECP256R1()).private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption())
    with pytest.raises(CheckpointKeyError, match="not an Ed25519 key"):
        load_private_key(ec, "ec.pem")
    with pytest.raises(CheckpointKeyError, match="not a PEM private key") as refused:
        load_private_key(b"-----BEGIN PRIVATE KEY-----\nsecretsecret\n-----END PRIVATE KEY-----\n", "env")
    assert "secretsecret" not in str(refused.value)
    assert "key_id" in repr(load_private_key(private, "x"))
    assert "PRIVATE" not in repr(load_private_key(private, "x"))


def test_a_verifier_rejects_a_signature_moved_to_other_values():
    signer = _signer()
    signed = signer.sign(seq=10, count=10, hash="a" * 64, at=5, kind="manual")
    verifier = CheckpointVerifier([signer.public_key])
    assert verifier.valid(signed)
    for change in ({"seq": 11}, {"count": 9}, {"hash": "b" * 64}, {"at": 6}, {"kind": "anchor"}):
        assert not verifier.valid(Checkpoint(**{**signed.to_json(), **change})), change
