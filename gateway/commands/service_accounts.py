"""``mlgate service-accounts``: token-only accounts for CI and automation."""

from __future__ import annotations

import click

from gateway.commands.output import CliError, emit, emit_json, emit_table
from gateway.commands.target import target_options
from gateway.commands.users import USER_COLUMNS, user_row


@click.group("service-accounts")
def service_accounts() -> None:
    """Manage service accounts (no password; they use tokens). Example: mlgate service-accounts list"""


@service_accounts.command("list")
@target_options
def list_accounts(target) -> None:
    """List service accounts.

    Example: mlgate service-accounts list --output json
    """
    found = target.ops().list_users("service")
    if target.output == "json":
        emit_json({"service_accounts": found})
    else:
        emit_table(USER_COLUMNS, [user_row(u) for u in found])


@service_accounts.command("create")
@click.argument("name")
@target_options
def create(target, name: str) -> None:
    """Create a service account; then give it a token with `mlgate tokens create --for NAME`.

    Example: mlgate service-accounts create ci-bot
    """
    account = target.ops().create_user(name, None, service_account=True)
    emit(target.output, {"service_account": account},
         f"created service account {name}; next: mlgate tokens create ci --for {name}")


@service_accounts.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@target_options
def delete(target, name: str, yes: bool) -> None:
    """Delete a service account and its tokens.

    Example: mlgate service-accounts delete ci-bot --yes
    """
    ops = target.ops()
    if ops.get_user(name)["kind"] != "service":
        raise CliError(f"{name} is a user, not a service account; use `mlgate users delete`.")
    if not yes:
        click.confirm(f"Delete service account {name}?", abort=True)
    ops.delete_user(name)
    emit(target.output, {"name": name, "deleted": True}, f"deleted service account {name}")
