"""Structured logs of a real server: one JSON object per line, request ids, and never a secret."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import httpx

from tests.conftest import TEST_ADMIN_PASSWORD, TEST_SECRET_KEY, start_server
from tests.security.test_web import login

A = "/api/2.0/mlflow"
PASSWORD = "Log-Check-Pw-" + secrets.token_urlsafe(12)
NEW_PASSWORD = "Log-Changed-Pw-" + secrets.token_urlsafe(12)
METRICS_TOKEN = secrets.token_urlsafe(32)


def _access_lines(log: str) -> list[dict]:
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    return [entry for entry in lines if entry["logger"] == "mlgate.access"]


def test_json_logs_carry_request_ids_and_no_credentials(tmp_path: Path):
    server = start_server(tmp_path / "s", f"sqlite:///{tmp_path / 'db.sqlite'}", "--log-format", "json",
                          env={"MLGATE_METRICS_TOKEN": METRICS_TOKEN})
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            made = http.post(f"{A}/users/create", json={"username": "alice", "password": PASSWORD},
                             auth=server.admin_auth)
            assert made.status_code == 200, made.text
            token = http.post(f"{A}/users/tokens/create", json={"name": "logs", "expires_in_days": 1},
                              auth=("alice", PASSWORD)).json()["token"]
            traced = http.post(f"{A}/experiments/search", json={"max_results": 1},
                               headers={"Authorization": f"Bearer {token}", "X-Request-ID": "trace-0042"})
            assert traced.status_code == 200
            assert traced.headers["x-request-id"] == "trace-0042"
            assert http.get(f"{A}/experiments/search?access_token={token}").status_code == 400
            assert http.get(f"{A}/users/current", auth=("alice", "wrong-" + PASSWORD)).status_code == 401
            assert http.get(f"{A}/users/current", headers={"Authorization": f"Bearer {token}x"}).status_code == 401
            assert http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).status_code == 200
            session, csrf = login(server, "alice", PASSWORD)
            cookie = {"Cookie": f"mlgate_session={session}", "X-CSRF-Token": csrf}
            assert http.get(f"{A}/users/current", headers=cookie).status_code == 200
            changed = http.patch(f"{A}/users/update-password", headers=cookie,
                                 json={"username": "alice", "password": NEW_PASSWORD, "current_password": PASSWORD})
            assert changed.status_code == 200, changed.text
    finally:
        server.stop()
    log = server.log()
    secrets_sent = {"alice's password": PASSWORD, "the new password": NEW_PASSWORD, "the token": token,
                    "the token's secret part": token[4:], "the session cookie": session, "the CSRF token": csrf,
                    "the scrape token": METRICS_TOKEN, "the admin password": TEST_ADMIN_PASSWORD,
                    "the session secret": TEST_SECRET_KEY}
    leaked = [what for what, value in secrets_sent.items() if value in log]
    assert not leaked, f"the log contains {leaked}"
    assert "authorization" not in log.lower()
    assert "access_token" not in log  # the query string is never logged

    # Every line mlgate or uvicorn logged is one JSON object (the admin bootstrap line is a print).
    for line in log.splitlines():
        if line.strip() and not line.startswith("mlgate: "):
            json.loads(line)
    access = _access_lines(log)
    traced_line = next(e for e in access if e.get("request_id") == "trace-0042")
    assert traced_line["principal"] == "user:alice"
    assert traced_line["operation"] == "experiments.search"
    assert traced_line["method"] == "POST"
    assert traced_line["path"] == f"{A}/experiments/search"
    assert traced_line["status"] == 200
    assert isinstance(traced_line["latency_ms"], float | int)
    assert traced_line["latency_ms"] >= 0
    assert traced_line["client"] == "127.0.0.1"
    refused = [e for e in access if e["status"] == 401 and e["path"] == f"{A}/users/current"]
    assert len(refused) == 2
    assert all(e["principal"] is None for e in refused)
    # Records logged while a request runs (its audit line) carry that request's id.
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    audit = [{**json.loads(e["message"]), "request_id": e.get("request_id")} for e in lines
             if e["logger"] == "mlgate.audit"]
    failures = [a for a in audit if a["action"] == "login" and a["outcome"] == "failure"]
    assert len(failures) == 1
    assert failures[0]["request_id"] in {e["request_id"] for e in refused}
