"""Properties of decide() over random policies and requests (hypothesis), for experiments and registered models.

Policies mix grants and denies on both kinds (by id or exact name, and by name glob); every property is checked
on experiments and on registered models. Derandomized: CI checks the same examples every run.
"""

from __future__ import annotations

import pytest
from hypothesis import Phase, find, given, settings
from hypothesis import strategies as st

from policies.decide import compile_policy, decide, visible
from policies.file.access import AccessConfig
from policies.glob import glob_matches
from policies.model import Grant, Permission, Resource, ResourceKind, Subject
from policies.routes import Access, Requirement

USERS = ["u1", "u2"]
GROUPS = ["g1", "g2"]
PRINCIPALS = [f"user:{u}" for u in USERS] + [f"group:{g}" for g in GROUPS] + ["service:s1"]
IDS = ["1", "2", "3"]
# Registered models have a stable id and a name: stored grants name the id (model-id:), the file's exact-name
# grants (model:) the name; both draw from these, so they hit generated models.
MODEL_NAMES = ["xa", "xb", "xa/b"]
MODEL_IDS = ["m1", "m2"]
names = st.text(alphabet="ab/", min_size=0, max_size=4).map(lambda s: "x" + s)
patterns = st.text(alphabet="ab/*?", min_size=0, max_size=4).map(lambda s: "x" + s)
levels = st.sampled_from(list(Permission))
PROPS = {"deadline": None, "derandomize": True, "database": None}


@st.composite
def selectors(draw):
    """A selector on either kind: (text, is_pattern)."""
    if draw(st.booleans()):
        if draw(st.booleans()):
            return f"experiment:{draw(st.sampled_from(IDS))}", False
        return f"experiment-name:{draw(patterns)}", True
    if draw(st.booleans()):
        if draw(st.booleans()):
            return f"model-id:{draw(st.sampled_from(MODEL_IDS))}", False
        return f"model:{draw(st.sampled_from(MODEL_NAMES))}", False
    return f"model-name:{draw(patterns)}", True


@st.composite
def grant_entries(draw):
    resource, is_pattern = draw(selectors())
    permission = draw(levels)
    if is_pattern and permission is Permission.NO_PERMISSIONS:
        permission = Permission.READ
    return {"principal": draw(st.sampled_from(PRINCIPALS)), "resource": resource, "permission": permission.name}


@st.composite
def deny_entries(draw):
    resource, _ = draw(selectors())
    return {"principal": draw(st.sampled_from(PRINCIPALS)), "resource": resource,
            "permission": draw(st.sampled_from(["READ", "EDIT", "MANAGE"]))}


def _unique(entries):
    seen, out = set(), []
    for e in entries:
        if (e["principal"], e["resource"]) not in seen:
            seen.add((e["principal"], e["resource"]))
            out.append(e)
    return out


@st.composite
def access_configs(draw):
    return AccessConfig.model_validate({
        "mode": draw(st.sampled_from(["authoritative", "additive"])),
        "default_permission": draw(levels).name,
        "admins": draw(st.lists(st.sampled_from(USERS), max_size=1, unique=True)),
        "groups": {g: draw(st.lists(st.sampled_from(USERS), unique=True)) for g in GROUPS},
        "grants": _unique(draw(st.lists(grant_entries(), max_size=8))),
        "denies": _unique(draw(st.lists(deny_entries(), max_size=3))),
    })


@st.composite
def api_grants(draw):
    out = []
    for i, entry in enumerate(draw(st.lists(grant_entries(), max_size=4))):
        out.append(Grant.from_api(i, entry["principal"], entry["resource"], entry["permission"]))
    return out


subjects = st.builds(
    lambda name, groups, admin, ro: Subject("user", name, frozenset(groups), admin, ro),
    st.sampled_from(USERS), st.lists(st.sampled_from(GROUPS), unique=True), st.booleans(), st.booleans(),
)
resources = st.builds(Resource.experiment, st.sampled_from(IDS), names)
model_resources = st.builds(Resource.registered_model, st.sampled_from(MODEL_IDS),
                            st.one_of(st.sampled_from(MODEL_NAMES), names))
any_resources = st.one_of(resources, model_resources)
needed = st.sampled_from([Permission.READ, Permission.EDIT, Permission.MANAGE])


def _requirement(permission: Permission, kind: ResourceKind = ResourceKind.EXPERIMENT) -> Requirement:
    return Requirement(Access.RESOURCE, permission, kind)


