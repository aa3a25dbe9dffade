"""Policy decisions as data: every case in tests/policies/cases/*.yaml, and the case runner itself."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from policies.file.schema import SCHEMA_PATH
from policies.testing import CaseFileError, load_case_file, load_cases, run_case, run_case_file

CASES_DIR = Path(__file__).with_name("cases")
CASE_FILES = sorted(CASES_DIR.glob("*.yaml"))


def _all_cases():
    for path in CASE_FILES:
        policy, cases, where = load_cases(path)
        for case, context in zip(cases, where, strict=True):
            yield pytest.param(policy, case, context, id=f"{path.stem}: {case.name}")


ALL = list(_all_cases())


def test_there_are_at_least_a_hundred_cases_with_unique_names():
    assert len(ALL) >= 100
    names = [p.id for p in ALL]
    assert len(names) == len(set(names))


@pytest.mark.parametrize(("policy", "case", "where"), ALL)
def test_case(policy, case, where):
    result = run_case(policy, case, where)
    assert result.passed, result.message


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "cases.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_a_wrong_expectation_fails_and_says_why(tmp_path):
    path = write(tmp_path, """\
        policy: {access: {grants: [{principal: "user:a", resource: "experiment:1", permission: READ}]}}
        cases:
          - {name: wrong effect, principal: user:a, action: EDIT, experiment: {id: "1", name: x}, expect: allow}
          - {name: wrong rule, principal: user:a, action: READ, experiment: {id: "1", name: x}, expect: allow,
             rule: default_permission}
          - {name: right, principal: user:a, action: READ, experiment: {id: "1", name: x}, expect: allow,
             rule: "access.grants[0]"}
    """)
    wrong_effect, wrong_rule, right = run_case_file(path)
    assert not wrong_effect.passed
    assert wrong_effect.message.startswith("expected allow, got deny (user a holds READ")
    assert not wrong_rule.passed
    assert wrong_rule.message.startswith("expected rule default_permission, got access.grants[0]")
    assert right.passed
    assert right.decision.rule == "access.grants[0]"


def test_a_case_file_may_point_at_a_policy_file(tmp_path):
    (tmp_path / "policy.yaml").write_text("access: {admins: [root]}\n")
    path = write(tmp_path, """\
        policy_file: policy.yaml
        cases:
          - {name: admin, principal: user:root, operation: users.create, expect: allow, rule: admin}
    """)
    (result,) = run_case_file(path)
    assert result.passed


def test_case_file_problems_are_listed(tmp_path):
    path = write(tmp_path, """\
        policy: {access: {mode: sometimes}}
        cases:
          - {name: a, principal: bob, operation: runs.get, expect: maybe}
          - {name: b, principal: user:b, expect: deny}
          - {name: c, principal: bob, operation: runs.get, expect: deny}
    """)
    with pytest.raises(CaseFileError) as caught:
        load_case_file(path)
    assert caught.value.problems == [
        "cases[0].expect: Input should be 'allow' or 'deny'",
        "cases[1]: give exactly one of operation and action",
        "cases[2]: principal 'bob' is not user:<name>, service:<name> or anonymous",
    ]


def test_an_invalid_policy_in_a_case_file_is_reported(tmp_path):
    path = write(tmp_path, """\
        policy: {access: {mode: sometimes}}
        cases: []
    """)
    with pytest.raises(CaseFileError) as caught:
        load_case_file(path)
    assert caught.value.problems == ["policy: access.mode: 'sometimes' is not one of authoritative, additive"]


def test_the_shipped_example_policy_loads_and_means_what_its_comments_say(tmp_path):
    example = SCHEMA_PATH.with_name("example-policy.yaml")
    path = write(tmp_path, f"""\
        policy_file: {example}
        cases:
          - {{name: team edits, principal: user:bob, action: EDIT, experiment: {{id: "1", name: team-a/x}},
             expect: allow, rule: "access.grants[0]"}}
          - {{name: alice manages, principal: user:alice, action: MANAGE, experiment: {{id: "1", name: team-a/x}},
             expect: allow, rule: "access.grants[1]"}}
          - {{name: auditors read, principal: user:dora, action: READ, model: other, expect: allow,
             rule: "access.grants[4]"}}
          - {{name: contractors are kept out of prod, principal: user:carl, groups: [team-a], action: READ,
             experiment: {{id: "2", name: team-a/prod}}, expect: deny, rule: "access.denies[0]"}}
          - {{name: strangers see nothing, principal: user:zed, action: READ, experiment: {{id: "1", name: team-a/x}},
             expect: deny, rule: default_permission}}
          - {{name: sandbox for all, principal: user:zed, action: CREATE, new_name: sandbox/z, expect: allow,
             rule: "access.create.experiments[1]"}}
    """)
    results = run_case_file(path, environ={})
    assert [r.message for r in results if not r.passed] == []
    assert len(results) == 6
