"""The whole policy file: ``version``, ``network:``, ``auth:``, ``access:``, ``audit:``, ``workspaces:`` and
``workspace_templates:``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from policies.file.access import AccessConfig
from policies.file.audit import AuditConfig
from policies.file.auth import AuthConfig
from policies.file.network import NetworkConfig
from policies.file.workspaces import Workspaces, WorkspaceTemplate

SUPPORTED_VERSION = 1


class PolicyFile(BaseModel):
    """The declarative policy file; every section is optional and defaults to the secure choice."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="mlgate policy file")

    version: int = Field(default=SUPPORTED_VERSION, description="the file format version")
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    access: AccessConfig = Field(default_factory=AccessConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    workspaces: Workspaces | None = Field(
        None, description="workspaces by name, with their roles; left out: `policy apply` keeps the stored ones")
    workspace_templates: list[WorkspaceTemplate] = Field(
        default_factory=list, description="a workspace for every group whose name matches a template's glob")

    @field_validator("version", mode="before")
    @classmethod
    def _known_version(cls, value: Any) -> int:
        if value != SUPPORTED_VERSION or isinstance(value, bool):
            raise ValueError(f"{value!r} is not supported (this mlgate reads version {SUPPORTED_VERSION})")
        return value
