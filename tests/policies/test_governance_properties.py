"""Properties of scoped tokens and expiring grants over random policies (hypothesis, derandomized).

- A token's scope only subtracts: whatever a scoped token is allowed, its owner without the scope is allowed
  too, and a scoped search never shows what the owner's search would not.
- A grant past its expiry is as if it did not exist; before it, as if it never expired.
- Visibility agrees with decide() for READ under a token scope and at any moment.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.decide import compile_policy, decide, visible
from policies.file.access import AccessConfig
from policies.model import Grant, Permission, RequestContext, Resource, ResourceKind, Subject
from policies.routes import requirement_for
from policies.token_scope import parse_scope
from tests.policies.test_properties import (
    PROPS,
    _requirement,
    access_configs,
    any_resources,
    api_grants,
    names,
    needed,
    patterns,
    subjects,
)

EXPIRY = 1_000_000
moments = st.sampled_from([EXPIRY - 1, EXPIRY, EXPIRY + 1])


@st.composite
def scope_entries(draw):
    level = draw(st.sampled_from(["READ", "EDIT", "MANAGE"]))
    kind = draw(st.sampled_from(["experiment-name", "model-name", "experiment", "model"]))
    if kind == "experiment":
        return f"{level}:experiment:{draw(st.sampled_from(['1', '2', '3']))}"
    if kind == "model":
        return f"{level}:model:{draw(names)}"
    return f"{level}:{kind}:{draw(patterns)}"


scopes = st.builds(lambda entries: parse_scope(entries, []), st.lists(scope_entries(), min_size=1, max_size=4))


@st.composite
def expiring(draw, grants):
    """Some of ``grants`` made to expire at EXPIRY."""
    out = []
    for grant in grants:
        out.append(replace(grant, expires_at=EXPIRY) if draw(st.booleans()) else grant)
    return out


@settings(max_examples=400, **PROPS)
@given(access_configs(), api_grants(), subjects, any_resources, needed, scopes)
def test_a_token_scope_never_widens_its_owner(access, grants, subject, resource, permission, scope):
    policy = compile_policy(access, grants)
    context = RequestContext(now_ms=EXPIRY)
    scoped = replace(subject, token_scope=scope)
    requirement = _requirement(permission, resource.kind)
    with_scope = decide(policy, scoped, requirement, resource, context)
    if with_scope.allowed:
        assert decide(policy, subject, requirement, resource, context).allowed
    # The same for the operations that are not about one resource.
    for operation in ("users.create", "tokens.create", "admin.grants.put", "experiments.search"):
        if decide(policy, scoped, requirement_for(operation), None, context).allowed:
            assert decide(policy, subject, requirement_for(operation), None, context).allowed


@settings(max_examples=400, **PROPS)
@given(access_configs(), api_grants(), subjects, any_resources, scopes)
def test_scoped_visibility_matches_decide_and_stays_within_the_owners(access, grants, subject, resource, scope):
    policy = compile_policy(access, grants)
    context = RequestContext(now_ms=EXPIRY)
    scoped = replace(subject, token_scope=scope, read_only_token=False)
    seen = visible(policy, scoped, resource.kind, context).allows(resource.id, resource.name)
    allowed = decide(policy, scoped, _requirement(Permission.READ, resource.kind), resource, context).allowed
    assert seen == allowed
    if seen:
        assert visible(policy, replace(scoped, token_scope=None), resource.kind, context).allows(
            resource.id, resource.name)


@settings(max_examples=400, **PROPS)
@given(access_configs(), api_grants(), subjects, any_resources, needed, moments, st.data())
def test_an_expired_grant_is_as_if_absent_and_a_live_one_as_if_permanent(access, grants, subject, resource,
                                                                         permission, now, data):
    timed = data.draw(expiring(grants))
    requirement = _requirement(permission, resource.kind)
    context = RequestContext(now_ms=now)
    decision = decide(compile_policy(access, timed), subject, requirement, resource, context)
    if now >= EXPIRY:
        expected = compile_policy(access, [g for g in timed if g.expires_at is None])
    else:
        expected = compile_policy(access, [replace(g, expires_at=None) for g in timed])
    assert decision.allowed == decide(expected, subject, requirement, resource, context).allowed
    seen = visible(compile_policy(access, timed), subject, resource.kind, context).allows(resource.id, resource.name)
    assert seen == decide(compile_policy(access, timed), subject, _requirement(Permission.READ, resource.kind),
                          resource, context).allowed


@settings(max_examples=200, **PROPS)
@given(access_configs(), api_grants(), subjects, any_resources, needed)
def test_an_unknown_time_counts_every_expiring_grant_as_expired(access, grants, subject, resource, permission):
    timed = [replace(g, expires_at=EXPIRY) for g in grants]
    requirement = _requirement(permission, resource.kind)
    unknown = decide(compile_policy(access, timed), subject, requirement, resource)
    after = decide(compile_policy(access, timed), subject, requirement, resource, RequestContext(now_ms=EXPIRY))
    assert unknown.allowed == after.allowed


def test_a_break_glass_grant_must_expire_and_says_when_it_decides():
    with pytest.raises(ValueError, match="a break-glass grant must expire"):
        Grant.from_api(1, "user:a", "experiment:1", "READ", break_glass=True)
    policy = compile_policy(AccessConfig(), [Grant.from_api(2, "user:a", "experiment:1", "MANAGE", expires_at=EXPIRY,
                                                            break_glass=True)])
    decision = decide(policy, Subject("user", "a"), _requirement(Permission.EDIT, ResourceKind.EXPERIMENT),
                      Resource.experiment("1", "x"), RequestContext(now_ms=EXPIRY - 1))
    assert decision.allowed
    assert decision.break_glass
    assert decision.rule == "api-grant:2"


@st.composite
def conditions(draw):
    entry = {"resource": draw(st.sampled_from(["experiment-name:*", "model-name:*", "model-name:xa*"])),
             "permission": draw(st.sampled_from(["EDIT", "MANAGE"])),
             "only": draw(st.lists(st.sampled_from(["group:g1", "group:g2", "user:u1"]), min_size=1, unique=True))}
    if entry["resource"].startswith("model") and draw(st.booleans()):
        entry["alias"] = draw(st.sampled_from(["champion", "c*"]))
    else:
        entry["tags"] = {"pii": "true"}
    return entry


@settings(max_examples=400, **PROPS)
@given(access_configs(), api_grants(), subjects, any_resources, needed, st.lists(conditions(), min_size=1, max_size=3),
       st.sampled_from([None, "champion", "other"]), st.sampled_from([None, frozenset(), frozenset({("pii", "true")})]))
def test_a_condition_never_widens_the_grant_it_qualifies(access, grants, subject, resource, permission, found,
                                                          alias, tags):
    conditioned = AccessConfig.model_validate({**access.model_dump(), "conditions": found})
    target = replace(resource, alias=alias, tags=tags)
    requirement = _requirement(permission, resource.kind)
    context = RequestContext(now_ms=EXPIRY)
    with_conditions = decide(compile_policy(conditioned, grants), subject, requirement, target, context)
    without = decide(compile_policy(access, grants), subject, requirement, target, context)
    if with_conditions.allowed:
        assert without.allowed
    elif without.allowed:
        assert with_conditions.rule.startswith("access.conditions[")


@pytest.mark.parametrize("entries", [["workspace:team-a"], ["READ:experiment-name:team-a/*"]])
@pytest.mark.parametrize("operation", ["workspaces.create", "workspaces.delete", "users.create", "admin.grants.put"])
def test_a_token_limited_to_workspaces_or_resources_never_reaches_administrator_operations(entries, operation):
    # Even an administrator's token: administrator operations are server-wide, beyond any workspace or resource.
    admin = Subject("user", "root", frozenset(), is_admin=True, token_scope=parse_scope(entries, []))
    decision = decide(compile_policy(AccessConfig(), []), admin, requirement_for(operation), None,
                      RequestContext(now_ms=EXPIRY, workspace="team-a"))
    assert (decision.allowed, decision.rule) == (False, "token-scope")
