"""``mlgate users``: list, create, show, disable, enable, delete, set-password, set-admin."""

from __future__ import annotations

import click

from gateway.commands.output import emit, emit_json, emit_table, when
from gateway.commands.passwords import read_password as read_secret
from gateway.commands.target import target_options

USER_COLUMNS = ("username", "kind", "admin", "disabled", "groups", "created", "source")


def user_row(user: dict) -> tuple:
    """One account as a table row."""
    return (user["username"], user["kind"], user["is_admin"], user["disabled"], user["groups"],
            when(user.get("created_at")), user.get("source", "local"))


def read_password(password_stdin: bool, username: str) -> str:
    """A password from stdin (for scripts) or a hidden, confirmed prompt; never from the command line."""
    return read_secret(f"Password for {username}", from_stdin=password_stdin, confirm=True)


@click.group()
def users() -> None:
    """Manage user accounts. Example: mlgate users list --server https://mlflow.example.com"""


@users.command("list")
@click.option("--kind", type=click.Choice(["user", "service", "all"]), default="user", show_default=True,
              help="people, service accounts (also those of Kubernetes pods), or every account")
@target_options
def list_users(target, kind: str) -> None:
    """List users with their flags, groups and source (local, oidc, scim, kubernetes).

    Example: mlgate users list --kind all --output json
    """
    found = target.ops().list_users(None if kind == "all" else kind)
    if target.output == "json":
        emit_json({"users": found})
    else:
        emit_table(USER_COLUMNS, [user_row(u) for u in found])


@users.command("show")
@click.argument("username")
@target_options
def show(target, username: str) -> None:
    """Show one user.

    Example: mlgate users show alice
    """
    user = target.ops().get_user(username)
    if target.output == "json":
        emit_json({"user": user})
    else:
        emit_table(USER_COLUMNS, [user_row(user)])


@users.command("create")
@click.argument("username")
@click.option("--admin", "is_admin", is_flag=True, help="Make the user an administrator.")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin instead of prompting.")
@target_options
def create(target, username: str, is_admin: bool, password_stdin: bool) -> None:
    """Create a user (offline with --db: the way to create the first administrator).

    Example: echo "$PASSWORD" | mlgate users create alice --password-stdin
    """
    ops = target.ops()
    user = ops.create_user(username, read_password(password_stdin, username), is_admin=is_admin)
    emit(target.output, {"user": user}, f"created user {username}{' (administrator)' if is_admin else ''}")


def _toggle(target, username: str, disabled: bool) -> None:
    target.ops().set_disabled(username, disabled)
    state = "disabled" if disabled else "enabled"
    emit(target.output, {"username": username, "disabled": disabled}, f"{state} user {username}")


@users.command("disable")
@click.argument("username")
@target_options
def disable(target, username: str) -> None:
    """Disable a user: its sessions and tokens stop working at once.

    Example: mlgate users disable alice
    """
    _toggle(target, username, True)


@users.command("enable")
@click.argument("username")
@target_options
def enable(target, username: str) -> None:
    """Re-enable a disabled user.

    Example: mlgate users enable alice
    """
    _toggle(target, username, False)


@users.command("delete")
@click.argument("username")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@target_options
def delete(target, username: str, yes: bool) -> None:
    """Delete a user with its tokens, sessions and memberships.

    Example: mlgate users delete alice --yes
    """
    if not yes:
        click.confirm(f"Delete user {username}?", abort=True)
    target.ops().delete_user(username)
    emit(target.output, {"username": username, "deleted": True}, f"deleted user {username}")


@users.command("set-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the new password from stdin instead of prompting.")
@target_options
def set_password(target, username: str, password_stdin: bool) -> None:
    """Set a user's password (offline with --db: recover a locked-out administrator).

    Example: mlgate users set-password admin --db sqlite:///mlgate.db
    """
    ops = target.ops()
    ops.set_password(username, read_password(password_stdin, username))
    emit(target.output, {"username": username, "password_changed": True}, f"password of {username} changed")


@users.command("set-admin")
@click.argument("username")
@click.argument("value", type=click.Choice(["true", "false"]))
@target_options
def set_admin(target, username: str, value: str) -> None:
    """Grant (true) or remove (false) administrator rights.

    Example: mlgate users set-admin alice true
    """
    is_admin = value == "true"
    target.ops().set_admin(username, is_admin)
    emit(target.output, {"username": username, "is_admin": is_admin},
         f"{username} is {'now' if is_admin else 'no longer'} an administrator")
