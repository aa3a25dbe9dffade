"""decide(), visible() and compile_policy(): the parts the case files cannot express."""

from __future__ import annotations

import dataclasses

import pytest

from policies.compiled import conflict_with_file
from policies.decide import api_grant_conflict, compile_policy, decide, decide_all, visible
from policies.file import policy_from_data
from policies.glob import check_pattern, glob_matches, specificity
from policies.model import (
    Decision,
    Grant,
    Permission,
    Resource,
    ResourceKind,
    ResourceSelector,
    ScopeSpec,
    Subject,
    SubjectRef,
)
from policies.routes import Access, Requirement, requirement_for

ALICE = Subject("user", "alice")


def policy(access: dict, api=()):
    return compile_policy(policy_from_data({"access": access}, {}), api)


def read(kind=ResourceKind.EXPERIMENT):
    return Requirement(Access.RESOURCE, Permission.READ, kind)


def test_permissions_are_ordered_and_parsed_by_exact_name():
    assert Permission.NO_PERMISSIONS < Permission.READ < Permission.EDIT < Permission.MANAGE
    assert Permission.parse("EDIT") is Permission.EDIT
    with pytest.raises(ValueError, match="'edit' is not one of NO_PERMISSIONS, READ, EDIT, MANAGE"):
        Permission.parse("edit")


def test_grant_invariants_are_enforced_for_api_grants_too():
    with pytest.raises(ValueError, match="NO_PERMISSIONS cannot be granted on a name pattern"):
        Grant.from_api(1, "user:a", "experiment-name:x*", "NO_PERMISSIONS")
    with pytest.raises(ValueError, match="a deny must name READ, EDIT or MANAGE"):
        Grant.from_api(2, "user:a", "experiment:1", "NO_PERMISSIONS", effect="deny")
    with pytest.raises(ValueError, match="is not 'user:<name>'"):
        Grant.from_api(3, "team:a", "experiment:1", "READ")
    grant = Grant.from_api(17, "group:g", "model:m", "EDIT")
    assert (grant.rule, grant.source, grant.subject, grant.resource) == (
        "api-grant:17", "api", SubjectRef("group", "g"), ResourceSelector(ResourceKind.REGISTERED_MODEL, name="m"))
    # Stored grants name one model by its stable id (issue #18): model:<name> is the exact name, model-id:<id> the id.
    stored = Grant.from_api(18, "group:g", "model-id:0123abcd", "EDIT")
    assert stored.resource == ResourceSelector(ResourceKind.REGISTERED_MODEL, id="0123abcd")
    assert stored.resource.text == "model-id:0123abcd"


def test_globs_match_like_sql_like_and_rank_by_literal_prefix():
    assert glob_matches("team-a/*", "team-a/x/y")
    assert glob_matches("a?c", "abc")
    assert not glob_matches("a?c", "abbc")
    assert glob_matches("a.c", "a.c")
    assert not glob_matches("a.c", "abc")  # regex metacharacters are literal
    assert not glob_matches("a*", "A")
    assert glob_matches("x*", "x\nz")
    assert specificity("team-a/prod/*") > specificity("team-a/*")
    assert specificity("team-a/*-prod") > specificity("team-a/*")
    assert specificity("exact") == (5, 5)
    with pytest.raises(ValueError, match="not supported"):
        check_pattern("a[bc]")


def test_compiled_policy_is_frozen():
    compiled = policy({"grants": [{"principal": "user:alice", "resource": "experiment:1", "permission": "READ"}]})
    with pytest.raises(dataclasses.FrozenInstanceError):
        compiled.default_permission = Permission.MANAGE  # type: ignore[misc]
    with pytest.raises(TypeError):
        compiled.allows[("user:bob", ResourceKind.EXPERIMENT)] = None  # type: ignore[index]


