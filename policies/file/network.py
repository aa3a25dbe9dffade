"""The policy file's `network:` section (placeholder until its owner fills it in)."""

from pydantic import BaseModel, ConfigDict


class NetworkConfig(BaseModel):
    """The `network:` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)
