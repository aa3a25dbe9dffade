"""The policy file's ``access:`` section: who may do what to which experiments and models."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from policies.file.fields import (
    CreatorText,
    DenyLevelName,
    GlobText,
    MemberText,
    Mode,
    NameText,
    PermissionName,
    PrincipalText,
    ResourceText,
)
from policies.model import Grant, Permission, ResourceSelector, SubjectRef

_STRICT = ConfigDict(extra="forbid", frozen=True)


class GrantEntry(BaseModel):
    """``principal`` holds ``permission`` on ``resource`` (one resource by id, or by name glob)."""

    model_config = _STRICT

    principal: PrincipalText
    resource: ResourceText
    permission: PermissionName

    @model_validator(mode="after")
    def _pattern_needs_a_level(self) -> GrantEntry:
        if self.permission == "NO_PERMISSIONS" and ResourceSelector.parse(self.resource).pattern is not None:
            raise ValueError("NO_PERMISSIONS cannot be granted on a name pattern; use access.denies to exclude "
                             "resources")
        return self


class DenyEntry(BaseModel):
    """``principal`` may never hold ``permission`` or more on ``resource``, whatever else grants it."""

    model_config = _STRICT

    principal: PrincipalText
    resource: ResourceText
    permission: DenyLevelName = Field(default="READ", description="the lowest level vetoed (READ: all access)")


class CreateRule(BaseModel):
    """``principal`` may create resources whose name matches ``name``."""

    model_config = _STRICT

    principal: CreatorText
    name: GlobText = "*"


class CreateRules(BaseModel):
    """Who may create experiments and registered models.

    A list left out means any signed-in principal may create (MLflow's behaviour), except under a
    name some grant names (a pattern or ``model:<name>``), where EDIT through such a grant is needed
    (``decide`` step 7, ``create-claimed``); a list given, even empty, means only its rules (and
    admins) may.
    """

    model_config = _STRICT

    experiments: list[CreateRule] | None = None
    models: list[CreateRule] | None = None


class AccessConfig(BaseModel):
    """The ``access:`` section."""

    model_config = _STRICT

    mode: Mode = Field(default="authoritative",
                       description="authoritative: API grants that conflict with this file are refused")
    default_permission: PermissionName = Field(default="NO_PERMISSIONS",
                                               description="what a signed-in principal holds without any grant")
    admins: list[MemberText] = Field(default_factory=list, description="usernames (or service:<name>) that bypass")
    groups: dict[NameText, list[MemberText]] = Field(default_factory=dict)
    grants: list[GrantEntry] = Field(default_factory=list)
    denies: list[DenyEntry] = Field(default_factory=list)
    create: CreateRules = Field(default_factory=CreateRules)

    def file_grants(self) -> list[Grant]:
        """The grants and denies of this section as domain values, each citing its entry."""
        out = [
            Grant(SubjectRef.parse(g.principal), ResourceSelector.parse(g.resource), Permission[g.permission],
                  "file", f"access.grants[{i}]")
            for i, g in enumerate(self.grants)
        ]
        out.extend(
            Grant(SubjectRef.parse(d.principal), ResourceSelector.parse(d.resource), Permission[d.permission],
                  "file", f"access.denies[{i}]", "deny")
            for i, d in enumerate(self.denies)
        )
        return out


def access_problems(access: AccessConfig) -> list[str]:
    """Problems that span entries (duplicates), which per-field validation cannot see."""
    problems = []
    for section in ("grants", "denies"):
        seen: dict[tuple[str, str], int] = {}
        for i, entry in enumerate(getattr(access, section)):
            key = (entry.principal, entry.resource)
            if key in seen:
                problems.append(f"access.{section}[{i}]: repeats principal {entry.principal} and resource "
                                f"{entry.resource} of access.{section}[{seen[key]}]")
            else:
                seen[key] = i
    for name, members in access.groups.items():
        seen_members: set[str] = set()
        for i, member in enumerate(members):
            if member in seen_members:
                problems.append(f"access.groups.{name}[{i}]: {member} is listed twice")
            seen_members.add(member)
    return problems
