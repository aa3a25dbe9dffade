"""Authorization: one pure function decides every request from a compiled policy.

The model
---------
* **Permissions** are ordered ``NO_PERMISSIONS < READ < EDIT < MANAGE`` with MLflow's meanings:
  READ views, EDIT also logs and updates, MANAGE also deletes and grants others access.
* **Resources** are experiments (their runs, metrics, params, tags, artifacts, traces, assessments
  and logged models inherit the experiment's permission) and registered models (their versions,
  aliases and tags inherit). The route table (``policies.routes``) says which resource and level
  each operation needs; some need several (a model version needs EDIT on the model and READ on
  its source run's experiment) and every one of them must pass.
* **Principals** are users, service accounts and groups. A subject's groups are those the identity
  layer reports plus those ``access.groups`` declares for it.
* **Grants** give a principal a level on one resource (``experiment:12``, ``model:churn``) or on
  every resource whose name matches a glob (``experiment-name:team-a/*``). Stored grants on one
  registered model name it by its stable id (``model-id:<id>``), so they follow it through renames;
  the file's ``model:<name>`` names whichever model has that name. They come from the file
  (``access.grants[i]``) or the API (``api-grant:<id>``); the creator of an experiment or model
  receives an API grant of MANAGE. A pattern grant is at least READ: carving resources out of a
  pattern is what denies are for.
* **Denies** (``access.denies[i]``) veto at their level: a deny of EDIT means the principal never
  passes an EDIT or MANAGE check on the matched resources, but may still READ; a deny of READ
  vetoes all access. A deny overrides every grant, however specific.

Precedence (the first step that applies decides)
------------------------------------------------
1. No route-table entry: denied (``route-table``).
2. PUBLIC operations: allowed to anyone (``public``).
3. Anonymous callers: denied everything else (``anonymous``).
4. Read-only tokens: denied every check above READ and every create, even for admins
   (``read-only-token``). Scoped tokens (``policies.token_scope``): denied when the request comes from
   outside the token's networks or workspaces, or when no entry of its scope covers the level on the
   resource (or the name to create); a scoped token never manages credentials, and one limited to
   resources never uses administrator operations (``token-scope``, ``token-scope:network``,
   ``token-scope:workspace``). Passing the scope only lets the remaining steps decide: the token does
   what its owner may do now, within its scope, never more.
5. Administrators (identity flag or ``access.admins``): allowed (``admin``).
6. Operations for any signed-in principal and searches: allowed (``authenticated``,
   ``search-scope``); a search's results are limited by :func:`visible`. Admin-only operations:
   denied (``admin-only``); self-service ones: allowed only on one's own account (``self``).
7. Creates (and renames, which check the new name the same way): ``access.create.<kind>`` unset lets
   every signed-in principal create (``create-default``), except a name that some principal's grant
   names (a pattern such as ``experiment-name:team-a/*``, or the file's ``model:<name>``): there the
   creator must hold EDIT or more through such a grant itself, not vetoed by a deny, else denied
   (``create-claimed``), so nobody can take a name a team was promised before the team does (grants
   of the subject's ``foreign_groups``, another workspace's roles, promise nothing here; in a workspace
   other than ``default`` only that workspace's role grants promise or hold names there, see 8b). Set,
   the first rule whose principal and name glob match allows (``access.create.experiments[i]``); none
   matching denies (``access.create.experiments``): explicit rules decide alone.
8. Resource checks: the resource must be resolved with both id and name (``unresolved``).
   a. Any deny of the subject or its groups that matches the resource at or below the required
      level: denied, citing the most specific such deny.
   b. Otherwise the single most specific grant among the subject's and its groups' decides:
      a grant by resource id beats a grant by exact name (``model:<name>``), which beats any name
      pattern; among patterns the longer literal prefix
      wins, then the one with more literal characters; at equal specificity the subject's own
      grant (user or service) beats a group's; still equal, the higher permission wins (grants of
      several groups add up), and among equals the earlier one (file before API) is cited.
      In a workspace other than ``default`` (``Subject.name_grants_from`` set), a grant by name or name
      pattern counts only if it is one of that workspace's roles: the same name is another object in
      each workspace, and grants by id still count wherever their object is. Denies always count.
   c. No grant matches: ``default_permission`` (secure default NO_PERMISSIONS) applies.
   The request passes when the level so found is at least the required one.
   Before a: conditions (``access.conditions[i]``) on the resource's tags or the alias the request names:
   when one matches and holds, a subject that is not among its ``only`` principals is denied at its level
   and above. Conditions subtract; grants add: passing a condition still needs a grant.
   A grant or deny with ``expires_at`` takes part only before that moment, by the clock of the request
   (``RequestContext.now_ms``; unknown: expired). A refusal that an expired grant would have allowed
   cites it (``expired-grant``); an allow through a break-glass grant says so (``Decision.break_glass``).

Visibility (:func:`visible`) is the same rule evaluated for READ over all resources of a kind and
expressed as id and glob sets; because pattern grants are never below READ and denies are
absolute, the sets describe exactly the resources for which ``decide`` would allow READ.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from policies.compiled import CompiledPolicy, IndexedGrant, api_grant_conflict, compile_policy
from policies.model import (
    UNKNOWN_CONTEXT,
    Decision,
    Permission,
    RequestContext,
    Resource,
    ResourceKind,
    ScopeSpec,
    Subject,
)
from policies.routes import Access, Requirement
from policies.token_scope import TokenScope, check_request, check_resource

__all__ = ["api_grant_conflict", "compile_policy", "decide", "decide_all", "visible"]

_CREATE_KIND = {Access.CREATE_EXPERIMENT: ResourceKind.EXPERIMENT, Access.CREATE_MODEL: ResourceKind.REGISTERED_MODEL}
_CREATE_SECTION = {ResourceKind.EXPERIMENT: "experiments", ResourceKind.REGISTERED_MODEL: "models"}


def _who(subject: Subject) -> str:
    return "an anonymous caller" if subject.kind == "anonymous" else f"{subject.kind} {subject.name}"


def decide(policy: CompiledPolicy, subject: Subject, requirement: Requirement | None,
           resource: Resource | None = None, context: RequestContext = UNKNOWN_CONTEXT) -> Decision:
    """Whether ``subject`` may do what ``requirement`` needs on ``resource``, why, and by which rule.

    ``context`` carries the request's time, client address and workspace; left unknown, expiring grants
    count as expired and tokens limited to networks or workspaces are refused.
    """
    if requirement is None:
        return Decision(False, "the operation has no route-table entry; unmapped operations are denied",
                        "route-table")
    access = requirement.access
    if access is Access.PUBLIC:
        return Decision(True, "public operation: no sign-in needed", "public")
    if access is Access.SCIM:
        # Checked against the provisioning token by the gateway; no principal, administrators included, qualifies.
        return Decision(False, "SCIM provisioning takes the provisioning token, never an account's credentials",
                        "scim-token-only")
    who = _who(subject)
    if subject.kind == "anonymous":
        return Decision(False, "sign-in required: anonymous callers may only use public operations", "anonymous")
    is_write = requirement.permission > Permission.READ or access in _CREATE_KIND
    if subject.read_only_token and is_write:
        return Decision(False, f"{who} uses a read-only token, which cannot perform operations needing more "
                               "than READ", "read-only-token")
    if isinstance(subject.token_scope, TokenScope):
        limited = _token_limits(subject.token_scope, who, requirement, resource, context)
        if limited is not None:
            return limited
    elif subject.token_scope is not None:
        return Decision(False, f"{who} uses a token whose scope cannot be read", "token-scope")
    if policy.is_admin(subject):
        return Decision(True, f"{who} is an administrator; administrators bypass access checks", "admin")
    if access is Access.AUTHENTICATED:
        return Decision(True, f"{who} is signed in; the operation only concerns the caller", "authenticated")
    if access is Access.SEARCH:
        return Decision(True, f"{who} may search; results are limited to what {who} may read", "search-scope")
    if access is Access.ADMIN:
        return Decision(False, f"only administrators may do this and {who} is not one", "admin-only")
    if access is Access.SELF_OR_ADMIN:
        return _decide_self(subject, who, resource)
    if access in _CREATE_KIND:
        return _decide_create(policy, subject, who, _CREATE_KIND[access], resource, context.now_ms)
    return _decide_resource(policy, subject, who, requirement, resource, context.now_ms)


def decide_all(policy: CompiledPolicy, subject: Subject,
               checks: Iterable[tuple[Requirement | None, Resource | None]],
               context: RequestContext = UNKNOWN_CONTEXT) -> Decision:
    """All of several checks (a requirement and its cross-resource ones): the first denial, else the first allow
    (a break-glass allow among them is the one returned, so its use is audited)."""
    first: Decision | None = None
    for requirement, resource in checks:
        decision = decide(policy, subject, requirement, resource, context)
        if not decision.allowed:
            return decision
        if first is None or (decision.break_glass and not first.break_glass):
            first = decision
    return first or decide(policy, subject, None)


def _token_limits(scope: TokenScope, who: str, requirement: Requirement, resource: Resource | None,
                  context: RequestContext) -> Decision | None:
    """Step 4 for a scoped token: a denial, or None to let the owner's rights decide."""
    outside = check_request(scope, who, client=context.client, workspace=context.workspace)
    if outside is not None:
        return outside
    access = requirement.access
    if access in (Access.AUTHENTICATED, Access.SELF_OR_ADMIN) and requirement.permission > Permission.READ:
        return Decision(False, f"{who} uses a scoped token, which cannot change accounts, tokens or grants",
                        "token-scope")
    if access is Access.ADMIN and (scope.resources is not None or scope.workspaces is not None):
        # Administrator operations are server-wide: a token limited to resources or workspaces never reaches
        # them (creating or deleting workspaces, accounts, grants), even an administrator's.
        return Decision(False, f"{who} uses a token limited to resources or workspaces, which cannot use "
                               "administrator operations", "token-scope")
    if scope.resources is None:
        return None
    if access in _CREATE_KIND:
        name = resource.name if resource is not None else None
        return check_resource(scope, who, Permission.EDIT, _CREATE_KIND[access], None, name, is_prompt=None,
                              creating=True)
    if access is Access.RESOURCE:
        if resource is None:
            return Decision(False, f"{who} uses a token limited to resources and the resource is unknown",
                            "token-scope")
        return check_resource(scope, who, requirement.permission, resource.kind, resource.id, resource.name,
                              is_prompt=resource.is_prompt)
    return None


