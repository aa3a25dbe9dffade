"""``mlgate workspaces`` and ``mlgate roles``: MLflow 3 workspaces and their roles (auth/roles.py).

Remote mode calls the same MLflow-compatible APIs as ``mlflow.create_workspace`` and
``get_app_client("basic-auth")`` (so the server authorizes and audits each change); offline mode (``--db``)
works on the database. A role is named by its id, or by its name with ``--workspace``.
"""

from __future__ import annotations

import click

from gateway.commands.output import EXIT_NOT_FOUND, EXIT_USAGE, CliError, emit, emit_json, emit_table
from gateway.commands.target import target_options

WORKSPACE = click.option("--workspace", "-w", default=None, help="The workspace the role is in.")


@click.group()
def workspaces() -> None:
    """Manage workspaces (needs a server started with --enable-workspaces). Example: mlgate workspaces list"""


@workspaces.command("list")
@target_options
def list_workspaces(target) -> None:
    """List workspaces with their descriptions.

    Example: mlgate workspaces list --output json
    """
    found = target.ops().list_workspaces()
    if target.output == "json":
        emit_json({"workspaces": found})
    else:
        emit_table(("name", "description"), [(w["name"], w.get("description") or "") for w in found])


@workspaces.command("create")
@click.argument("name")
@click.option("--description", default=None, help="What the workspace is for.")
@target_options
def create_workspace(target, name: str, description: str | None) -> None:
    """Create a workspace (server administrators).

    Example: mlgate workspaces create team-a --description "Team A"
    """
    workspace = target.ops().create_workspace(name, description)
    emit(target.output, {"workspace": workspace}, f"created workspace {name}")


@workspaces.command("update")
@click.argument("name")
@click.option("--description", required=True, help="The new description.")
@target_options
def update_workspace(target, name: str, description: str) -> None:
    """Change a workspace's description.

    Example: mlgate workspaces update team-a --description "Team A (forecasting)"
    """
    workspace = target.ops().update_workspace(name, description)
    emit(target.output, {"workspace": workspace}, f"updated workspace {name}")


@workspaces.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@target_options
def delete_workspace(target, name: str, yes: bool) -> None:
    """Delete an empty workspace and its roles.

    Example: mlgate workspaces delete team-a --yes
    """
    if not yes:
        click.confirm(f"Delete workspace {name} and its roles?", abort=True, err=True)
    target.ops().delete_workspace(name)
    emit(target.output, {"deleted": name}, f"deleted workspace {name}")


@click.group()
def roles() -> None:
    """Manage workspace roles: permissions and who holds them. Example: mlgate roles list --workspace team-a"""


def _role(ops, role: str, workspace: str | None) -> dict:
    """The role named by id, or by name in ``workspace``."""
    if role.isdigit():
        return ops.get_role(int(role))
    if workspace is None:
        raise CliError(f"Name the workspace of role {role!r} with --workspace (or give the role's id).", EXIT_USAGE)
    found = next((r for r in ops.list_roles(workspace) if r["name"] == role), None)
    if found is None:
        raise CliError(f"Role {role!r} not found in workspace {workspace!r}.", EXIT_NOT_FOUND)
    return found


def _permissions(role: dict) -> str:
    return ", ".join(f"{p['resource_type']}:{p['resource_pattern']} {p['permission']}" for p in role["permissions"])


@roles.command("list")
@WORKSPACE
@target_options
def list_roles(target, workspace: str | None) -> None:
    """List roles with their permissions (of one workspace, or every role).

    Example: mlgate roles list --workspace team-a
    """
    found = target.ops().list_roles(workspace)
    if target.output == "json":
        emit_json({"roles": found})
    else:
        emit_table(("id", "workspace", "name", "permissions"),
                   [(r["id"], r["workspace"], r["name"], _permissions(r)) for r in found])


@roles.command("create")
@click.argument("name")
@click.option("--workspace", "-w", required=True, help="The workspace the role is in.")
@click.option("--description", default=None)
@target_options
def create_role(target, name: str, workspace: str, description: str | None) -> None:
    """Create a role in a workspace (server or workspace administrators).

    Example: mlgate roles create members --workspace team-a
    """
    role = target.ops().create_role(workspace, name, description)
    emit(target.output, {"role": role}, f"created role {name} (id {role['id']}) in workspace {workspace}")


