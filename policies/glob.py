"""Name globs for grants: ``*`` matches any run of characters (``/`` included), ``?`` exactly one.

The same two wildcards are all that SQL ``LIKE`` offers (``%``, ``_``), so a visibility scope built
from these globs selects in the database exactly what :func:`glob_matches` selects here. Bracket
classes are refused rather than interpreted, because ``fnmatch`` and ``LIKE`` disagree about them.
"""

from __future__ import annotations

import re
from functools import lru_cache

WILDCARDS = "*?"
MAX_PATTERN_LENGTH = 500


def check_pattern(pattern: str) -> None:
    """Raise ValueError if ``pattern`` is not a glob this module supports."""
    if not pattern:
        raise ValueError("a name pattern must not be empty")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ValueError(f"a name pattern is at most {MAX_PATTERN_LENGTH} characters")
    if "[" in pattern or "]" in pattern:
        raise ValueError(f"{pattern!r}: '[' and ']' are not supported in name patterns (only '*' and '?')")


@lru_cache(maxsize=4096)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """The anchored regular expression equivalent to ``pattern``."""
    parts = []
    for ch in pattern:
        if ch == "*":
            parts.append(".*")
        elif ch == "?":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts), re.DOTALL)


def glob_matches(pattern: str, name: str) -> bool:
    """Whether the whole of ``name`` matches ``pattern`` (case-sensitive, like MLflow names)."""
    return compile_glob(pattern).fullmatch(name) is not None


def specificity(pattern: str) -> tuple[int, int]:
    """How specific a glob is: (length of its literal prefix, number of literal characters).

    The longer literal prefix wins (``team-a/prod/*`` over ``team-a/*``); the literal count breaks
    ties between patterns sharing a prefix (``team-a/*-prod`` over ``team-a/*``).
    """
    prefix = len(pattern)
    for i, ch in enumerate(pattern):
        if ch in WILDCARDS:
            prefix = i
            break
    literal = sum(1 for ch in pattern if ch not in WILDCARDS)
    return prefix, literal
