"""The policy file's ``workspaces:`` and ``workspace_templates:`` sections: MLflow 3 workspaces, their roles
and role members, declared as data.

A declared role is the same thing as one made through MLflow's roles API (auth/roles.py): ``mlgate policy
apply`` stores it, its permissions become grants to the group ``role@<id>``, and its members carry that
group only in requests for its workspace. So there is one ``decide()`` and one audit, and ``policy test``
decides a case named in a workspace the same way (with the group ``role@<workspace>/<role>``, since a
file has no role ids).

A template gives every group whose name matches its ``group`` glob (an mlgate group, or an identity
provider's group as the OIDC group mapping names it) a workspace of the same name, with the template's
roles; ``{group}`` in a role member or resource pattern stands for that group's name.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

from policies.file.fields import GlobText, shown
from policies.glob import glob_matches
from policies.model import Grant, Permission, ResourceSelector, SubjectRef

DEFAULT_WORKSPACE = "default"
ROLE_GROUP_PREFIX = "role@"
GROUP_PLACEHOLDER = "{group}"
# MLflow's rule (mlflow.store.workspace.abstract_store.WorkspaceNameValidator), Kubernetes-style names.
WORKSPACE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
RESERVED_WORKSPACE_NAMES = frozenset({"workspaces", "api", "ajax-api", "static-files"})
# MLflow's role resource types that mlgate serves; prompts are registered models here.
ROLE_RESOURCE_TYPES = ("experiment", "registered_model", "prompt", "workspace")
# MLflow's role permissions; USE is READ on a resource (mlgate has no separate "use" level).
ROLE_RESOURCE_PERMISSIONS = {"READ": "READ", "USE": "READ", "EDIT": "EDIT", "MANAGE": "MANAGE"}
ROLE_WORKSPACE_PERMISSIONS = ("USE", "MANAGE")

_STRICT = ConfigDict(extra="forbid", frozen=True)


def workspace_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a workspace's name (MLflow's rule), or None."""
    if not 2 <= len(name) <= 63:
        return f"Workspace name '{name[:80]}' must be between 2 and 63 characters."
    if not WORKSPACE_NAME.fullmatch(name):
        return (f"Workspace name '{name}' must match the pattern {WORKSPACE_NAME.pattern} "
                "(lowercase alphanumeric with optional internal hyphens).")
    if name in RESERVED_WORKSPACE_NAMES:
        return f"Workspace name '{name}' is reserved."
    return None


def role_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a role's name, or None."""
    if not name or len(name) > 255 or any(ord(c) < 32 for c in name):
        return "Role name must be 1-255 printable characters."
    return None


def role_permission_problem(resource_type: str, pattern: str, permission: str) -> str | None:
    """Why a role cannot hold ``permission`` on ``resource_type`` resources matching ``pattern``, or None.

    The one rule set for the roles API and the policy file.
    """
    if resource_type not in ROLE_RESOURCE_TYPES:
        return f"Invalid resource_type '{resource_type}'. Supported: {', '.join(ROLE_RESOURCE_TYPES)}."
    if not pattern or any(ord(c) < 32 for c in pattern) or len(pattern) > 500:
        return "resource_pattern must be 1-500 printable characters."
    if resource_type == "workspace":
        if pattern != "*":
            return "A workspace permission accepts only the resource_pattern '*'."
        if permission not in ROLE_WORKSPACE_PERMISSIONS:
            return "A workspace permission is USE or MANAGE."
        return None
    if permission == "DENY":
        return "DENY role permissions are not supported by mlgate yet; remove the allowing permission."
    if permission not in ROLE_RESOURCE_PERMISSIONS:
        return f"Invalid permission '{permission}'. Use READ, USE, EDIT or MANAGE."
    return None


