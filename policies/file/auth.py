"""The policy file's `auth:` section (placeholder until its owner fills it in)."""

from pydantic import BaseModel, ConfigDict


class AuthConfig(BaseModel):
    """The `auth:` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)
