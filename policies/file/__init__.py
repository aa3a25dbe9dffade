"""The policy file (placeholder: the policies owner replaces this with the full schema and loader)."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError


class PolicyFileError(Exception):
    """The policy file is invalid; ``problems`` lists every problem, each naming its key path."""

    def __init__(self, problems: list[str]):
        super().__init__("invalid policy file:\n" + "\n".join(f"  - {p}" for p in problems))
        self.problems = problems


class PolicyFile(BaseModel):
    """The whole declarative policy file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = 1
    network: dict = {}
    auth: dict = {}
    access: dict = {}


def load_policy_file(path: str | Path) -> PolicyFile:
    """Read, parse and validate a policy file, listing every problem found."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise PolicyFileError([f"{path}: {exc}"]) from exc
    try:
        return PolicyFile.model_validate(data)
    except ValidationError as exc:
        raise PolicyFileError(
            [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        ) from exc
