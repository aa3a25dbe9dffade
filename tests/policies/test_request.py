"""decide_request(): the whole request's answer and the check that failed, as data."""

from __future__ import annotations

import pytest

from policies.decide import compile_policy
from policies.file import policy_from_data
from policies.model import Permission, Resource, ResourceKind, Subject
from policies.request import Answer, Check, Failure, decide_request, needs_grants, needs_workspace
from policies.routes import Access, Requirement, requirement_for

ALICE = Subject("user", "alice")
READ_ONLY = Subject("user", "alice", read_only_token=True)
ADMIN = Subject("user", "root", is_admin=True)
ADMIN_READ_ONLY = Subject("user", "root", is_admin=True, read_only_token=True)
ANON = Subject.anonymous()

POLICY = compile_policy(policy_from_data({"access": {
    "grants": [
        {"principal": "user:alice", "resource": "experiment:1", "permission": "READ"},
        {"principal": "user:alice", "resource": "experiment:2", "permission": "MANAGE"},
    ],
    "denies": [{"principal": "user:alice", "resource": "experiment:3", "permission": "READ"}],
}}, {}), ())

EXP1, EXP2, EXP3 = (Resource.experiment(i, f"e{i}") for i in (1, 2, 3))
EXP9 = Resource.experiment(9, "e9")  # no grant: default NO_PERMISSIONS
MISSING = Resource(ResourceKind.EXPERIMENT, None, None)
RUNS_GET = requirement_for("runs.get")
RUNS_UPDATE = requirement_for("runs.update")
SEARCH = requirement_for("experiments.search")
ADMIN_OP = Requirement(Access.ADMIN, Permission.READ)


def one(requirement, resource=None, elsewhere=False):
    return [Check(requirement, resource, 0, elsewhere)]


CASES = [
    # (name, subject, requirement, checks, admin, answer, failure, rule)
    ("unmapped", ALICE, None, [], False, Answer.FORBIDDEN, Failure.ROUTE_TABLE, "route-table"),
    ("unmapped-anonymous", ANON, None, [], False, Answer.FORBIDDEN, Failure.ROUTE_TABLE, "route-table"),
    ("public-anonymous", ANON, requirement_for("ops.health"), [], False, Answer.ALLOW, None, "public"),
    ("anonymous", ANON, RUNS_GET, [], False, Answer.UNAUTHENTICATED, Failure.ANONYMOUS, "anonymous"),
    ("read-granted", ALICE, RUNS_GET, one(RUNS_GET, EXP1), False, Answer.ALLOW, None, "access.grants[0]"),
    ("edit-on-readable", ALICE, RUNS_UPDATE, one(RUNS_UPDATE, EXP1), False, Answer.FORBIDDEN,
     Failure.GRANT_MISSING, "access.grants[0]"),
    ("no-grant-hides", ALICE, RUNS_GET, one(RUNS_GET, EXP9), False, Answer.MISSING, Failure.GRANT_MISSING,
     "default_permission"),
    ("deny-hides", ALICE, RUNS_GET, one(RUNS_GET, EXP3), False, Answer.MISSING, Failure.GRANT_MISSING,
     "access.denies[0]"),
    ("missing", ALICE, RUNS_GET, one(RUNS_GET, MISSING), False, Answer.MISSING, Failure.RESOURCE_MISSING,
     "unresolved"),
    ("elsewhere-for-a-user", ALICE, RUNS_GET, one(RUNS_GET, MISSING, True), False, Answer.MISSING,
     Failure.RESOURCE_MISSING, "unresolved"),
    ("read-only-token-write", READ_ONLY, RUNS_UPDATE, one(RUNS_UPDATE, EXP2), False, Answer.FORBIDDEN,
     Failure.READ_ONLY_TOKEN, "read-only-token"),
    ("read-only-token-read", READ_ONLY, RUNS_GET, one(RUNS_GET, EXP1), False, Answer.ALLOW, None,
     "access.grants[0]"),
    ("admin-only", ALICE, ADMIN_OP, one(ADMIN_OP), False, Answer.FORBIDDEN, Failure.ADMIN_ONLY, "admin-only"),
    ("admin-bypass", ADMIN, RUNS_UPDATE, one(RUNS_UPDATE, EXP9), True, Answer.ALLOW, None, "admin"),
    ("admin-missing-reaches-tracking", ADMIN, RUNS_GET, one(RUNS_GET, MISSING), True, Answer.ALLOW, None, "admin"),
    ("admin-elsewhere", ADMIN, RUNS_GET, one(RUNS_GET, MISSING, True), True, Answer.MISSING,
     Failure.RESOURCE_MISSING, "workspace"),
    ("admin-read-only-write", ADMIN_READ_ONLY, RUNS_UPDATE, one(RUNS_UPDATE, EXP9), True, Answer.FORBIDDEN,
     Failure.READ_ONLY_TOKEN, "read-only-token"),
    ("search", ALICE, SEARCH, one(SEARCH), False, Answer.ALLOW, None, "search-scope"),
    ("nothing-located", ALICE, RUNS_GET, [], False, Answer.FORBIDDEN, Failure.ROUTE_TABLE, "route-table"),
]


@pytest.mark.parametrize(("subject", "requirement", "checks", "admin", "answer", "failure", "rule"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_decide_request(subject, requirement, checks, admin, answer, failure, rule):
    policy = POLICY if needs_grants(subject, requirement, admin=admin) else None
    result = decide_request(policy, subject, requirement, checks, admin=admin)
    assert (result.answer, result.failure, result.decision.rule) == (answer, failure, rule)
    assert result.allowed is (answer is Answer.ALLOW)
    if answer in (Answer.MISSING, Answer.FORBIDDEN) and checks:
        assert result.check in checks  # the failed check is named


def test_the_first_failing_check_decides_and_is_named():
    # A model version: EDIT on the model, then READ on the source run's experiment.
    version = requirement_for("model_versions.create")
    model_check, run_check = version.checks()[:2]
    model = Resource.registered_model("m-1", "churn")
    policy = compile_policy(policy_from_data({"access": {"grants": [
        {"principal": "user:alice", "resource": "model:churn", "permission": "EDIT"}]}}, {}), ())
    result = decide_request(policy, ALICE, version, [Check(model_check, model, 0), Check(run_check, EXP9, 1)],
                            admin=False)
    assert result.answer is Answer.MISSING
    assert result.check.position == 1


def test_steps_before_the_grants_need_no_policy():
    assert not needs_workspace(ANON, RUNS_GET)
    assert not needs_workspace(ALICE, None)
    assert not needs_grants(ADMIN, RUNS_UPDATE, admin=True)
    assert needs_grants(ADMIN_READ_ONLY, RUNS_UPDATE, admin=True)
    with pytest.raises(ValueError, match="needs the compiled policy"):
        decide_request(None, ALICE, RUNS_GET, one(RUNS_GET, EXP1), admin=False)
