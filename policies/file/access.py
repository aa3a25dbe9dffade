"""The policy file's ``access:`` section: who may do what to which experiments and models."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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
    expires_at: datetime | None = Field(
        default=None, description="when the grant stops applying: an ISO 8601 time with a time zone "
                                  "(2026-12-31T18:00:00Z); every server process stops honouring it at that second")

    @field_validator("expires_at")
    @classmethod
    def _zoned(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a time zone (e.g. 2026-12-31T18:00:00Z): a bare time is ambiguous")
        return value

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


class ConditionEntry(BaseModel):
    """Only ``only`` may do ``permission`` or more on ``resource`` when the resource carries ``tags`` (all of
    them) or the request names a model ``alias`` matching the glob. Conditions subtract; grants add: a
    principal in ``only`` still needs a grant."""

    model_config = _STRICT

    resource: ResourceText
    alias: GlobText | None = Field(default=None, description="a model alias glob the request names (set, delete "
                                                             "or read an alias)")
    tags: dict[NameText, str] | None = Field(default=None, description="tags the resource must carry (exact "
                                                                       "values) for the condition to apply")
    permission: DenyLevelName = Field(default="EDIT", description="the lowest level the condition restricts")
    only: list[PrincipalText] = Field(description="who may still act at that level (through their grants)")

    @model_validator(mode="after")
    def _what(self) -> ConditionEntry:
        if (self.alias is None) == (self.tags is None):
            raise ValueError("give exactly one of alias and tags")
        if self.tags is not None and not self.tags:
            raise ValueError("tags must name at least one tag")
        if self.alias is not None and ResourceSelector.parse(self.resource).kind.value != "registered_model":
            raise ValueError("an alias condition applies to registered models (model:<name> or model-name:<glob>)")
        if self.tags is not None and self.permission == "READ":
            # Searches are filtered in SQL by id and name; a READ condition on tags could not hide the resource
            # there, so it would leak in listings. Refused until visibility scopes carry tag conditions.
            raise ValueError("a tag condition restricts EDIT or MANAGE (READ on tags is not supported yet)")
        return self


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
    conditions: list[ConditionEntry] = Field(default_factory=list)

    def file_grants(self) -> list[Grant]:
        """The grants and denies of this section as domain values, each citing its entry."""
        out = [
            Grant(SubjectRef.parse(g.principal), ResourceSelector.parse(g.resource), Permission[g.permission],
                  "file", f"access.grants[{i}]",
                  expires_at=None if g.expires_at is None else int(g.expires_at.timestamp() * 1000))
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