def _decide_self(subject: Subject, who: str, resource: Resource | None) -> Decision:
    if (resource is not None and resource.kind is ResourceKind.USER and subject.kind == "user"
            and resource.name == subject.name):
        return Decision(True, f"{who} acts on their own account", "self")
    return Decision(False, f"{who} may only do this for their own account (administrators for any)", "self")


def _decide_create(policy: CompiledPolicy, subject: Subject, who: str, kind: ResourceKind,
                   resource: Resource | None, now_ms: int | None) -> Decision:
    section = f"access.create.{_CREATE_SECTION[kind]}"
    noun = "experiments" if kind is ResourceKind.EXPERIMENT else "registered models"
    rules = policy.create[kind]
    if rules is None:
        return _decide_unclaimed(policy, subject, who, kind, resource, section, noun, now_ms)
    name = resource.name if resource is not None else None
    if name is None:
        return Decision(False, f"the name to create is unknown, so {section} cannot be checked", "unresolved")
    keys = set(policy.principal_keys(subject))
    for rule in rules:
        if (rule.principal == "*" or rule.principal in keys) and rule.matcher.fullmatch(name):
            return Decision(True, f"{rule.rule} lets {rule.principal} create {noun} named {rule.pattern!r}",
                            rule.rule)
    return Decision(False, f"no rule in {section} lets {who} create {noun} named {name!r}", section)