def role_selector(resource_type: str, pattern: str) -> str:
    """The grant selector a (valid, non-workspace) role permission compiles to."""
    glob = pattern == "*" or any(c in pattern for c in "*?")
    if resource_type == "experiment":
        if not glob and pattern.isascii() and pattern.isdigit():
            return f"experiment:{pattern}"
        return f"experiment-name:{pattern}"
    return f"model-name:{pattern}" if glob else f"model:{pattern}"


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{shown(value)} is not a string")
    return value


def _workspace_name(value: str) -> str:
    problem = None if value == DEFAULT_WORKSPACE else workspace_name_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _role_name(value: str) -> str:
    problem = role_name_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _role_member(value: str) -> str:
    # A bare name is a user, as in access.groups; groups and service accounts are written with their kind.
    ref = SubjectRef.parse(value if ":" in value else f"user:{value}")
    if ref.kind == "group" and ref.name.startswith(ROLE_GROUP_PREFIX):
        raise ValueError(f"{shown(value)}: a role cannot be assigned to another role's group")
    return ref.key


WorkspaceNameText = Annotated[
    str, BeforeValidator(_string), AfterValidator(_workspace_name),
    WithJsonSchema({"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "minLength": 2,
                    "maxLength": 63, "description": "a workspace name (MLflow's rule)"}),
]
RoleNameText = Annotated[
    str, BeforeValidator(_string), AfterValidator(_role_name),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 255}),
]
RoleMemberText = Annotated[
    str, BeforeValidator(_string), AfterValidator(_role_member),
    WithJsonSchema({"type": "string", "pattern": r"^((user|group|service):)?[^\s:]+$",
                    "description": "a username, or user:<name>, group:<name>, service:<name>"}),
]


class RolePermissionEntry(BaseModel):
    """One permission of a role, as MLflow's ``add_role_permission`` takes it."""

    model_config = _STRICT

    resource_type: str = Field(description="experiment, registered_model, prompt or workspace")
    resource_pattern: str = Field("*", description="*, a name glob, an experiment id, or a model name")
    permission: str = Field(description="READ, USE, EDIT or MANAGE (workspace: USE or MANAGE)")

    @model_validator(mode="after")
    def _valid(self) -> RolePermissionEntry:
        # {group} (in a template) is checked as the name it will be replaced by.
        problem = role_permission_problem(self.resource_type, self.resource_pattern.replace(GROUP_PLACEHOLDER, "g"),
                                          self.permission)
        if problem:
            raise ValueError(problem)
        return self


class RoleEntry(BaseModel):
    """A role: its permissions and who holds it."""

    model_config = _STRICT

    description: str | None = Field(None, max_length=5000)
    permissions: list[RolePermissionEntry] = Field(default_factory=list)
    members: list[RoleMemberText] = Field(default_factory=list,
                                          description="usernames, user:, service: or group: references")


def _none_is_empty(value: Any) -> Any:
    return {} if value is None else value


class WorkspaceEntry(BaseModel):
    """One workspace. ``roles`` left out: its stored roles are kept as they are (its workspace administrators
    manage them); given, even empty: the workspace has exactly these roles."""

    model_config = _STRICT

    description: str | None = Field(None, max_length=5000)
    roles: dict[RoleNameText, RoleEntry] | None = None


class WorkspaceTemplate(BaseModel):
    """Every group whose name matches ``group`` gets a workspace of that name with these roles."""

    model_config = _STRICT

    group: GlobText = Field(description="a group name glob, e.g. team-*")
    description: str | None = Field(None, max_length=5000, description="{group} stands for the group's name")
    roles: dict[RoleNameText, RoleEntry] = Field(default_factory=dict)


Workspaces = dict[WorkspaceNameText, Annotated[WorkspaceEntry, BeforeValidator(_none_is_empty)]]


def _fill(text: str, group: str) -> str:
    return text.replace(GROUP_PLACEHOLDER, group)


