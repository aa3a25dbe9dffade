"""The audit section through create_app: every problem listed at startup, and a configured app that signs
checkpoints, answers the admin audit operations and exports what it audits (as an ordinary user is refused)."""

from __future__ import annotations

import json

import pytest
import yaml
from starlette.testclient import TestClient

from gateway.settings import SettingsError
from tests.audit_keys import write_key_pair, write_signing_policy
from tests.conftest import TEST_ADMIN_TOKEN

A = "/api/2.0/mlflow"
M = "/api/2.0/mlgate"
PASSWORD = "Unguessable-Pw-9c1e77aa31"


def test_every_audit_problem_is_listed_at_startup(app_factory, tmp_path):
    private, _ = write_key_pair(tmp_path)
    private.chmod(0o640)
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump({"version": 1, "audit": {
        "checkpoints": {"signing_key_file": str(private), "file": str(tmp_path / "missing" / "cp.jsonl")},
        "export": [{"type": "jsonl", "path": str(tmp_path / "nowhere" / "audit.jsonl")}]}}))
    with pytest.raises(SettingsError) as refused:
        app_factory(policy_file=str(policy), port=0)
    problems = refused.value.problems
    assert "--port / MLGATE_PORT: 0 is not a TCP port (1-65535)" in problems
    prefix = f"--policy {policy}: "
    assert f"{prefix}audit.checkpoints.signing_key_file: {private}: the signing key is readable by other users " \
           "(mode 640); chmod 600 it" in problems
    assert f"{prefix}audit.checkpoints.file: cannot create {tmp_path / 'missing' / 'cp.jsonl'}: its directory does " \
           "not exist or is not writable" in problems
    assert f"{prefix}audit.export[0].path: cannot create {tmp_path / 'nowhere' / 'audit.jsonl'}: its directory " \
           "does not exist or is not writable" in problems
    assert "PRIVATE KEY" not in str(refused.value)


def test_a_key_that_is_not_ed25519_is_refused(app_factory, tmp_path):
    key = tmp_path / "not-a-key.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    key.chmod(0o600)
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump({"version": 1, "audit": {"checkpoints": {"signing_key_file": str(key)}}}))
    with pytest.raises(SettingsError) as refused:
        app_factory(policy_file=str(policy))
    assert refused.value.problems == [f"--policy {policy}: audit.checkpoints.signing_key_file: {key}: it is not a "
                                      "PEM private key"]


def test_a_configured_app_signs_exports_and_keeps_the_operations_for_administrators(app_factory, tmp_path):
    exported = tmp_path / "audit.jsonl"
    # A retention, without which the API prunes nothing (test_an_administrator_request_never_prunes_...).
    policy = write_signing_policy(tmp_path, checkpoints={"file": str(tmp_path / "cp.jsonl")},
                                  export=[{"type": "jsonl", "path": str(exported)}], retention_days=1)
    app = app_factory(policy_file=str(policy))
    with TestClient(app, base_url="http://127.0.0.1:5000") as admin:
        admin.headers["Authorization"] = f"Bearer {TEST_ADMIN_TOKEN}"
        assert admin.post(f"{A}/users/create", json={"username": "alice", "password": PASSWORD}).status_code == 200
        alice = TestClient(app, base_url="http://127.0.0.1:5000")
        alice.auth = ("alice", PASSWORD)
        assert alice.get(f"{A}/experiments/get", params={"experiment_id": "404"}).status_code in (403, 404)
        # An ordinary user may not sign, list or prune; each refusal is itself audited.
        for method, path in (("POST", "/audit/checkpoint"), ("GET", "/audit/checkpoints"), ("POST", "/audit/prune")):
            assert alice.request(method, f"{M}{path}", json={}).status_code == 403, path
        signed = admin.post(f"{M}/audit/checkpoint", json={}).json()["checkpoint"]
        assert signed["kind"] == "manual"
        listed = admin.get(f"{M}/audit/checkpoints").json()["checkpoints"]
        assert [c["signature"] for c in listed] == [signed["signature"]]
        verification = admin.get(f"{M}/audit/verify").json()["verification"]
        assert verification["ok"] is True
        assert verification["signatures_checked"] is True
        assert verification["last_checkpoint_id"] == signed["seq"]
        assert admin.post(f"{M}/audit/prune", json={"older_than_days": 1}).json() == {"pruned": 0}
    # Leaving the app stopped the exporter after delivering its queue.
    lines = [json.loads(line) for line in exported.read_text().splitlines()]
    actions = [line["event"]["action"] for line in lines]
    assert "login" in actions or "authorize" in actions
    denied = [line for line in lines if line.get("user", {}).get("name") == "alice"
              and line["event"]["type"] == ["denied"]]
    assert {line["mlgate"]["audit"]["target"] for line in denied} >= {
        "admin.audit.checkpoint", "admin.audit.checkpoints", "admin.audit.prune"}
    assert all("[rule: admin-only]" in line["event"]["reason"] for line in denied
               if line["mlgate"]["audit"]["target"].startswith("admin.audit."))
    assert any(line["event"]["action"] == "audit.checkpoint" and line["mlgate"]["checkpoint"]["signature"]
               == signed["signature"] for line in lines)
    assert json.loads((tmp_path / "cp.jsonl").read_text().splitlines()[0])["signature"] == signed["signature"]


