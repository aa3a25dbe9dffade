"""``mlgate audit``: read the audit trail (list, tail, export), verify it, sign checkpoints, prune, keygen."""

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


def _signer(path: str | None):
    if path is None:
        return None
    from auth.audit_checkpoints import CheckpointKeyError, load_private_key_file

    try:
        return load_private_key_file(path)
    except CheckpointKeyError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


def _verifier(paths: tuple[str, ...]):
    if not paths:
        return None
    from auth.audit_checkpoints import CheckpointKeyError, CheckpointVerifier, load_public_key

    keys = []
    for path in paths:
        try:
            with open(path, "rb") as handle:
                keys.append(load_public_key(handle.read(), path))
        except OSError as exc:
            raise CliError(f"{path}: cannot read the public key ({exc.strerror or exc})", EXIT_USAGE) from None
        except CheckpointKeyError as exc:
            raise CliError(str(exc), EXIT_USAGE) from None
    return CheckpointVerifier(keys)


def read_checkpoints(paths: tuple[str, ...]) -> list:
    """Checkpoints from files of JSON lines: the checkpoint file, `mlgate audit checkpoints -o json`, or the
    SIEM export (its ``audit.checkpoint`` events); other lines (audit records) are skipped."""
    from auth.audit_checkpoints import Checkpoint

    found = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as handle:
                lines = handle.readlines()
        except OSError as exc:
            raise CliError(f"{path}: cannot read ({exc.strerror or exc})", EXIT_USAGE) from None
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                if isinstance(data, dict) and "signature" not in data:
                    data = (data.get("mlgate") or {}).get("checkpoint")
                if isinstance(data, dict):
                    found.append(Checkpoint.from_json(data))
            except ValueError as exc:
                raise CliError(f"{path}:{number}: {exc}", EXIT_USAGE) from None
    return found


_SIGNING_KEY = click.option("--signing-key-file", default=None, envvar="MLGATE_AUDIT_SIGNING_KEY_FILE",
                            metavar="FILE", help="Offline (--db): the Ed25519 private key the server signs with.")
_CHECKPOINT_FILE = click.option("--checkpoint-file", default=None, metavar="FILE",
                                help="Offline (--db): also append the checkpoint to this file of JSON lines.")


@audit.command("verify")
@click.option("--public-key", "public_keys", multiple=True, metavar="FILE",
              help="Offline (--db): check checkpoints against this Ed25519 public key (repeat after a rotation).")
@click.option("--checkpoints", "checkpoint_files", multiple=True, metavar="FILE",
              help="Offline (--db): also check these exported checkpoints (JSON lines kept off-host).")
@target_options
def verify(target, public_keys, checkpoint_files) -> None:
    """Prove the audit log unaltered, or name the first record that was edited, deleted or reordered.

    With --public-key, signed checkpoints also prove that no record up to the newest one was cut off the end
    (records after it rest on the hashes alone). Exits 1 when the chain is broken.
    Example: mlgate audit verify --db postgresql://.../mlgate --public-key audit.pub --checkpoints cp.jsonl
    """
    if (public_keys or checkpoint_files) and not target.offline:
        raise CliError("--public-key and --checkpoints verify the database itself (a server could answer "
                       "anything): use --db URI", EXIT_USAGE)
    if target.offline:
        result = target.ops().verify_audit(_verifier(public_keys), read_checkpoints(checkpoint_files))
    else:
        result = target.ops().verify_audit()
    if target.output == "json":
        emit_json(result)
    elif result["ok"]:
        anchored = f", starting after pruned record {result['anchor_id']}" if result.get("anchor_id") else ""
        click.echo(f"OK: {result['checked']} chained record(s) verified{anchored}; head {result['head_hash']}"
                   + (f" ({result['unchained']} older record(s) predate the chain)" if result["unchained"] else ""))
        if result.get("last_checkpoint_id") is not None:
            how = "signed" if result.get("signatures_checked") else "stored (signatures NOT checked: pass " \
                                                                      "--public-key)"
            click.echo(f"  {result['checkpoints_matched']} {how} checkpoint(s) match; records after "
                       f"{result['last_checkpoint_id']} are covered by the hashes only")
        else:
            click.echo("  no checkpoint matched: records cut off the end would go unnoticed")
        for note in result.get("notes") or ():
            click.echo(f"  note: {note}")
    if not result["ok"]:
        raise CliError(f"BROKEN at record {result['first_bad_id']}: {result['problem']} "
                       f"({result['checked']} record(s) verified before it)", EXIT_ERROR)


