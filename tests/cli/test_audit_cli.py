"""``mlgate audit keygen / checkpoint / checkpoints / verify --public-key / prune`` offline (``--db``), as an
operator runs them: keys written safely, checkpoints signed and verified with the public key only, usage
mistakes refused with exit code 2."""

from __future__ import annotations

import json
import stat

import pytest
import sqlalchemy as sa

from gateway.commands.output import EXIT_ERROR, EXIT_USAGE
from tests.cli.conftest import Mlgate


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("audit-cli")
    uri = f"sqlite:///{workdir / 'mlgate.db'}"
    cli = Mlgate(workdir / "config.json")
    assert cli("db", "upgrade", "--backend-store-uri", uri).returncode == 0
    # Some audited changes to sign.
    for name in ("team-a", "team-b", "team-c"):
        assert cli("groups", "create", name, "--db", uri).returncode == 0
    return cli, uri, workdir


def test_keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites(db):
    cli, _, workdir = db
    made = cli("audit", "keygen", "--private-key", str(workdir / "k.pem"), "--public-key", str(workdir / "k.pub"))
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE((workdir / "k.pem").stat().st_mode) == 0o600
    assert (workdir / "k.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    before = (workdir / "k.pem").read_bytes()
    again = cli("audit", "keygen", "--private-key", str(workdir / "k.pem"), "--public-key", str(workdir / "o.pub"))
    assert again.returncode == EXIT_USAGE
    assert "never overwritten" in again.stderr
    assert (workdir / "k.pem").read_bytes() == before


def test_offline_checkpoint_then_verify_with_the_public_key(db):
    cli, uri, workdir = db
    if not (workdir / "k.pem").exists():
        cli("audit", "keygen", "--private-key", str(workdir / "k.pem"), "--public-key", str(workdir / "k.pub"))
    assert cli("audit", "checkpoint", "--db", uri).returncode == EXIT_USAGE  # no key: told what to pass
    signed = cli.json("audit", "checkpoint", "--db", uri, "--signing-key-file", str(workdir / "k.pem"),
                      "--checkpoint-file", str(workdir / "cp.jsonl"))["checkpoint"]
    assert signed["kind"] == "manual"
    listed = cli("audit", "checkpoints", "--db", uri, "-o", "json")
    assert [json.loads(line)["signature"] for line in listed.stdout.splitlines()] == [signed["signature"]]
    verified = cli("audit", "verify", "--db", uri, "--public-key", str(workdir / "k.pub"),
                   "--checkpoints", str(workdir / "cp.jsonl"))
    assert verified.returncode == 0, verified.stderr
    assert "1 signed checkpoint(s) match" in verified.stdout
    # The signed record was cut off the end (head rewritten to match): found.
    engine = sa.create_engine(uri)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM auth_audit_log WHERE id >= :s"), {"s": signed["seq"]})
            last = conn.execute(sa.text("SELECT id, hash FROM auth_audit_log ORDER BY id DESC LIMIT 1")).first()
            conn.execute(sa.text("UPDATE auth_audit_chain SET last_id = :i, last_hash = :h, count = count - 1"),
                         {"i": last.id, "h": last.hash})
    finally:
        engine.dispose()
    broken = cli("audit", "verify", "--db", uri, "--public-key", str(workdir / "k.pub"))
    assert broken.returncode == EXIT_ERROR
    assert f"BROKEN at record {signed['seq']}" in broken.stderr
    assert "deleted from the end" in broken.stderr


def test_public_key_checks_need_the_database_itself(db):
    cli, _, workdir = db
    refused = cli("audit", "verify", "--server", "http://127.0.0.1:9", "--public-key", str(workdir / "k.pub"))
    assert refused.returncode == EXIT_USAGE
    assert "use --db URI" in refused.stderr


def test_offline_prune_needs_a_key_and_an_age(db):
    cli, uri, workdir = db
    assert cli("audit", "prune", "--db", uri, "--signing-key-file", str(workdir / "k.pem")).returncode == EXIT_USAGE
    assert cli("audit", "prune", "--db", uri, "--older-than-days", "30").returncode == EXIT_USAGE