def _decide_unclaimed(policy: CompiledPolicy, subject: Subject, who: str, kind: ResourceKind,
                      resource: Resource | None, section: str, noun: str, now_ms: int | None) -> Decision:
    # Without create rules anyone may create, except into a name some grant already promises by name
    # (experiment-name:team-a/* to group:team-a): there only a principal that may EDIT under such a grant
    # may create or rename, or an outsider could create team-a/forecast first and own what the team logs.
    name = resource.name if resource is not None else None
    if name is None:
        return Decision(False, f"the name to create is unknown, so {section} cannot be checked", "unresolved")
    claims = policy.claims.get(kind)
    foreign = {f"group:{g}" for g in subject.foreign_groups}
    claimed = _best(g for g in claims.matching(None, name)
                    if policy.claimants.get(g.grant.rule) not in foreign
                    and _name_grant_counts(subject, policy.claimants.get(g.grant.rule))) if claims is not None else None
    if claimed is None:
        return Decision(True, f"{section} is not set and no grant names {name!r}, so any signed-in principal may "
                              f"create {noun} with that name", "create-default")
    keys = policy.principal_keys(subject)
    # An expired grant still claims the name (that only refuses more); it no longer lets its holder create.
    vetoed = any(g.grant.permission <= Permission.EDIT and not g.grant.expired(now_ms)
                 for key in keys for g in policy.deny_index(key, kind).matching(None, name))
    held = _best(g for key in keys if _name_grant_counts(subject, key)
                 for g in policy.allow_index(key, kind).matching(None, name) if not g.grant.expired(now_ms))
    if held is not None and held.grant.permission >= Permission.EDIT and not vetoed:
        return Decision(True, f"{who} holds {held.grant.permission.name} on the name {name!r} through "
                              f"{_cite(held)}, so may create {noun} there", held.grant.rule)
    # The reason cites the rule, never another principal's grant.
    return Decision(False, f"a grant by name ({claimed.grant.rule}) covers {name!r}: creating or renaming {noun} "
                           f"there needs EDIT under a grant that covers the name, and {who} holds none",
                    "create-claimed")


