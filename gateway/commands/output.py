"""How admin commands answer: tables for people, ``--output json`` for scripts, and exit codes scripts rely on.

Exit codes: 0 ok, 1 error, 2 usage (click's own), 3 not found, 4 denied (not signed in or not allowed).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import click

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_DENIED = 4

# Server (MLflow) error codes -> exit codes; anything else is a plain error.
_EXIT_BY_ERROR_CODE = {
    "RESOURCE_DOES_NOT_EXIST": EXIT_NOT_FOUND,
    "PERMISSION_DENIED": EXIT_DENIED,
    "UNAUTHENTICATED": EXIT_DENIED,
}
_NEXT_STEP = {
    "UNAUTHENTICATED": "Sign in with `mlgate login --server URL`, or set MLGATE_TOKEN to an administrator's token.",
    "PERMISSION_DENIED": "This command needs an administrator: use an admin's token (mlgate login as an admin).",
}


class CliError(click.ClickException):
    """A failure shown as ``mlgate: <message>`` on stderr with a meaningful exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR):
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file=None) -> None:
        """Print the message (click calls this before exiting with ``exit_code``)."""
        click.echo(f"mlgate: {self.message}", err=True)


def error_from_code(error_code: str, message: str) -> CliError:
    """The CliError for a server or domain error code, with the next step to take."""
    hint = _NEXT_STEP.get(error_code)
    text = f"{message.rstrip('.')}. {hint}" if hint else message
    return CliError(text, _EXIT_BY_ERROR_CODE.get(error_code, EXIT_ERROR))


def emit_json(data: object) -> None:
    """Print ``data`` as JSON (stable field names, sorted keys)."""
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def when(ms: int | None) -> str:
    """An epoch-millisecond time as UTC text for tables."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value) or "-"
    return str(value).replace("\n", " ")


def emit_table(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Print rows under upper-case headers, columns padded to their widest cell."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def emit(output: str, data: dict, text: str | None = None) -> None:
    """Print a command's result: ``data`` as JSON, or the one-line ``text`` for people."""
    if output == "json":
        emit_json(data)
    elif text is not None:
        click.echo(text)