@audit.command("checkpoint")
@_SIGNING_KEY
@_CHECKPOINT_FILE
@target_options
def checkpoint(target, signing_key_file, checkpoint_file) -> None:
    """Verify the records since the last checkpoint and sign the chain's head now.

    Example: mlgate audit checkpoint  (the server signs with its key)
    """
    if target.offline:
        signed = target.ops().audit_checkpoint(_signer(signing_key_file), checkpoint_file)
    else:
        signed = target.ops().audit_checkpoint()
    if target.output == "json":
        emit_json({"checkpoint": signed})
    elif signed is None:
        click.echo("Nothing to sign: the audit log is empty.")
    else:
        click.echo(f"Signed record {signed['seq']} (position {signed['count']}, hash {signed['hash']}) with key "
                   f"{signed['key_id']}")


@audit.command("checkpoints")
@click.option("--after-id", default=0, type=click.IntRange(min=0), help="Only checkpoints after this row id.")
@target_options
def checkpoints(target, after_id) -> None:
    """Print the stored checkpoints (one JSON object per line with -o json: keep them off-host).

    Example: mlgate audit checkpoints -o json >> /mnt/worm/mlgate-checkpoints.jsonl
    """
    ops = target.ops()
    while True:
        page = ops.audit_checkpoints(after_id=after_id, limit=PAGE)
        for row in page:
            if target.output == "json":
                click.echo(json.dumps({k: v for k, v in row.items() if k != "id"}, sort_keys=True))
            else:
                click.echo(f"{row['seq']}  {when(row['at'])}  {row['kind']}  key {row['key_id']}  {row['hash']}")
        if len(page) < PAGE:
            break
        after_id = page[-1]["id"]


@audit.command("prune")
@click.option("--older-than-days", default=None, type=click.IntRange(1, 36_500),
              help="Delete records older than this (default on a server: its audit.retention_days, which is "
                   "also the shortest a server accepts; a server without one prunes nothing).")
@_SIGNING_KEY
@_CHECKPOINT_FILE
@target_options
def prune(target, older_than_days, signing_key_file, checkpoint_file) -> None:
    """Delete old records after verifying them; a signed checkpoint anchors the log's new start and the
    prune itself is audited.

    Example: mlgate audit prune --older-than-days 365
    """
    if target.offline:
        if older_than_days is None:
            raise CliError("--older-than-days is required with --db", EXIT_USAGE)
        result = target.ops().prune_audit(older_than_days, _signer(signing_key_file), checkpoint_file)
    else:
        result = target.ops().prune_audit(older_than_days)
    if target.output == "json":
        emit_json(result)
    elif not result["pruned"]:
        click.echo("Nothing to prune.")
    else:
        click.echo(f"Pruned {result['pruned']} record(s) ({result['first_id']}..{result['last_id']}); the log now "
                   f"starts after record {result['last_id']}, anchored by a checkpoint signed with key "
                   f"{result['anchor']['key_id']}")


@audit.command("keygen")
@click.option("--private-key", "private_path", required=True, metavar="FILE",
              help="Where to write the signing key (created 0600; keep it from the database's users).")
@click.option("--public-key", "public_path", required=True, metavar="FILE",
              help="Where to write the public key verifiers need.")
def keygen(private_path, public_path) -> None:
    """Create an Ed25519 key pair for signing audit checkpoints (refuses to overwrite either file).

    Example: mlgate audit keygen --private-key /etc/mlgate/audit.key --public-key audit.pub
    """
    import os

    from auth.audit_checkpoints import generate_key_pair

    private, public = generate_key_pair()
    try:
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise CliError(f"{private_path}: {exc.strerror or exc} (it is never overwritten)", EXIT_USAGE) from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(private)
    try:
        fd = os.open(public_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError as exc:
        os.unlink(private_path)
        raise CliError(f"{public_path}: {exc.strerror or exc} (it is never overwritten)", EXIT_USAGE) from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(public)
    click.echo(f"Wrote {private_path} (0600) and {public_path}. Set audit.checkpoints.signing_key_file to the "
               "first; give the second to whoever verifies.")
