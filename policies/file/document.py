"""The whole policy file: ``version``, ``network:``, ``auth:`` and ``access:``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from policies.file.access import AccessConfig
from policies.file.auth import AuthConfig
from policies.file.network import NetworkConfig

SUPPORTED_VERSION = 1


class PolicyFile(BaseModel):
    """The declarative policy file; every section is optional and defaults to the secure choice."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="mlgate policy file")

    version: int = Field(default=SUPPORTED_VERSION, description="the file format version")
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    access: AccessConfig = Field(default_factory=AccessConfig)

    @field_validator("version", mode="before")
    @classmethod
    def _known_version(cls, value: Any) -> int:
        if value != SUPPORTED_VERSION or isinstance(value, bool):
            raise ValueError(f"{value!r} is not supported (this mlgate reads version {SUPPORTED_VERSION})")
        return value