def _name_grant_counts(subject: Subject, key: str | None) -> bool:
    """Whether grants by name of principal ``key`` count for ``subject`` (see Subject.name_grants_from)."""
    return subject.name_grants_from is None or key in subject.name_grants_from


def _counts(subject: Subject, key: str, grant: IndexedGrant) -> bool:
    """Whether an allow grant of ``key`` counts: one by id always, one by name only as _name_grant_counts says."""
    return grant.grant.resource.id is not None or _name_grant_counts(subject, key)


def _resolved(requirement: Requirement, resource: Resource) -> bool:
    if resource.id is None or resource.name is None:
        return False
    if resource.kind not in (ResourceKind.EXPERIMENT, ResourceKind.REGISTERED_MODEL):
        return False
    return requirement.resource_kind is None or requirement.resource_kind is resource.kind


def _best(grants: Iterable[IndexedGrant]) -> IndexedGrant | None:
    return max(grants, key=lambda g: g.rank, default=None)


def _cite(found: IndexedGrant) -> str:
    grant = found.grant
    return f"{grant.rule} ({grant.subject.key} on {grant.resource.text})"


def _decide_resource(policy: CompiledPolicy, subject: Subject, who: str, requirement: Requirement,
                     resource: Resource | None, now_ms: int | None) -> Decision:
    needed = requirement.permission
    if resource is None or not _resolved(requirement, resource):
        return Decision(False, "the resource could not be resolved (id and name are both needed)", "unresolved")
    keys = policy.principal_keys(subject)
    target = resource.describe()
    for condition in policy.conditions.get(resource.kind, ()):
        if (condition.permission <= needed and not condition.only.intersection(keys)
                and condition.applies(resource.id, resource.name, resource.tags, resource.alias)):
            return Decision(False, f"{condition.rule} lets only {', '.join(sorted(condition.only))} act at "
                                   f"{condition.permission.name} or above on {target} with {condition.describe()}; "
                                   f"{who} needs {needed.name}", condition.rule)
    vetoes = [g for key in keys for g in policy.deny_index(key, resource.kind).matching(resource.id, resource.name)
              if g.grant.permission <= needed and not g.grant.expired(now_ms)]
    veto = _best(vetoes)
    if veto is not None:
        return Decision(False, f"{_cite(veto)} denies {veto.grant.permission.name} and above on {target}; "
                              f"{needed.name} is required", veto.grant.rule)
    matching = [g for key in keys for g in policy.allow_index(key, resource.kind).matching(resource.id,
                                                                                            resource.name)
                if _counts(subject, key, g)]
    found = _best(g for g in matching if not g.grant.expired(now_ms))
    if found is None:
        held = policy.default_permission
        decision = Decision(held >= needed, f"no grant covers {who} on {target}, so default_permission "
                                            f"{held.name} applies; {needed.name} is required", "default_permission")
    else:
        held = found.grant.permission
        decision = Decision(held >= needed, f"{who} holds {held.name} on {target} through {_cite(found)}; "
                                            f"{needed.name} is required", found.grant.rule,
                            break_glass=found.grant.break_glass and held >= needed)
    if not decision.allowed:
        lapsed = _best(g for g in matching if g.grant.expired(now_ms) and g.grant.permission >= needed)
        if lapsed is not None:
            return Decision(False, f"{_cite(lapsed)} expired at {lapsed.grant.expires_at} (epoch ms); "
                                   f"{decision.reason}", "expired-grant")
    return decision


def _hides(deny: IndexedGrant) -> bool:
    return deny.grant.permission <= Permission.READ


def _keep_best(best: dict[str, IndexedGrant], found) -> None:
    for key, grants in found.items():
        for g in grants:
            if key not in best or g.rank > best[key].rank:
                best[key] = g


