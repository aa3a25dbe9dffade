"""The policy file's ``audit:`` section: insecure or incoherent settings refused at load, each naming its key."""

from __future__ import annotations

import pytest
import yaml

from policies.file import PolicyFileError, load_policy_text

ENV = {"OTEL_TOKEN": "t" * 40, "AUDIT_KEY": "-----BEGIN PRIVATE KEY-----\n..."}


def _problems(audit: dict) -> list[str]:
    try:
        load_policy_text(yaml.safe_dump({"version": 1, "audit": audit}), ENV)
    except PolicyFileError as exc:
        return exc.problems
    return []


@pytest.mark.parametrize(("audit", "expected"), [
    ({"retention_days": 30},
     ["audit: retention_days needs checkpoints.signing_key_file (or signing_key): a pruned log starts at a signed "
      "checkpoint, or its beginning could be cut off unnoticed"]),
    ({"export": [{"type": "otlp", "endpoint": "http://collector.example:4318/v1/logs"}]},
     ["audit.export[0].otlp: endpoint: plain http to collector.example sends audit records (user names, addresses) "
      "unencrypted: use https, or set allow_plain_http: true for a collector on a trusted network"]),
    ({"export": [{"type": "otlp", "endpoint": "https://user:pw@collector.example/v1/logs"}]},
     ["audit.export[0].otlp.endpoint: must not carry credentials (they would be logged with the URL); put them in "
      "headers"]),
    ({"export": [{"type": "otlp", "endpoint": "https://collector.example/v1/logs?token=x"}]},
     ["audit.export[0].otlp.endpoint: must not carry a query or fragment (put credentials in headers)"]),
    ({"export": [{"type": "otlp", "endpoint": "https://collector.example/v1/logs",
                  "headers": {"Authorization": "Bearer literal"}}]},
     ["audit.export[0].headers.Authorization: a secret must be given as a ${ENV_VAR} reference, not written in the "
      "file"]),
    ({"export": [{"type": "jsonl", "path": "-"}, {"type": "jsonl", "path": "-"}]},
     ["audit: export: two sinks write the same place"]),
    ({"checkpoints": {"signing_key_file": "/k", "signing_key": "${AUDIT_KEY}"}},
     ["audit.checkpoints: give signing_key_file or signing_key, not both"]),
    ({"checkpoints": {"signing_key": "-----BEGIN PRIVATE KEY-----"}},
     ["audit.checkpoints.signing_key: a secret must be given as a ${ENV_VAR} reference, not written in the file"]),
    ({"export": [{"type": "otlp", "endpoint": "https://collector.example/v1/logs",
                  "headers": {"Bad Name": "${OTEL_TOKEN}", "Host": "${OTEL_TOKEN}"}}]},
     ["audit.export[0].otlp.headers: not header names mlgate may set: 'Bad Name', 'Host'"]),
    ({"export": [{"type": "syslog"}]},
     ["audit.export[0]: Input tag 'syslog' found using 'type' does not match any of the expected tags: 'jsonl', "
      "'otlp'"]),
])
def test_refused(audit, expected):
    assert _problems(audit) == expected


@pytest.mark.parametrize("audit", [
    {},
    {"export": [{"type": "otlp", "endpoint": "http://127.0.0.1:4318/v1/logs"}]},  # loopback: plain http is fine
    {"export": [{"type": "otlp", "endpoint": "http://localhost:4318/v1/logs"}]},
    {"export": [{"type": "otlp", "endpoint": "http://collector.internal:4318/v1/logs", "allow_plain_http": True}]},
    {"export": [{"type": "otlp", "endpoint": "https://collector.example/v1/logs",
                 "headers": {"Authorization": "${OTEL_TOKEN}"}}, {"type": "jsonl", "path": "-"}]},
    {"retention_days": 365, "checkpoints": {"signing_key_file": "/etc/mlgate/audit.key"}},
])
def test_accepted(audit):
    assert _problems(audit) == []