def test_authoritative_mode_refuses_conflicting_api_grants_and_says_why():
    file_access = {"grants": [{"principal": "user:alice", "resource": "experiment:1", "permission": "READ"}]}
    conflicting = Grant.from_api(5, "user:alice", "experiment:1", "MANAGE")
    unrelated = Grant.from_api(6, "user:alice", "experiment:2", "MANAGE")
    compiled = policy(file_access, [conflicting, unrelated])
    assert compiled.refused_api_grants == ((conflicting, "access.grants[0] already decides user:alice on "
                                                         "experiment:1 and the policy file is authoritative"),)
    document = policy_from_data({"access": file_access}, {})
    assert conflict_with_file(document.access.file_grants(), unrelated) is None
    assert api_grant_conflict(document, conflicting) == compiled.refused_api_grants[0][1]
    assert api_grant_conflict(document, unrelated) is None
    assert api_grant_conflict(document.access.model_copy(update={"mode": "additive"}), conflicting) is None
    additive = policy({**file_access, "mode": "additive"}, [conflicting])
    assert additive.refused_api_grants == ()
    assert decide(additive, ALICE, requirement_for("experiments.delete"), Resource.experiment(1, "e")).allowed


def test_a_resource_without_a_name_is_not_decided():
    compiled = policy({"default_permission": "MANAGE"})
    decision = decide(compiled, ALICE, read(), Resource.experiment(1))
    assert decision == Decision(False, "the resource could not be resolved (id and name are both needed)",
                                "unresolved")
    assert not decide(compiled, ALICE, read(), Resource.registered_model("id-m", "m")).allowed  # wrong kind
    assert not decide(compiled, ALICE, read(), None).allowed
    assert decide(compiled, ALICE, read(), Resource.experiment(1, "e")).allowed


def test_reasons_name_the_subject_the_resource_the_levels_and_the_rule():
    compiled = policy({"grants": [{"principal": "group:g", "resource": "experiment-name:t/*", "permission": "READ"}]})
    bob = Subject("user", "bob", frozenset({"g"}))
    decision = decide(compiled, bob, requirement_for("runs.update"), Resource.experiment(4, "t/x"))
    assert decision == Decision(
        False,
        "user bob holds READ on experiment 4 ('t/x') through access.grants[0] (group:g on experiment-name:t/*); "
        "EDIT is required",
        "access.grants[0]",
    )


def test_decide_all_returns_the_first_denial_else_the_primary_allow():
    compiled = policy({"grants": [{"principal": "user:alice", "resource": "model:m", "permission": "EDIT"},
                                  {"principal": "user:alice", "resource": "experiment:1", "permission": "READ"}]})
    requirement = requirement_for("model_versions.create")
    run_check, _logged_model_check, source_check = requirement.also
    ok = decide_all(compiled, ALICE, [(requirement, Resource.registered_model("id-m", "m")),
                                      (run_check, Resource.experiment(1, "e"))])
    assert (ok.allowed, ok.rule) == (True, "access.grants[0]")
    denied = decide_all(compiled, ALICE, [(requirement, Resource.registered_model("id-m", "m")),
                                          (run_check, Resource.experiment(1, "e")),
                                          (source_check, Resource.experiment(2, "other"))])
    assert (denied.allowed, denied.rule) == (False, "default_permission")
    assert decide_all(compiled, ALICE, []).rule == "route-table"


def test_source_uri_checks_accept_either_kind_of_resource():
    compiled = policy({"grants": [{"principal": "user:alice", "resource": "model:src", "permission": "READ"}]})
    source_check = requirement_for("model_versions.create").also[2]
    assert source_check.resource_kind is None
    assert decide(compiled, ALICE, source_check, Resource.registered_model("id-src", "src")).allowed
    assert not decide(compiled, ALICE, source_check, Resource.experiment(3, "src")).allowed


