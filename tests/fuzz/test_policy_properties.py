"""More properties of the policy evaluator, for any policy and request (hypothesis).

tests/policies/test_properties.py already proves determinism, deny-overrides for a matching deny,
the default for unmatched requests, visibility = decide(READ), and anonymous denial. Here: what a
policy change can and cannot do. A deny never widens access; no allow, however broad, lifts a
deny; grants to someone else change nothing; with the secure default an unmatched request is
denied; and an operation id outside the route table has no requirement (the gateway denies it).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from policies.decide import compile_policy, decide
from policies.file.access import AccessConfig
from policies.model import Grant, Permission, Subject
from policies.routes import OPERATION_IDS, requirement_for
from tests.policies.test_properties import (
    _matches,
    _requirement,
    access_configs,
    api_grants,
    deny_entries,
    grant_entries,
    needed,
    resources,
    subjects,
)

PROPS = settings(max_examples=300, deadline=None, derandomize=True)


def _with(access: AccessConfig, *, grants=(), denies=()) -> AccessConfig:
    dumped = access.model_dump()
    keep_grants = [g for g in dumped["grants"] if all((g["principal"], g["resource"]) != (n["principal"],
                                                                                           n["resource"])
                                                      for n in grants)]
    keep_denies = [d for d in dumped["denies"] if all((d["principal"], d["resource"]) != (n["principal"],
                                                                                           n["resource"])
                                                      for n in denies)]
    return AccessConfig.model_validate({**dumped, "grants": keep_grants + list(grants),
                                        "denies": keep_denies + list(denies)})


@PROPS
@given(access_configs(), api_grants(), subjects, resources, needed, deny_entries())
def test_adding_a_deny_never_widens_access(access, grants, subject, resource, permission, deny):
    before = decide(compile_policy(access, grants), subject, _requirement(permission), resource)
    after = decide(compile_policy(_with(access, denies=[deny]), grants), subject, _requirement(permission), resource)
    assert not after.allowed or before.allowed


@PROPS
@given(access_configs(), api_grants(), subjects, resources, needed,
       st.lists(grant_entries(), min_size=1, max_size=4), api_grants())
def test_no_allow_lifts_a_deny(access, grants, subject, resource, permission, more_file, more_api):
    decision = decide(compile_policy(access, grants), subject, _requirement(permission), resource)
    if decision.allowed or not decision.rule.startswith("access.denies["):
        return
    widened = compile_policy(_with(access, grants=more_file), [*grants, *more_api])
    again = decide(widened, subject, _requirement(permission), resource)
    assert not again.allowed
    assert again.rule.startswith("access.denies[")


@PROPS
@given(access_configs(), api_grants(), resources, needed, st.lists(grant_entries(), max_size=4))
def test_grants_to_someone_else_change_nothing(access, grants, resource, permission, others):
    # A fresh user in no group, not an admin: only entries naming "user:outsider" could concern them.
    outsider = Subject("user", "outsider", frozenset(), False, False)
    before = decide(compile_policy(access, grants), outsider, _requirement(permission), resource)
    extra = [Grant.from_api(100 + i, e["principal"], e["resource"], e["permission"]) for i, e in enumerate(others)]
    after = decide(compile_policy(access, [*grants, *extra]), outsider, _requirement(permission), resource)
    assert (after.allowed, after.rule) == (before.allowed, before.rule)


@PROPS
@given(access_configs(), api_grants(), subjects, resources, needed)
def test_unmatched_is_denied_under_the_secure_default(access, grants, subject, resource, permission):
    secure = AccessConfig.model_validate({**access.model_dump(), "default_permission": "NO_PERMISSIONS"})
    policy = compile_policy(secure, grants)
    keys = set(policy.principal_keys(subject))
    applicable = [g for g in (*secure.file_grants(), *grants) if g.subject.key in keys and _matches(g, resource)]
    if applicable or policy.is_admin(subject):
        return
    decision = decide(policy, subject, _requirement(permission), resource)
    assert not decision.allowed
    assert permission >= Permission.READ


@PROPS
@given(st.one_of(st.text(max_size=40), st.text(alphabet="abcdefghijklmnopqrstuvwxyz._", max_size=40)))
def test_operations_outside_the_route_table_have_no_requirement(operation):
    if operation in OPERATION_IDS:
        assert requirement_for(operation) is not None
    else:
        assert requirement_for(operation) is None


@PROPS
@given(st.sampled_from(sorted(OPERATION_IDS)), st.sampled_from([" ", "\x00", ".x", "X", "\u200b"]),
       st.booleans())
def test_lookalikes_of_real_operations_are_unmapped(operation, extra, prefix):
    lookalike = extra + operation if prefix else operation + extra
    assert requirement_for(lookalike) is None
    assert requirement_for(operation.upper()) is None or operation.upper() == operation
