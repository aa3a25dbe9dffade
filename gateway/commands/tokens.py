"""``mlgate tokens``: personal access tokens, for oneself or (admins) another account."""

from __future__ import annotations

import click

from gateway.commands.output import emit, emit_json, emit_table, when
from gateway.commands.target import target_options


@click.group()
def tokens() -> None:
    """Manage access tokens. Example: mlgate tokens create ci --for ci-bot --days 90"""


@tokens.command("list")
@click.option("--for", "owner", default=None, metavar="ACCOUNT", help="Another account's tokens (admins).")
@target_options
def list_tokens(target, owner: str | None) -> None:
    """List tokens (never their secrets).

    Example: mlgate tokens list --for ci-bot
    """
    found = target.ops().list_tokens(owner)
    if target.output == "json":
        emit_json({"tokens": found})
    else:
        emit_table(("id", "name", "read_only", "scope", "from", "created", "expires", "last_used", "revoked"),
                   [(t["id"], t["name"], t["read_only"], " ".join(t.get("scope") or []) or "-",
                     " ".join(t.get("cidrs") or []) or "-", when(t["created_at"]), when(t["expires_at"]),
                     when(t["last_used_at"]), t["revoked"]) for t in found])


@tokens.command("create")
@click.argument("name")
@click.option("--for", "owner", default=None, metavar="ACCOUNT",
              help="Issue the token for this account, e.g. a service account (admins).")
@click.option("--days", default=30, show_default=True, type=click.IntRange(min=1), help="Lifetime in days.")
@click.option("--read-only", is_flag=True, help="The token may only read.")
@click.option("--scope", "scope", multiple=True, metavar="ENTRY",
              help="Limit the token (repeatable): LEVEL:<selector> such as EDIT:experiment-name:team-a/nightly-*, "
                   "READ:model-name:churn-*, READ:prompt-name:qa-*, or workspace:<glob>.")
@click.option("--from-cidr", "cidrs", multiple=True, metavar="CIDR",
              help="Accept the token only from these client networks (repeatable), e.g. 10.1.0.0/16.")
@target_options
def create(target, name: str, owner: str | None, days: int, read_only: bool, scope: tuple[str, ...],
           cidrs: tuple[str, ...]) -> None:
    """Create a token; the secret is printed once, alone on stdout, so scripts can capture it.

    A scoped token does at most what its owner may do and its scope allows, from its networks only.

    Example: MLFLOW_TRACKING_TOKEN=$(mlgate tokens create ci --for ci-bot --days 90
    --scope 'EDIT:experiment-name:team-a/nightly-*' --from-cidr 10.1.0.0/16)
    """
    issued = target.ops().create_token(name, days, owner, read_only, list(scope), list(cidrs))
    if target.output == "json":
        emit_json(issued)
        return
    info = issued["token_info"]
    click.echo(f"token {info['id']} ({info['name']}) expires {when(info['expires_at'])} UTC; "
               "store it now, it is not shown again:", err=True)
    click.echo(issued["token"])


@tokens.command("revoke")
@click.argument("token_id")
@target_options
def revoke(target, token_id: str) -> None:
    """Revoke a token by its id (see `mlgate tokens list`).

    Example: mlgate tokens revoke 3f9a0c
    """
    target.ops().revoke_token(token_id)
    emit(target.output, {"token_id": token_id, "revoked": True}, f"revoked token {token_id}")
