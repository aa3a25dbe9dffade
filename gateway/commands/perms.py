"""``mlgate perms``: grant, revoke and list stored permissions, and explain a decision with its rule."""

from __future__ import annotations

import re

import click

from gateway.commands.output import EXIT_NOT_FOUND, EXIT_USAGE, CliError, emit, emit_json, emit_table, when
from gateway.commands.target import target_options

PERMISSIONS = click.Choice(["READ", "EDIT", "MANAGE", "NO_PERMISSIONS"], case_sensitive=False)


def _one(kind: str, given: dict[str, str | None], required: bool) -> tuple[str, str] | None:
    chosen = [(k, v) for k, v in given.items() if v is not None]
    if len(chosen) > 1 or (required and not chosen):
        names = ", ".join(f"--{k.replace('_', '-')}" for k in given)
        raise CliError(f"Name exactly one {kind}: {names}.", EXIT_USAGE)
    return chosen[0] if chosen else None


def subject_options(func):
    """--user / --group / --service: whom a grant names."""
    func = click.option("--service", default=None, metavar="NAME", help="A service account.")(func)
    func = click.option("--group", default=None, metavar="NAME", help="A group.")(func)
    return click.option("--user", default=None, metavar="NAME", help="A user.")(func)


def resource_options(func):
    """--experiment / --experiment-name / --model / --model-name: which resources a grant covers."""
    func = click.option("--model-name", default=None, metavar="GLOB", help="Registered models by name glob.")(func)
    func = click.option("--model", default=None, metavar="NAME", help="One registered model.")(func)
    func = click.option("--experiment-name", default=None, metavar="GLOB",
                        help="Experiments whose name matches a glob, e.g. 'team-a/*'.")(func)
    return click.option("--experiment", default=None, metavar="ID", help="One experiment by id.")(func)


def subject_text(user, group, service, required: bool = True) -> str | None:
    """``user:<name>``, ``group:<name>`` or ``service:<name>`` from the options."""
    chosen = _one("subject", {"user": user, "group": group, "service": service}, required)
    return None if chosen is None else f"{chosen[0]}:{chosen[1]}"


def resource_text(experiment, experiment_name, model, model_name, required: bool = True) -> str | None:
    """The selector syntax (``experiment:12``, ``experiment-name:team-a/*``...) from the options."""
    chosen = _one("resource", {"experiment": experiment, "experiment_name": experiment_name, "model": model,
                               "model_name": model_name}, required)
    if chosen is None:
        return None
    return f"{chosen[0].replace('_', '-')}:{chosen[1]}"


@click.group()
def perms() -> None:
    """Manage permissions. Example: mlgate perms grant --group team-a --experiment-name 'team-a/*' EDIT"""


