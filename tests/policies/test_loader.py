"""The policy file loader: safe YAML, ${ENV_VAR} substitution, every problem listed with its path."""

from __future__ import annotations

import textwrap

import pytest
from pydantic import BaseModel, ConfigDict, SecretStr

from policies.file import PolicyFile, PolicyFileError, load_policy_file, load_policy_text, policy_from_data
from policies.file.fields import Secret
from policies.file.loader import MAX_FILE_BYTES
from policies.file.secrets import literal_secret_problems


def problems_of(data, environ=None) -> list[str]:
    with pytest.raises(PolicyFileError) as caught:
        policy_from_data(data, environ or {})
    return caught.value.problems


def grant(principal="user:alice", resource="experiment:1", permission="READ"):
    return {"principal": principal, "resource": resource, "permission": permission}


INVALID = [
    ({"access": {"grants": [grant(), grant(), grant(), grant(permission="WRITE")]}},
     "access.grants[3].permission: 'WRITE' is not one of NO_PERMISSIONS, READ, EDIT, MANAGE"),
    ({"access": {"grants": [grant(permission=3)]}},
     "access.grants[0].permission: 3 is not one of NO_PERMISSIONS, READ, EDIT, MANAGE"),
    ({"access": {"grants": [grant(principal="alice")]}},
     "access.grants[0].principal: 'alice' is not 'user:<name>', 'group:<name>' or 'service:<name>'"),
    ({"access": {"grants": [grant(principal="user:")]}},
     "access.grants[0].principal: 'user:' has an empty or invalid name (no spaces, ':' or control characters)"),
    ({"access": {"grants": [grant(resource="run:1")]}},
     "access.grants[0].resource: 'run:1' is not 'experiment:<id>', 'experiment-name:<glob>', 'model:<name>' or "
     "'model-name:<glob>'"),
    ({"access": {"grants": [grant(resource="experiment:abc")]}},
     "access.grants[0].resource: 'experiment:abc': an experiment id is a decimal number"),
    ({"access": {"grants": [grant(resource="experiment-name:team[ab]")]}},
     "access.grants[0].resource: 'team[ab]': '[' and ']' are not supported in name patterns (only '*' and '?')"),
    ({"access": {"grants": [grant(resource="model-name:x*", permission="NO_PERMISSIONS")]}},
     "access.grants[0]: NO_PERMISSIONS cannot be granted on a name pattern; use access.denies to exclude resources"),
    ({"access": {"grants": [{"principal": "user:a", "resource": "model:m"}]}},
     "access.grants[0].permission: is required"),
    ({"access": {"grants": [{**grant(), "expires": 1}]}}, "access.grants[0].expires: is not a known key"),
    ({"access": {"grants": {"principal": "user:a"}}}, "access.grants: must be a list"),
    ({"access": {"denies": [grant(permission="NO_PERMISSIONS")]}},
     "access.denies[0].permission: 'NO_PERMISSIONS' is not one of READ, EDIT, MANAGE"),
    ({"access": {"default_permission": "ALL"}},
     "access.default_permission: 'ALL' is not one of NO_PERMISSIONS, READ, EDIT, MANAGE"),
    ({"access": {"mode": "strict"}}, "access.mode: 'strict' is not one of authoritative, additive"),
    ({"access": {"admins": ["two words"]}},
     "access.admins[0]: 'two words' is not a valid name (1-256 characters, no spaces, ':' or control characters)"),
    ({"access": {"groups": {"team-a": ["group:team-b"]}}},
     "access.groups.team-a[0]: 'group:team-b': groups cannot be members of groups"),
    ({"access": {"groups": {"team-a": "bob"}}}, "access.groups.team-a: must be a list"),
    ({"access": {"create": {"experiments": [{"principal": "everyone"}]}}},
     "access.create.experiments[0].principal: 'everyone' is not 'user:<name>', 'group:<name>' or 'service:<name>'"),
    ({"access": {"create": {"models": [{"principal": "*", "name": ""}]}}},
     "access.create.models[0].name: a name pattern must not be empty"),
    ({"access": {"grantz": []}}, "access.grantz: is not a known key"),
    ({"version": 2}, "version: 2 is not supported (this mlgate reads version 1)"),
    ({"version": True}, "version: True is not supported (this mlgate reads version 1)"),
    ({"acess": {}}, "acess: is not a known key"),
    ({"network": {"anything": 1}}, "network.anything: is not a known key"),
    ({"access": []}, "access: must be a mapping"),
    ({"access": {"grants": [grant(), grant(permission="EDIT")]}},
     "access.grants[1]: repeats principal user:alice and resource experiment:1 of access.grants[0]"),
    ({"access": {"groups": {"g": ["bob", "user:bob"]}}}, "access.groups.g[1]: user:bob is listed twice"),
    ({"access": {"grants": [grant(permission="${PERM}")]}}, "access.grants[0].permission: environment variable "
                                                          "PERM is not set"),
]


@pytest.mark.parametrize(("data", "expected"), INVALID, ids=[e for _, e in INVALID])
def test_each_invalid_entry_is_reported_with_its_path(data, expected):
    assert expected in problems_of(data)