def _matches(grant: Grant, resource: Resource) -> bool:
    if grant.resource.kind is not resource.kind:
        return False
    if grant.resource.name is not None:
        return grant.resource.name == resource.name
    if grant.resource.pattern is None:
        return grant.resource.id == resource.id
    return glob_matches(grant.resource.pattern, resource.name)


@settings(max_examples=300, **PROPS)
@given(access_configs(), api_grants(), subjects, any_resources, needed)
def test_decide_is_deterministic_and_order_independent(access, grants, subject, resource, permission):
    policy = compile_policy(access, grants)
    first = decide(policy, subject, _requirement(permission, resource.kind), resource)
    assert decide(policy, subject, _requirement(permission, resource.kind), resource) == first
    assert decide(compile_policy(access, grants), subject, _requirement(permission, resource.kind), resource) == first
    # The order of API grants may change which equal grant is cited, never the outcome.
    shuffled = compile_policy(access, list(reversed(grants)))
    assert decide(shuffled, subject, _requirement(permission, resource.kind), resource).allowed == first.allowed
    dumped = access.model_dump()
    reordered = AccessConfig.model_validate({**dumped, "grants": list(reversed(dumped["grants"]))})
    again = decide(compile_policy(reordered, grants), subject, _requirement(permission, resource.kind), resource)
    assert again.allowed == first.allowed


@settings(max_examples=300, **PROPS)
@given(access_configs(), api_grants(), subjects, any_resources, needed)
def test_a_matching_deny_overrides_every_allow(access, grants, subject, resource, permission):
    policy = compile_policy(access, grants)
    decision = decide(policy, subject, _requirement(permission, resource.kind), resource)
    keys = set(policy.principal_keys(subject))
    vetoed = any(g.effect == "deny" and g.subject.key in keys and g.permission <= permission and _matches(g, resource)
                 for g in access.file_grants())
    if policy.is_admin(subject) and not (subject.read_only_token and permission > Permission.READ):
        assert decision.allowed
        assert decision.rule == "admin"
    elif vetoed:
        assert not decision.allowed
        assert decision.rule.startswith("access.denies[") or decision.rule == "read-only-token"


@settings(max_examples=300, **PROPS)
@given(access_configs(), api_grants(), subjects, any_resources, needed)
def test_unmatched_requests_fall_to_the_default(access, grants, subject, resource, permission):
    policy = compile_policy(access, grants)
    keys = set(policy.principal_keys(subject))
    applicable = [g for g in (*access.file_grants(), *grants) if g.subject.key in keys and _matches(g, resource)]
    if applicable or policy.is_admin(subject) or subject.read_only_token:
        return
    decision = decide(policy, subject, _requirement(permission, resource.kind), resource)
    assert decision.rule == "default_permission"
    assert decision.allowed == (policy.default_permission >= permission)


@settings(max_examples=500, **PROPS)
@given(access_configs(), api_grants(), subjects, any_resources)
def test_visibility_scope_matches_decide_for_read(access, grants, subject, resource):
    policy = compile_policy(access, grants)
    scope = visible(policy, subject, resource.kind)
    allowed = decide(policy, subject, _requirement(Permission.READ, resource.kind), resource).allowed
    assert scope.allows(resource.id, resource.name) == allowed


@settings(max_examples=150, **PROPS)
@given(access_configs(), api_grants(), any_resources, needed)
def test_anonymous_is_denied_every_resource(access, grants, resource, permission):
    policy = compile_policy(access, grants)
    decision = decide(policy, Subject.anonymous(), _requirement(permission, resource.kind), resource)
    assert not decision.allowed
    assert decision.rule == "anonymous"
    assert not visible(policy, Subject.anonymous(), resource.kind).allows(resource.id, resource.name)


@pytest.mark.parametrize("effect", ["grants", "denies"])
def test_the_strategies_reach_registered_models_with_matching_rules(effect):
    # Non-vacuity: the generated policies do hold allows and denies that match a generated registered model,
    # by exact name and by glob, so the properties above are exercised on models and not only on experiments.
    for exact in (True, False):
        def hit(example, exact=exact):
            access, resource = example
            rules = [g for g in access.file_grants() if (g.effect == "deny") == (effect == "denies")]
            return any(_matches(g, resource) and (g.resource.pattern is None) == exact for g in rules)

        found = find(st.tuples(access_configs(), model_resources), hit,
                     settings=settings(max_examples=2000, phases=[Phase.generate], **PROPS))
        assert found[1].kind is ResourceKind.REGISTERED_MODEL
