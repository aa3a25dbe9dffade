"""``mlgate audit``: read the audit trail: list, follow (tail) and export, with filters."""

from __future__ import annotations

import csv
import json
import re
import sys
import time
from datetime import UTC, datetime

import click

from gateway.commands.output import EXIT_ERROR, EXIT_USAGE, CliError, emit_json, emit_table, when
from gateway.commands.target import target_options

PAGE = 1000
_RELATIVE = re.compile(r"([0-9]+)([smhd])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
OUTCOMES = click.Choice(["success", "failure", "denied"])


def parse_time(text: str | None, now: float | None = None) -> int | None:
    """Epoch ms from ``30m``/``2h``/``7d`` (ago), an ISO date or time (UTC if no zone), or epoch ms."""
    if text is None:
        return None
    now = time.time() if now is None else now
    relative = _RELATIVE.fullmatch(text.strip())
    if relative:
        return int((now - int(relative.group(1)) * _SECONDS[relative.group(2)]) * 1000)
    if text.isdigit():
        return int(text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"Invalid time {text!r}: use 30m, 2h, 7d, 2026-01-31, 2026-01-31T12:00:00Z or epoch ms.",
                       EXIT_USAGE) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def filter_options(func):
    """--actor, --action, --outcome, --workspace, --since, --until."""
    for option in reversed((
        click.option("--actor", default=None, help="Who acted (a username, or user:/service: name)."),
        click.option("--action", default=None, help="e.g. login, grant, user.create, authorize."),
        click.option("--outcome", default=None, type=OUTCOMES),
        click.option("--workspace", default=None, help="Events of requests in this workspace."),
        click.option("--since", default=None, help="From this time: 30m, 2h, 7d, an ISO time, or epoch ms."),
        click.option("--until", default=None, help="Before this time (same forms as --since)."),
    )):
        func = option(func)
    return func


def _filters(actor, action, outcome, since, until, workspace=None) -> dict:
    return {"actor": actor, "action": action, "outcome": outcome, "since": parse_time(since),
            "until": parse_time(until), "workspace": workspace}


def _rows(records: list[dict]) -> list[tuple]:
    return [(r["id"], when(r["at"]), r["actor"], r.get("workspace") or "", r["action"], r["target"], r["outcome"],
             r["reason"]) for r in records]


_COLUMNS = ("id", "at", "actor", "workspace", "action", "target", "outcome", "reason")


@click.group()
def audit() -> None:
    """Read the audit trail. Example: mlgate audit list --outcome denied --since 1h"""


@audit.command("list")
@filter_options
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, PAGE), help="Newest N records.")
@target_options
def list_records(target, actor, action, outcome, workspace, since, until, limit) -> None:
    """Show the newest matching records, oldest first.

    Example: mlgate audit list --actor alice --action login --outcome failure --since 24h
    """
    records = target.ops().audit(limit=limit, **_filters(actor, action, outcome, since, until, workspace))
    if target.output == "json":
        emit_json({"records": records})
    else:
        emit_table(_COLUMNS, _rows(records))


@audit.command("tail")
@filter_options
@click.option("--lines", "-n", default=10, show_default=True, type=click.IntRange(0, PAGE),
              help="Show this many recent records first.")
@click.option("--interval", default=2.0, show_default=True, type=click.FloatRange(0.2, 3600),
              help="Seconds between polls.")
@click.option("--stop-after", default=None, type=click.IntRange(min=1),
              help="Exit after this many new records (for scripts waiting for an event).")
@target_options
def tail(target, actor, action, outcome, workspace, since, until, lines, interval, stop_after) -> None:
    """Follow the audit trail as records arrive (one JSON object per line with --output json). Ctrl-C stops.

    Example: mlgate audit tail --outcome denied
    """
    ops = target.ops()
    filters = _filters(actor, action, outcome, since, until, workspace)
    last_id = 0
    if lines:
        recent = ops.audit(limit=lines, **filters)
        _print_stream(target.output, recent)
        last_id = recent[-1]["id"] if recent else 0
    if last_id == 0:
        # Nothing shown: start after the newest record of all, not from the beginning of history.
        newest = ops.audit(limit=1)
        last_id = newest[-1]["id"] if newest else 0
    seen = 0
    try:
        while stop_after is None or seen < stop_after:
            new = ops.audit(after_id=last_id, limit=PAGE, **filters)
            if stop_after is not None:
                new = new[: stop_after - seen]
            _print_stream(target.output, new)
            seen += len(new)
            if new:
                last_id = new[-1]["id"]
                continue
            time.sleep(interval)
    except KeyboardInterrupt:
        pass


def _print_stream(output: str, records: list[dict]) -> None:
    for r in records:
        if output == "json":
            click.echo(json.dumps(r, sort_keys=True))
        else:
            click.echo("  ".join(str(c) if c is not None else "-" for c in _rows([r])[0]))


@audit.command("export")
@filter_options
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
@target_options
def export(target, actor, action, outcome, workspace, since, until, fmt) -> None:
    """Write every matching record, oldest first, to stdout (paged, so any size works).

    Example: mlgate audit export --since 2026-01-01 --format csv > audit.csv
    """
    ops = target.ops()
    filters = _filters(actor, action, outcome, since, until, workspace)
    writer = csv.writer(sys.stdout) if fmt == "csv" else None
    if writer:
        writer.writerow(("id", "at", "actor", "action", "target", "client_address", "outcome", "reason", "workspace"))
    last_id = 0
    for _ in range(10_000_000 // PAGE):  # bounded: ten million records
        page = ops.audit(after_id=last_id, limit=PAGE, **filters)
        for r in page:
            if writer:
                writer.writerow((r["id"], r["at"], r["actor"], r["action"], r["target"], r["client_address"],
                                 r["outcome"], r["reason"], r.get("workspace")))
            else:
                click.echo(json.dumps(r, sort_keys=True))
        if len(page) < PAGE:
            break
        last_id = page[-1]["id"]


@audit.command("verify")
@target_options
def verify(target) -> None:
    """Prove the audit log unaltered, or name the first record that was edited, deleted or reordered.

    Exits 1 when the chain is broken. Example: mlgate audit verify --db postgresql://.../mlgate
    """
    result = target.ops().verify_audit()
    if target.output == "json":
        emit_json(result)
    elif result["ok"]:
        click.echo(f"OK: {result['checked']} chained record(s) verified; head {result['head_hash']}"
                   + (f" ({result['unchained']} older record(s) predate the chain)" if result["unchained"] else ""))
    if not result["ok"]:
        raise CliError(f"BROKEN at record {result['first_bad_id']}: {result['problem']} "
                       f"({result['checked']} record(s) verified before it)", EXIT_ERROR)