def instantiate(template: WorkspaceTemplate, group: str) -> WorkspaceEntry:
    """The workspace ``template`` gives the group ``group``."""
    roles = {
        name: RoleEntry(
            description=role.description,
            permissions=[RolePermissionEntry(resource_type=p.resource_type,
                                             resource_pattern=_fill(p.resource_pattern, group),
                                             permission=p.permission) for p in role.permissions],
            members=[_fill(m, group) for m in role.members])
        for name, role in template.roles.items()}
    description = _fill(template.description, group) if template.description is not None else None
    return WorkspaceEntry(description=description, roles=roles)


def expand_workspaces(declared: dict[str, WorkspaceEntry] | None, templates: list[WorkspaceTemplate],
                      groups: set[str] | frozenset[str]) -> dict[str, WorkspaceEntry]:
    """Declared workspaces plus one per group a template matches (a declared workspace wins over a template,
    an earlier template over a later; a group whose name cannot be a workspace's gets none)."""
    out = dict(declared or {})
    for template in templates:
        for group in sorted(groups):
            if group in out or group == DEFAULT_WORKSPACE or workspace_name_problem(group) is not None:
                continue
            if glob_matches(template.group, group):
                out[group] = instantiate(template, group)
    return out


def template_for(templates: list[WorkspaceTemplate], name: str) -> WorkspaceTemplate | None:
    """The first template whose group glob matches ``name`` (a workspace it would make)."""
    if name == DEFAULT_WORKSPACE or workspace_name_problem(name) is not None:
        return None
    return next((t for t in templates if glob_matches(t.group, name)), None)


def _role_problems(where: str, role: RoleEntry) -> list[str]:
    problems = []
    seen: dict[tuple[str, str], int] = {}
    for i, p in enumerate(role.permissions):
        key = (p.resource_type, p.resource_pattern)
        if key in seen:
            problems.append(f"{where}.permissions[{i}]: repeats resource_type {p.resource_type} and "
                            f"resource_pattern {p.resource_pattern} of permissions[{seen[key]}]")
        else:
            seen[key] = i
    members: set[str] = set()
    for i, member in enumerate(role.members):
        if member in members:
            problems.append(f"{where}.members[{i}]: {member} is listed twice")
        members.add(member)
    return problems


def workspace_problems(declared: dict[str, WorkspaceEntry] | None, templates: list[WorkspaceTemplate]) -> list[str]:
    """Problems that span entries (repeated permissions, members, templates), which per-field validation
    cannot see."""
    problems = []
    for name, workspace in (declared or {}).items():
        for role_name, role in (workspace.roles or {}).items():
            problems += _role_problems(f"workspaces.{name}.roles.{role_name}", role)
    globs: dict[str, int] = {}
    for i, template in enumerate(templates):
        if template.group in globs:
            problems.append(f"workspace_templates[{i}].group: repeats {template.group} of "
                            f"workspace_templates[{globs[template.group]}]")
        globs.setdefault(template.group, i)
        for role_name, role in template.roles.items():
            problems += _role_problems(f"workspace_templates[{i}].roles.{role_name}", role)
    return problems


def file_role_group(workspace: str, role: str) -> str:
    """The group a declared role's members carry when a policy test decides in its workspace."""
    return f"{ROLE_GROUP_PREFIX}{workspace}/{role}"


def role_grants(workspaces: dict[str, WorkspaceEntry], where: dict[str, str]) -> list[Grant]:
    """The grants the declared roles' permissions become, each citing its entry (``where``: workspace ->
    the key path of its declaration)."""
    out = []
    for name, workspace in workspaces.items():
        for role_name, role in (workspace.roles or {}).items():
            group = SubjectRef("group", file_role_group(name, role_name))
            for i, p in enumerate(role.permissions):
                if p.resource_type == "workspace":
                    continue
                selector = ResourceSelector.parse(role_selector(p.resource_type, p.resource_pattern))
                out.append(Grant(group, selector, Permission[ROLE_RESOURCE_PERMISSIONS[p.permission]], "file",
                                 f"{where[name]}.roles.{role_name}.permissions[{i}]"))
    return out
