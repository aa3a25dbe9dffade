"""``mlgate groups``: groups of accounts that grants can name (``group:<name>``)."""

from __future__ import annotations

import click

from gateway.commands.output import emit, emit_json, emit_table, when
from gateway.commands.target import target_options


@click.group()
def groups() -> None:
    """Manage groups. Example: mlgate groups create team-a && mlgate groups add-member team-a alice"""


@groups.command("list")
@target_options
def list_groups(target) -> None:
    """List groups with their members.

    Example: mlgate groups list --output json
    """
    found = target.ops().list_groups()
    if target.output == "json":
        emit_json({"groups": found})
    else:
        emit_table(("name", "members", "created"), [(g["name"], g["members"], when(g["created_at"])) for g in found])


@groups.command("create")
@click.argument("name")
@target_options
def create(target, name: str) -> None:
    """Create an empty group.

    Example: mlgate groups create team-a
    """
    group = target.ops().create_group(name)
    emit(target.output, {"group": group}, f"created group {name}")


@groups.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@target_options
def delete(target, name: str, yes: bool) -> None:
    """Delete a group, its memberships and every grant to it.

    Example: mlgate groups delete team-a --yes
    """
    if not yes:
        click.confirm(f"Delete group {name} and its grants?", abort=True)
    target.ops().delete_group(name)
    emit(target.output, {"name": name, "deleted": True}, f"deleted group {name}")


@groups.command("add-member")
@click.argument("group")
@click.argument("username")
@target_options
def add_member(target, group: str, username: str) -> None:
    """Add a user or service account to a group (takes effect on its next request).

    Example: mlgate groups add-member team-a alice
    """
    target.ops().add_member(group, username)
    emit(target.output, {"group": group, "username": username, "member": True}, f"added {username} to {group}")


@groups.command("remove-member")
@click.argument("group")
@click.argument("username")
@target_options
def remove_member(target, group: str, username: str) -> None:
    """Remove an account from a group.

    Example: mlgate groups remove-member team-a alice
    """
    target.ops().remove_member(group, username)
    emit(target.output, {"group": group, "username": username, "member": False},
         f"removed {username} from {group}")
