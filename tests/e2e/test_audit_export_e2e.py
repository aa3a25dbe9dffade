"""The audit trail leaving a real ``mlgate server`` (issue #25): records reach a real OTLP/HTTP logs receiver
and the JSON-lines file as they are written, with no password, token or cookie in either; checkpoints signed
by the server let ``mlgate audit verify --public-key`` catch a log cut back by direct SQL, and a collector
going down never slows or fails a request."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import yaml

from tests.audit_keys import write_key_pair
from tests.cli.conftest import Mlgate
from tests.conftest import BACKENDS, LiveServer, start_server
from tests.otlp_receiver import Received, otlp_receiver
from tests.services import fresh_postgres_database

A = "/api/2.0/mlflow"
M = "/api/2.0/mlgate"
ALICE, ALICE_PASSWORD = "alice", "Sesame-Secret-Pw-7d3f9a0c51"
WRONG_PASSWORD = "Wrong-Guess-Pw-0b8e6d2f93"


@dataclass
class Exporting:
    server: LiveServer
    received: Received
    jsonl: Path
    checkpoints: Path
    public_key: Path
    uri: str
    admin_cli: Mlgate


def _wait(predicate, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


@pytest.fixture(scope="module", params=BACKENDS)
def exporting(request, tmp_path_factory) -> Iterator[Exporting]:
    workdir = tmp_path_factory.mktemp(f"audit-export-{request.param}")
    if request.param == "postgresql":
        with fresh_postgres_database() as uri:
            yield from _exporting(workdir, uri)
    else:
        yield from _exporting(workdir, f"sqlite:///{workdir / 'mlgate.db'}")


def _exporting(workdir: Path, uri: str) -> Iterator[Exporting]:
    private, public = write_key_pair(workdir)
    jsonl, checkpoints = workdir / "audit.jsonl", workdir / "checkpoints.jsonl"
    with otlp_receiver() as (endpoint, received):
        policy = workdir / "policy.yaml"
        policy.write_text(yaml.safe_dump({"version": 1, "audit": {
            "checkpoints": {"signing_key_file": str(private), "every_records": 5, "interval_seconds": 5,
                            "file": str(checkpoints)},
            "export": [{"type": "otlp", "endpoint": endpoint, "headers": {"X-Collector-Key": "${OTEL_KEY}"}},
                       {"type": "jsonl", "path": str(jsonl)}]}}))
        # --dev: plain-http session cookies, so the test's client signs in through the form like a browser.
        server = start_server(workdir / "server", uri, "--dev", "--policy", str(policy), env={"OTEL_KEY": "k" * 40})
        try:
            made = httpx.post(f"{server.url}{A}/users/create", auth=server.admin_auth,
                              json={"username": ALICE, "password": ALICE_PASSWORD}, timeout=30)
            assert made.status_code == 200, made.text
            admin_cli = Mlgate(workdir / "admin-config.json")
            signed_in = admin_cli("login", "--server", server.url, "--username", server.admin_username,
                                  "--password-stdin", input=server.admin_password + "\n")
            assert signed_in.returncode == 0, signed_in.stdout + signed_in.stderr
            yield Exporting(server, received, jsonl, checkpoints, public, uri, admin_cli)
        finally:
            server.stop()


def _session_cookie(server: LiveServer) -> tuple[httpx.Client, str]:
    browser = httpx.Client(base_url=server.url, follow_redirects=False, timeout=30)
    form = browser.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    done = browser.post("/login", data={"username": ALICE, "password": ALICE_PASSWORD, "csrf_token": csrf,
                                        "next": "/"}, headers={"Origin": server.url})
    assert done.status_code == 303, done.text
    cookies = [c.value for c in browser.cookies.jar]
    assert cookies
    browser.headers["Origin"] = server.url
    return browser, cookies


def test_records_reach_a_real_otlp_receiver_and_the_file_without_any_secret(exporting):
    server = exporting.server
    secrets_used = [ALICE_PASSWORD, WRONG_PASSWORD, server.admin_password, "k" * 40]
    # A failed and a good password sign-in, a token created and used, a session cookie, a denial.
    assert httpx.get(f"{server.url}{A}/experiments/search", auth=(ALICE, WRONG_PASSWORD),
                     params={"max_results": 1}, timeout=30).status_code == 401
    token = httpx.post(f"{server.url}{A}/users/tokens/create", auth=(ALICE, ALICE_PASSWORD),
                       json={"name": "ci", "expires_in_days": 1}, timeout=30).json()["token"]
    secrets_used.append(token)
    assert httpx.get(f"{server.url}{A}/experiments/get", headers={"Authorization": f"Bearer {token}"},
                     params={"experiment_id": "424242"}, timeout=30).status_code in (403, 404)
    browser, cookies = _session_cookie(server)
    secrets_used += cookies
    try:
        assert browser.get(f"{A}/experiments/get", params={"experiment_id": "434343"}).status_code in (403, 404)
    finally:
        browser.close()
    last_id = httpx.get(f"{server.url}{M}/audit/list", auth=server.admin_auth, params={"limit": 1},
                        timeout=30).json()["records"][-1]["id"]

    def otlp_has(record_id: int) -> bool:
        return any(d["event"].get("sequence") == record_id for d in exporting.received.documents())

    assert _wait(lambda: otlp_has(last_id)), "the newest audit record never reached the OTLP receiver"
    assert exporting.received.errors == []
    documents = exporting.received.documents()
    actions = {(d["event"]["action"], d["event"]["outcome"], d.get("user", {}).get("name")) for d in documents}
    assert ("login", "failure", ALICE) in actions
    assert ("token.create", "success", ALICE) in actions
    assert ("token.use", "success", ALICE) in actions
    assert ("login", "success", ALICE) in actions
    assert ("authorize", "failure", ALICE) in actions
    assert all(d["source"]["ip"] == "127.0.0.1" for d in documents if "source" in d)
    # The file sink has the same records.
    assert _wait(lambda: exporting.jsonl.exists() and any(
        json.loads(line)["event"].get("sequence") == last_id for line in exporting.jsonl.read_text().splitlines()))
    # No secret anywhere: not in the protobuf bytes, not in the file, not in the server's log.
    raw = b"".join(exporting.received.bodies)
    exported_text = exporting.jsonl.read_text()
    for secret in secrets_used:
        assert secret.encode() not in raw, "a secret reached the OTLP receiver"
        assert secret not in exported_text, "a secret reached the exported file"
        assert secret not in server.log(), "a secret reached the server log"
    # The collector's header went to the collector only.
    assert all(h.get("X-Collector-Key") == "k" * 40 for h in exporting.received.headers)


def test_signed_checkpoints_catch_a_log_cut_back_by_direct_sql(exporting, tmp_path):
    server = exporting.server
    for i in range(6):
        httpx.get(f"{server.url}{A}/experiments/get", auth=(ALICE, ALICE_PASSWORD),
                  params={"experiment_id": str(500_000 + i)}, timeout=30)
    signed = exporting.admin_cli.json("audit", "checkpoint")["checkpoint"]
    assert signed["kind"] == "manual"
    offline = Mlgate(tmp_path / "offline.json")
    verify = ("audit", "verify", "--db", exporting.uri, "--public-key", str(exporting.public_key))
    ok = offline(*verify)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "signed checkpoint(s) match" in ok.stdout
    # The checkpoint left the host's database: the file and the OTLP receiver have it.
    assert _wait(lambda: any(json.loads(line)["signature"] == signed["signature"]
                             for line in exporting.checkpoints.read_text().splitlines()))
    assert _wait(lambda: any(d.get("mlgate", {}).get("checkpoint", {}).get("signature") == signed["signature"]
                             for d in exporting.received.documents()))
    # Give the server's chain a moment to settle, then stop writing: the database is the attacker's now.
    engine = sa.create_engine(exporting.uri)
    try:
        with engine.begin() as conn:
            cut = conn.execute(sa.text("SELECT id FROM auth_audit_log WHERE id <= :s ORDER BY id DESC LIMIT 1 "
                                       "OFFSET 3"), {"s": signed["seq"]}).scalar()
            conn.execute(sa.text("DELETE FROM auth_audit_log WHERE id > :c"), {"c": cut})
            conn.execute(sa.text("DELETE FROM auth_audit_checkpoints"))
            last = conn.execute(sa.text("SELECT hash FROM auth_audit_log WHERE id = :c"), {"c": cut}).scalar()
            position = conn.execute(sa.text("SELECT count(*) FROM auth_audit_log WHERE hash IS NOT NULL")).scalar()
            conn.execute(sa.text("UPDATE auth_audit_chain SET last_id = :c, last_hash = :h, count = :n"),
                         {"c": cut, "h": last, "n": position})
        # The database alone no longer knows (checkpoint rows deleted, head rewritten)...
        alone = offline(*verify)
        assert alone.returncode == 0, alone.stdout + alone.stderr
        # ...the checkpoints shipped off-host do: the file, and the SIEM's copy.
        from_file = offline(*verify, "--checkpoints", str(exporting.checkpoints))
        assert from_file.returncode == 1
        assert "records were deleted from the end" in from_file.stderr
        siem_copy = tmp_path / "siem.jsonl"
        siem_copy.write_text(exporting.jsonl.read_text())
        from_siem = offline(*verify, "--checkpoints", str(siem_copy))
        assert from_siem.returncode == 1
        assert "records were deleted from the end" in from_siem.stderr
    finally:
        engine.dispose()
