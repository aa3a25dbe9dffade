"""Turn validation errors into one-line problems, each starting with the key path it concerns."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")

# Short, stable wording for pydantic's structural errors; value errors carry our own messages.
_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "is not a known key",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "dict_type": "must be a mapping",
    "list_type": "must be a list",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
}


class PolicyFileError(Exception):
    """The policy file is invalid; ``problems`` lists every problem, each naming its key path."""

    def __init__(self, problems: list[str]):
        super().__init__("invalid policy file:\n" + "\n".join(f"  - {p}" for p in problems))
        self.problems = problems


def format_path(loc: Iterable[Any]) -> str:
    """``('access', 'grants', 3, 'permission')`` -> ``access.grants[3].permission``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":
            out += " (key)"
        elif isinstance(part, str) and _IDENTIFIER.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{str(part)!r}]"
    return out or "(top level)"


def validation_problems(exc: ValidationError, prefix: tuple = ()) -> list[str]:
    """One problem per pydantic error, in document order."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        kind = error["type"]
        message = str(error["ctx"]["error"]) if kind == "value_error" else _MESSAGES.get(kind, error["msg"])
        problems.append(f"{format_path(prefix + tuple(error['loc']))}: {message}")
    return problems
