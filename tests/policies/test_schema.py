"""The published JSON Schema of the policy file is the one the pydantic model generates."""

from __future__ import annotations

import json

import pytest

from policies.file.schema import SCHEMA_PATH, main, policy_file_schema, schema_text

VALID = {
    "version": 1,
    "access": {
        "mode": "additive",
        "default_permission": "READ",
        "admins": ["root"],
        "groups": {"team-a": ["alice", "service:ci"]},
        "grants": [{"principal": "group:team-a", "resource": "experiment-name:team-a/*", "permission": "EDIT"}],
        "denies": [{"principal": "user:eve", "resource": "model:secret", "permission": "EDIT"}],
        "create": {"experiments": [{"principal": "*", "name": "sandbox/*"}]},
    },
}


def test_committed_schema_equals_the_generated_one():
    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_text(), (
        "policy-file.schema.json is stale: run `python -m policies.file.schema`")


def test_schema_names_the_sections_and_refuses_unknown_keys():
    schema = policy_file_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["properties"]) == {"version", "network", "auth", "access", "audit", "workspaces",
                                             "workspace_templates"}
    assert schema["additionalProperties"] is False
    access = schema["$defs"]["AccessConfig"]
    assert access["additionalProperties"] is False
    assert access["properties"]["default_permission"]["enum"] == ["NO_PERMISSIONS", "READ", "EDIT", "MANAGE"]
    assert schema["$defs"]["DenyEntry"]["properties"]["permission"]["enum"] == ["READ", "EDIT", "MANAGE"]


def test_main_writes_the_schema(tmp_path):
    target = tmp_path / "schema.json"
    assert main([str(target)]) == 0
    assert json.loads(target.read_text()) == policy_file_schema()


def test_schema_accepts_a_valid_file_and_rejects_a_wrong_permission():
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(policy_file_schema())
    assert list(validator.iter_errors(VALID)) == []
    bad = json.loads(json.dumps(VALID))
    bad["access"]["grants"][0]["permission"] = "WRITE"
    bad["access"]["extra"] = 1
    assert len(list(validator.iter_errors(bad))) == 2
