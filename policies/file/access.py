"""The policy file's `access:` section (placeholder until its owner fills it in)."""

from pydantic import BaseModel, ConfigDict


class AccessConfig(BaseModel):
    """The `access:` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)