def _token_visibility(subject: Subject, kind: ResourceKind) -> ScopeSpec | None:
    """What a scoped token lets its owner see of ``kind`` (None: not limited by resource)."""
    scope = subject.token_scope
    if scope is None:
        return None
    if not isinstance(scope, TokenScope):
        return ScopeSpec(reason="the token's scope cannot be read", rule="token-scope")
    rules = scope.visible_rules(kind)
    if rules is None:
        return None
    # Prompt-only rules need to know which models are prompts, which a name set cannot say: they show nothing
    # in searches (fail closed); the prompts they cover are still readable by name.
    return ScopeSpec(ids=frozenset(r.resource_id for r in rules if r.resource_id is not None),
                     globs=tuple(sorted({r.pattern for r in rules if r.pattern is not None and not r.prompts_only})),
                     reason=f"the token's scope: {scope.describe()}", rule="token-scope")


def visible(policy: CompiledPolicy, subject: Subject, kind: ResourceKind,
            context: RequestContext = UNKNOWN_CONTEXT) -> ScopeSpec:
    """Which resources of ``kind`` the subject may READ, as sets a database query can apply.

    A scoped token's scope is returned as ``within`` (both must allow). Grants expired at
    ``context.now_ms`` take no part; the result holds until ``policy.next_expiry(now_ms)``.
    """
    if subject.kind == "anonymous":
        return ScopeSpec(reason="anonymous callers see nothing", rule="anonymous")
    token = _token_visibility(subject, kind)
    if isinstance(subject.token_scope, TokenScope) and check_request(
            subject.token_scope, _who(subject), client=context.client, workspace=context.workspace) is not None:
        return ScopeSpec(reason="the token is not good from here", rule="token-scope")
    if token is not None and not token.ids and not token.globs:
        return token  # nothing to intersect with: the token's scope shows nothing of this kind
    owner = _owner_visible(policy, subject, kind, context.now_ms)
    return owner if token is None else replace(owner, within=token)


def _owner_visible(policy: CompiledPolicy, subject: Subject, kind: ResourceKind, now_ms: int | None) -> ScopeSpec:
    if policy.is_admin(subject):
        return ScopeSpec(unrestricted=True, reason="administrators see everything", rule="admin")
    keys = policy.principal_keys(subject)
    denied_ids: set[str] = set()
    denied_globs: list[str] = []
    ids: set[str] = set()
    globs: list[str] = []
    denied_names: set[str] = set()
    best_by_id: dict[str, IndexedGrant] = {}
    best_by_name: dict[str, IndexedGrant] = {}
    def live(found):
        return {k: [g for g in gs if not g.grant.expired(now_ms)] for k, gs in found.items()}

    for key in keys:
        denies = policy.deny_index(key, kind)
        # Only a deny of READ hides; a deny of EDIT or MANAGE leaves the resource readable.
        denied_ids.update(rid for rid, gs in live(denies.by_id).items() if any(_hides(g) for g in gs))
        denied_names.update(name for name, gs in live(denies.by_name).items() if any(_hides(g) for g in gs))
        denied_globs.extend(g.grant.resource.pattern for g in denies.patterns
                            if _hides(g) and not g.grant.expired(now_ms))
        allows = policy.allow_index(key, kind)
        _keep_best(best_by_id, live(allows.by_id))
        if _name_grant_counts(subject, key):
            _keep_best(best_by_name, live(allows.by_name))
            globs.extend(g.grant.resource.pattern for g in allows.patterns if not g.grant.expired(now_ms))
    for rid, g in best_by_id.items():
        # A grant by id outranks every name, pattern and the default, so it alone settles that id.
        (ids if g.grant.permission >= Permission.READ else denied_ids).add(rid)
    # An exact name (model:<name>) outranks patterns and the default but yields to a grant by id.
    names = {n for n, g in best_by_name.items() if g.grant.permission >= Permission.READ}
    unrestricted = policy.default_permission >= Permission.READ
    return ScopeSpec(
        unrestricted=unrestricted,
        ids=frozenset(ids - denied_ids),
        globs=tuple(sorted(set(globs))),
        denied_ids=frozenset(denied_ids),
        denied_globs=tuple(sorted(set(denied_globs))),
        names=frozenset(names - denied_names),
        hidden_names=frozenset(set(best_by_name) - names),
        denied_names=frozenset(denied_names),
        reason=f"grants and denies of {_who(subject)} and its groups; default_permission "
               f"{policy.default_permission.name}",
        rule="visibility",
    )
