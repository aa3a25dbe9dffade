"""``${ENV_VAR}`` references: the only way a secret enters the policy file.

``${NAME}`` is replaced by the variable's value wherever a string value holds it; ``$$`` stands for
a literal ``$``. A variable that is not set is a problem, not an empty string, so a typo cannot
silently disable a secret.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from policies.file.problems import format_path

_REFERENCE = re.compile(r"\$(\$|\{([^}]*)\}|\{)")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
WHOLE_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")


def substitute(data: Any, environ: Mapping[str, str], path: tuple = ()) -> tuple[Any, list[str]]:
    """A copy of ``data`` with references in string values replaced, and the problems found."""
    problems: list[str] = []
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            out[key], found = substitute(value, environ, (*path, key))
            problems.extend(found)
        return out, problems
    if isinstance(data, list):
        items = []
        for i, value in enumerate(data):
            item, found = substitute(value, environ, (*path, i))
            items.append(item)
            problems.extend(found)
        return items, problems
    if isinstance(data, str):
        return _substitute_string(data, environ, format_path(path), problems), problems
    return data, problems


def _substitute_string(text: str, environ: Mapping[str, str], where: str, problems: list[str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(1) == "$":
            return "$"
        name = match.group(2)
        if name is None:
            problems.append(f"{where}: unterminated '${{' (write '$$' for a literal '$')")
            return match.group(0)
        if not _VARIABLE.fullmatch(name):
            problems.append(f"{where}: {name!r} is not a valid environment variable name")
            return match.group(0)
        if name not in environ:
            problems.append(f"{where}: environment variable {name} is not set")
            return match.group(0)
        return environ[name]

    return _REFERENCE.sub(replace, text)