_DURATION = re.compile(r"([0-9]{1,6})([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_seconds(text: str | None) -> int | None:
    """Seconds in ``30m``, ``8h``, ``2d`` (None for None); a usage error otherwise."""
    if text is None:
        return None
    found = _DURATION.fullmatch(text.strip())
    if found is None or int(found.group(1)) == 0:
        raise CliError(f"Invalid duration {text!r}: use e.g. 30m, 8h or 2d.", EXIT_USAGE)
    return int(found.group(1)) * _UNIT_SECONDS[found.group(2)]


@perms.command("grant")
@subject_options
@resource_options
@click.argument("permission", type=PERMISSIONS)
@click.option("--for", "duration", default=None, metavar="DURATION",
              help="The grant expires after this long (30m, 8h, 2d), on every server process at that second.")
@click.option("--break-glass", is_flag=True,
              help="Emergency access: needs --for (at most 7d); every use is audited as break_glass.use.")
@target_options
def grant(target, user, group, service, experiment, experiment_name, model, model_name, permission, duration,
          break_glass) -> None:
    """Give a user, group or service account a permission (replaces its previous one there).

    Example: mlgate perms grant --group team-a --experiment-name 'team-a/*' EDIT
    (add --for 8h for a grant that expires by itself, --break-glass for emergency access)
    """
    subject = subject_text(user, group, service)
    resource = resource_text(experiment, experiment_name, model, model_name)
    seconds = duration_seconds(duration)
    if break_glass and seconds is None:
        raise CliError("--break-glass needs --for: emergency access must expire.", EXIT_USAGE)
    row = target.ops().put_grant(subject, resource, permission.upper(), expires_in_seconds=seconds,
                                 break_glass=break_glass)
    until = f" until {when(row['expires_at'])} UTC" if row.get("expires_at") else ""
    emit(target.output, {"grant": row},
         f"granted {row['permission']} on {resource_label(row)} to {row['subject']}{until}"
         + (" (break-glass)" if row.get("break_glass") else ""))


@perms.command("revoke")
@click.argument("grant_id", required=False, metavar="[ID]")
@subject_options
@resource_options
@target_options
def revoke(target, grant_id, user, group, service, experiment, experiment_name, model, model_name) -> None:
    """Remove a stored grant: by the ID `mlgate perms list` shows, or by its subject and resource.

    Example: mlgate perms revoke 3 (an ID from `mlgate perms list`; api-grant:3 as perms explain names it too),
    or mlgate perms revoke --group team-a --experiment-name 'team-a/*'
    """
    if grant_id is not None:
        if any(v is not None for v in (user, group, service, experiment, experiment_name, model, model_name)):
            raise CliError("Name a grant either by its ID or by subject and resource options, not both.", EXIT_USAGE)
        # `perms list` prints the bare id; `perms explain` names the same grant as its rule, api-grant:<id>.
        wanted = grant_id.removeprefix("api-grant:")
        found = [row for row in target.ops().list_grants(None, None) if str(row["id"]) == wanted]
        if not found:
            raise CliError(f"No grant has the ID {grant_id!r}; `mlgate perms list` shows the IDs.", EXIT_NOT_FOUND)
        subject, resource = found[0]["subject"], found[0]["resource"]
    else:
        subject = subject_text(user, group, service)
        resource = resource_text(experiment, experiment_name, model, model_name)
    target.ops().revoke_grant(subject, resource)
    emit(target.output, {"subject": subject, "resource": resource, "revoked": True},
         f"revoked {subject} on {resource}")


@perms.command("list")
@subject_options
@resource_options
@target_options
def list_grants(target, user, group, service, experiment, experiment_name, model, model_name) -> None:
    """List stored grants (API grants and creators' MANAGE), optionally for one subject or resource.

    Example: mlgate perms list --group team-a
    """
    rows = target.ops().list_grants(subject_text(user, group, service, required=False),
                                    resource_text(experiment, experiment_name, model, model_name, required=False))
    if target.output == "json":
        emit_json({"grants": rows})
    else:
        emit_table(("id", "subject", "resource", "permission", "source", "created_by", "created", "expires"),
                   [(r["id"], r["subject"], resource_label(r), r["permission"], r["source"], r["created_by"],
                     when(r["created_at"]),
                     (when(r["expires_at"]) + (" break-glass" if r.get("break_glass") else ""))
                     if r.get("expires_at") else "-") for r in rows])


def resource_label(row: dict) -> str:
    """``experiment:1 (demo)``: the stored selector, with the experiment's name when it names one."""
    name = row.get("resource_name")
    return f"{row['resource']} ({name})" if name else row["resource"]


@perms.command("explain")
@click.option("--user", default=None, metavar="NAME", help="The user asking.")
@click.option("--service", default=None, metavar="NAME", help="The service account asking.")
@click.option("--experiment", default=None, metavar="ID", help="An experiment id.")
@click.option("--experiment-name", default=None, metavar="NAME", help="An experiment by exact name.")
@click.option("--model", default=None, metavar="NAME", help="A registered model.")
@click.option("--action", required=True, type=click.Choice(["READ", "EDIT", "MANAGE"], case_sensitive=False),
              help="The permission level the action needs.")
@click.option("--alias", default=None, metavar="ALIAS",
              help="With --model: the alias the action names (set_alias needs EDIT, delete_alias MANAGE), for "
                   "conditions on aliases.")
@click.option("--policy", "policy_path", default=None, type=click.Path(dir_okay=False),
              help="Offline mode: the server's policy file (default: built-in defaults).")
@click.option("--workspace", default=None, metavar="NAME",
              help="Decide as a request naming this workspace (X-MLFLOW-WORKSPACE) would be: a resource of another "
                   "workspace is not found, an account that is not a member is denied.")
@target_options
def explain(target, user, service, experiment, experiment_name, model, action, alias, policy_path,
            workspace) -> None:
    """Say whether a user or service account may act on a resource, why, and which rule decided. Exit 0 either way.

    Example: mlgate perms explain --user alice --experiment 12 --action EDIT
    (--service ci-bot for a service account; --workspace team-a as a request in that workspace)
    """
    _, user = _one("subject", {"user": user, "service": service}, True)
    field, value = _one("resource", {"experiment_id": experiment, "experiment_name": experiment_name,
                                     "model": model}, True)
    result = target.ops().explain(user, field, value, action.upper(), policy_path, alias, workspace)
    if target.output == "json":
        emit_json(result)
        return
    res = result["resource"]
    label = f"{res['type']} {res['id']}" + (f" ({res['name']})" if res["name"] and res["name"] != res["id"] else "")
    click.echo(f"{'ALLOWED' if result['allowed'] else 'DENIED'}: {result['subject']} {result['action']} on {label}")
    click.echo(f"  reason: {result['reason']}")
    click.echo(f"  rule:   {result['rule'] or '-'}")