@roles.command("delete")
@click.argument("role")
@WORKSPACE
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@target_options
def delete_role(target, role: str, workspace: str | None, yes: bool) -> None:
    """Delete a role, its permissions and its assignments.

    Example: mlgate roles delete members --workspace team-a --yes
    """
    ops = target.ops()
    found = _role(ops, role, workspace)
    if not yes:
        click.confirm(f"Delete role {found['name']} of workspace {found['workspace']}?", abort=True, err=True)
    ops.delete_role(found["id"])
    emit(target.output, {"deleted": found["id"]}, f"deleted role {found['name']} (id {found['id']})")


@roles.command("grant")
@click.argument("role")
@click.argument("resource_type", type=click.Choice(["experiment", "registered_model", "prompt", "workspace"]))
@click.argument("pattern")
@click.argument("permission", type=click.Choice(["READ", "USE", "EDIT", "MANAGE"]))
@WORKSPACE
@target_options
def grant(target, role: str, resource_type: str, pattern: str, permission: str, workspace: str | None) -> None:
    """Give a role a permission on resources of a type whose name matches PATTERN (replaces an existing level).

    Example: mlgate roles grant members experiment '*' EDIT --workspace team-a
    """
    ops = target.ops()
    found = _role(ops, role, workspace)
    current = next((p for p in found["permissions"]
                    if (p["resource_type"], p["resource_pattern"]) == (resource_type, pattern)), None)
    if current is None:
        added = ops.add_role_permission(found["id"], resource_type, pattern, permission)
    else:
        added = ops.update_role_permission(current["id"], permission)
    emit(target.output, {"role_permission": added},
         f"role {found['name']} holds {permission} on {resource_type}:{pattern}")


@roles.command("revoke")
@click.argument("role")
@click.argument("resource_type", type=click.Choice(["experiment", "registered_model", "prompt", "workspace"]))
@click.argument("pattern")
@WORKSPACE
@target_options
def revoke(target, role: str, resource_type: str, pattern: str, workspace: str | None) -> None:
    """Take a permission from a role.

    Example: mlgate roles revoke members experiment '*' --workspace team-a
    """
    ops = target.ops()
    found = _role(ops, role, workspace)
    current = next((p for p in found["permissions"]
                    if (p["resource_type"], p["resource_pattern"]) == (resource_type, pattern)), None)
    if current is None:
        raise CliError(f"Role {found['name']} has no permission on {resource_type}:{pattern}.", EXIT_NOT_FOUND)
    ops.remove_role_permission(current["id"])
    emit(target.output, {"removed": current["id"]}, f"role {found['name']} no longer holds {resource_type}:{pattern}")


@roles.command("assign")
@click.argument("role")
@click.argument("member")
@WORKSPACE
@target_options
def assign(target, role: str, member: str, workspace: str | None) -> None:
    """Give an account (or, offline, group:<name>) a role, and so membership of its workspace.

    Example: mlgate roles assign members alice --workspace team-a
    """
    ops = target.ops()
    found = _role(ops, role, workspace)
    ops.assign_role(found["id"], member)
    emit(target.output, {"role_id": found["id"], "member": member}, f"{member} holds role {found['name']}")


@roles.command("unassign")
@click.argument("role")
@click.argument("member")
@WORKSPACE
@target_options
def unassign(target, role: str, member: str, workspace: str | None) -> None:
    """Take a role from an account (or, offline, group:<name>).

    Example: mlgate roles unassign members alice --workspace team-a
    """
    ops = target.ops()
    found = _role(ops, role, workspace)
    ops.unassign_role(found["id"], member)
    emit(target.output, {"role_id": found["id"], "member": member}, f"{member} no longer holds role {found['name']}")


@roles.command("members")
@click.argument("role")
@WORKSPACE
@target_options
def members(target, role: str, workspace: str | None) -> None:
    """List who holds a role (accounts and groups).

    Example: mlgate roles members members --workspace team-a
    """
    ops = target.ops()
    found = _role(ops, role, workspace)
    held = ops.role_members(found)
    if target.output == "json":
        emit_json({"role": found["id"], "members": held})
    else:
        emit_table(("member",), [(m,) for m in held])