def test_visible_lists_ids_globs_and_denials():
    compiled = policy({
        "groups": {"g": ["alice"]},
        "grants": [
            {"principal": "user:alice", "resource": "experiment:1", "permission": "READ"},
            {"principal": "group:g", "resource": "experiment:2", "permission": "NO_PERMISSIONS"},
            {"principal": "user:alice", "resource": "experiment:2", "permission": "EDIT"},
            {"principal": "user:alice", "resource": "experiment:3", "permission": "NO_PERMISSIONS"},
            {"principal": "group:g", "resource": "experiment-name:team/*", "permission": "READ"},
            {"principal": "user:bob", "resource": "experiment:9", "permission": "MANAGE"},
            {"principal": "user:alice", "resource": "model:m", "permission": "READ"},
        ],
        "denies": [
            {"principal": "group:g", "resource": "experiment-name:team/secret*"},
            {"principal": "user:alice", "resource": "experiment:4", "permission": "EDIT"},
            {"principal": "user:alice", "resource": "experiment:5"},
        ],
    })
    scope = visible(compiled, ALICE, ResourceKind.EXPERIMENT)
    assert (scope.unrestricted, scope.ids, scope.globs, scope.denied_ids, scope.denied_globs) == (
        False, frozenset({"1", "2"}), ("team/*",), frozenset({"3", "5"}), ("team/secret*",))
    assert scope.allows("2", "x")
    assert not scope.allows("9", "x")
    assert scope.allows("7", "team/a")
    assert not scope.allows("1", "team/secret-1")
    models = visible(compiled, ALICE, ResourceKind.REGISTERED_MODEL)
    # The file's model:m names the model called m (whatever its stable id): an exact name, not an id.
    assert (models.unrestricted, models.ids, models.names, models.globs) == (False, frozenset(), frozenset({"m"}), ())
    assert models.allows("any-id", "m")
    assert not models.allows("any-id", "m2")


def test_visible_for_admins_anonymous_and_a_read_default():
    compiled = policy({"admins": ["root"], "default_permission": "READ",
                       "denies": [{"principal": "user:alice", "resource": "model-name:hr-*"}]})
    assert visible(compiled, Subject("user", "root"), ResourceKind.EXPERIMENT) == ScopeSpec(
        unrestricted=True, reason="administrators see everything", rule="admin")
    assert visible(compiled, Subject.anonymous(), ResourceKind.EXPERIMENT).unrestricted is False
    scope = visible(compiled, ALICE, ResourceKind.REGISTERED_MODEL)
    assert (scope.unrestricted, scope.denied_globs) == (True, ("hr-*",))
    assert not scope.allows("hr-payroll", "hr-payroll")
    assert scope.allows("churn", "churn")


def test_file_groups_and_identity_groups_are_merged():
    compiled = policy({"groups": {"a": ["alice"], "b": ["service:ci"]}})
    assert compiled.principal_keys(Subject("user", "alice", frozenset({"z"}))) == ("user:alice", "group:a",
                                                                                  "group:z")
    assert compiled.principal_keys(Subject("service", "ci")) == ("service:ci", "group:b")
    assert compiled.principal_keys(Subject("user", "ci")) == ("user:ci",)


def test_claims_of_foreign_groups_do_not_block_a_create():
    # Another workspace's role (its group given to the subject as foreign) promises names there only.
    from policies.routes import create_requirement

    claimed = policy({}, [Grant.from_api(1, "group:role@7", "experiment-name:*", "EDIT")])
    new = Resource(ResourceKind.EXPERIMENT, None, "anything")
    refused = decide(claimed, ALICE, create_requirement(ResourceKind.EXPERIMENT), new)
    assert (refused.allowed, refused.rule) == (False, "create-claimed")
    elsewhere = dataclasses.replace(ALICE, foreign_groups=frozenset({"role@7"}))
    allowed = decide(claimed, elsewhere, create_requirement(ResourceKind.EXPERIMENT), new)
    assert (allowed.allowed, allowed.rule) == (True, "create-default")