def test_every_problem_is_listed_at_once():
    data = {"version": 3, "access": {"mode": "x", "grants": [grant(permission="WRITE"), grant(principal="bob")],
                                     "denies": [grant(resource="job:1")]}}
    assert problems_of(data) == [
        "version: 3 is not supported (this mlgate reads version 1)",
        "access.mode: 'x' is not one of authoritative, additive",
        "access.grants[0].permission: 'WRITE' is not one of NO_PERMISSIONS, READ, EDIT, MANAGE",
        "access.grants[1].principal: 'bob' is not 'user:<name>', 'group:<name>' or 'service:<name>'",
        "access.denies[0].resource: 'job:1' is not 'experiment:<id>', 'experiment-name:<glob>', 'model:<name>' or "
        "'model-name:<glob>'",
    ]


def test_empty_file_gives_secure_defaults(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("")
    policy = load_policy_file(path)
    assert policy == PolicyFile()
    assert policy.access.default_permission == "NO_PERMISSIONS"
    assert policy.access.mode == "authoritative"
    assert policy.access.create.experiments is None


def test_a_full_file_loads_and_normalises_principals(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(textwrap.dedent("""\
        version: 1
        access:
          mode: additive
          default_permission: READ
          admins: [root, "service:deployer"]
          groups:
            team-a: [alice, "service:ci-bot"]
          grants:
            - {principal: "group:team-a", resource: "experiment-name:team-a/*", permission: EDIT}
            - {principal: "user:bob", resource: "model:churn", permission: MANAGE}
          denies:
            - {principal: "user:eve", resource: "experiment-name:prod/*"}
          create:
            experiments: [{principal: "group:team-a", name: "team-a/*"}]
            models: []
    """))
    access = load_policy_file(path).access
    assert access.admins == ["user:root", "service:deployer"]
    assert access.groups == {"team-a": ["user:alice", "service:ci-bot"]}
    assert access.denies[0].permission == "READ"
    assert access.create.models == []
    assert [g.rule for g in access.file_grants()] == ["access.grants[0]", "access.grants[1]", "access.denies[0]"]


@pytest.mark.parametrize(("text", "expected"), [
    ("access:\n  mode: additive\n  mode: authoritative\n", "line 3: duplicate key 'mode'"),
    ("a: &x [1]\nb: *x\n", "anchors and aliases are not supported in policy files"),
    ("access: [\n", "not valid YAML"),
    ("- 1\n- 2\n", "(top level): must be a mapping"),
    ("access: !!python/object:os.system {}\n", "not valid YAML"),
])
def test_unsafe_or_ambiguous_yaml_is_refused(text, expected):
    with pytest.raises(PolicyFileError) as caught:
        load_policy_text(text, {})
    assert any(expected in p for p in caught.value.problems), caught.value.problems


def test_duplicate_keys_are_reported_alongside_validation_problems():
    with pytest.raises(PolicyFileError) as caught:
        load_policy_text("access:\n  mode: x\n  mode: y\n", {})
    assert caught.value.problems == ["line 3: duplicate key 'mode'",
                                     "access.mode: 'y' is not one of authoritative, additive"]


def test_environment_references_are_substituted():
    policy = policy_from_data({"access": {"default_permission": "${DEFAULT}", "admins": ["${ADMIN}"],
                                          "grants": [grant(resource="model:cost$$model")]}},
                              {"DEFAULT": "READ", "ADMIN": "carol"})
    assert policy.access.default_permission == "READ"
    assert policy.access.admins == ["user:carol"]
    assert policy.access.grants[0].resource == "model:cost$model"


@pytest.mark.parametrize(("value", "expected"), [
    ("${MISSING}", "access.admins[0]: environment variable MISSING is not set"),
    ("${9LIVES}", "access.admins[0]: '9LIVES' is not a valid environment variable name"),
    ("${OPEN", "access.admins[0]: unterminated '${' (write '$$' for a literal '$')"),
])
def test_bad_environment_references_are_problems(value, expected):
    assert expected in problems_of({"access": {"admins": [value]}})


def test_missing_file_and_oversized_file_are_problems(tmp_path):
    with pytest.raises(PolicyFileError) as caught:
        load_policy_file(tmp_path / "absent.yaml")
    assert caught.value.problems[0].startswith("cannot read the file:")
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    with pytest.raises(PolicyFileError) as caught:
        load_policy_file(big)
    assert caught.value.problems == [f"the file is larger than {MAX_FILE_BYTES} bytes"]
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(PolicyFileError) as caught:
        load_policy_file(binary)
    assert caught.value.problems == ["the file is not UTF-8 text"]


class _Client(BaseModel):
    model_config = ConfigDict(extra="forbid")
    client_secret: Secret
    fallback: Secret | None = None


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")
    session_secret: Secret | None = None
    clients: list[_Client] = []
    named: dict[str, _Client] = {}


def test_literal_secrets_are_refused_and_references_accepted():
    raw = {"session_secret": "hunter2-hunter2",
           "clients": [{"client_secret": "${CLIENT_SECRET}"}, {"client_secret": "plain", "fallback": "x${Y}"}],
           "named": {"okta": {"client_secret": 12}}}
    message = "a secret must be given as a ${ENV_VAR} reference, not written in the file"
    assert literal_secret_problems(_Section, raw) == [
        f"session_secret: {message}",
        f"clients[1].client_secret: {message}",
        f"clients[1].fallback: {message}",
        f"named.okta.client_secret: {message}",
    ]
    assert literal_secret_problems(_Section, {"session_secret": "${S}", "clients": []}) == []


def test_secret_values_never_appear_in_problems():
    raw = {"session_secret": "s3cr3t-value"}
    problems = literal_secret_problems(_Section, raw)
    assert problems
    assert not any("s3cr3t" in p for p in problems)
    assert isinstance(_Section.model_validate({"session_secret": "x"}).session_secret, SecretStr)