def _old_record(app, days: int) -> None:
    from auth.store import now_ms

    app.state.identity.store.append_audit({
        "at": now_ms() - days * 86_400_000, "actor": "mallory", "action": "grant", "target": "experiment:1",
        "client_address": "198.51.100.7", "outcome": "success", "reason": "what an attacker would erase",
        "workspace": None})


@pytest.mark.parametrize("retention", [365, None])
def test_an_administrator_request_never_prunes_more_than_the_policy_files_retention(app_factory, tmp_path,
                                                                                    retention):
    # A stolen administrator credential must not erase the log's history with one request: over the API the
    # policy file's audit.retention_days is the shortest retention (none configured: keep everything).
    audit = {} if retention is None else {"retention_days": retention}
    app = app_factory(policy_file=str(write_signing_policy(tmp_path, **audit)))
    with TestClient(app, base_url="http://127.0.0.1:5000") as admin:
        admin.headers["Authorization"] = f"Bearer {TEST_ADMIN_TOKEN}"
        _old_record(app, days=30)
        refused = admin.post(f"{M}/audit/prune", json={"older_than_days": 1})
        assert refused.status_code == 400, refused.text
        assert refused.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert "retention_days" in refused.json()["message"]
        kept = admin.get(f"{M}/audit/list", params={"action": "grant", "limit": 50}).json()
        assert any(r.get("actor") == "mallory" for r in kept["records"]), kept
        if retention is not None:
            # At (or beyond) the configured retention it prunes as before; the 30-day-old record stays.
            assert admin.post(f"{M}/audit/prune", json={"older_than_days": retention}).json() == {"pruned": 0}


def test_an_export_file_others_can_read_or_a_symbolic_link_is_refused_at_startup(app_factory, tmp_path):
    # The JSON-lines sink creates its file 0600, but an existing file keeps its mode: records (user names,
    # addresses, reasons) would be readable by every local user. A symbolic link planted at the path would send
    # them wherever it points (the server appends to any file it may write).
    readable = tmp_path / "readable.jsonl"
    readable.write_text("")
    readable.chmod(0o644)
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("")
    elsewhere.chmod(0o600)
    link = tmp_path / "link.jsonl"
    link.symlink_to(elsewhere)
    checkpoint_link = tmp_path / "cp.jsonl"
    checkpoint_link.symlink_to(elsewhere)
    policy = write_signing_policy(tmp_path, checkpoints={"file": str(checkpoint_link)},
                                  export=[{"type": "jsonl", "path": str(readable)},
                                          {"type": "jsonl", "path": str(link)}])
    with pytest.raises(SettingsError) as refused:
        app_factory(policy_file=str(policy))
    prefix = f"--policy {policy}: "
    assert f"{prefix}audit.export[0].path: {readable} is readable by every user (mode 644); chmod 600 it " \
           "(audit records name users and addresses)" in refused.value.problems
    assert f"{prefix}audit.export[1].path: {link} is a symbolic link; name the file itself" in refused.value.problems
    assert f"{prefix}audit.checkpoints.file: {checkpoint_link} is a symbolic link; name the file itself" \
        in refused.value.problems
    # Group-readable (a log group) stays the operator's choice.
    readable.chmod(0o640)
    link.unlink()
    policy = write_signing_policy(tmp_path, export=[{"type": "jsonl", "path": str(readable)}])
    app_factory(policy_file=str(policy))
