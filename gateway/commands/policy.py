"""``mlgate policy``: validate a policy file and run policy test cases (no server needed)."""

from __future__ import annotations

import json
import sys

import click
import yaml

from gateway.commands.output import CliError, emit, emit_json
from gateway.commands.target import target_options
from policies.decide import compile_policy
from policies.file import PolicyFileError, load_policy_file
from policies.testing import CaseFileError, run_case_file

EXIT_ERROR = 1


@click.group()
def policy() -> None:
    """Work with declarative policy files. Example: mlgate policy validate policy.yaml"""


@policy.command("validate")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def validate(path: str, output: str) -> None:
    """Check a policy file and list every problem with its key path.

    Example: mlgate policy validate policy.yaml
    """
    try:
        loaded = load_policy_file(path)
        compile_policy(loaded)
    except PolicyFileError as exc:
        if output == "json":
            click.echo(json.dumps({"valid": False, "problems": exc.problems}))
        else:
            click.echo(f"{path}: {len(exc.problems)} problem(s)", err=True)
            for problem in exc.problems:
                click.echo(f"  - {problem}", err=True)
        sys.exit(EXIT_ERROR)
    if output == "json":
        click.echo(json.dumps({"valid": True, "problems": []}))
    else:
        click.echo(f"{path}: valid")


@policy.command("test")
@click.argument("cases", type=click.Path(dir_okay=False))
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False), default=None,
              help="Test this policy file instead of the one the case file names.")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def test(cases: str, policy_path: str | None, output: str) -> None:
    """Run policy test cases (principal x resource x action -> expected decision).

    Example: mlgate policy test cases.yaml --policy policy.yaml
    """
    try:
        document = load_policy_file(policy_path) if policy_path else None
        results = run_case_file(cases, policy=document)
    except (PolicyFileError, CaseFileError) as exc:
        problems = getattr(exc, "problems", None) or [str(exc)]
        for problem in problems:
            click.echo(f"  - {problem}", err=True)
        sys.exit(EXIT_ERROR)
    failed = [r for r in results if not r.passed]
    if output == "json":
        click.echo(json.dumps({"passed": len(results) - len(failed), "failed": len(failed),
                               "failures": [{"name": r.name, "message": r.message} for r in failed]}))
    else:
        for result in failed:
            click.echo(f"FAIL {result.name}: {result.message}")
        click.echo(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    if failed:
        sys.exit(EXIT_ERROR)


# --- stored groups and grants as a policy file (server or --db) ----------------------------------------
_SYMBOL = {"add": ("+", "green"), "remove": ("-", "red"), "change": ("~", "yellow")}


def _describe(change: dict) -> str:
    kind = change["kind"]
    if kind == "workspace":
        described = f" ({change['description']!r})" if change.get("description") else ""
        return f"workspace {change['workspace']}{described}"
    if kind == "role":
        return f"role {change['role']} in workspace {change['workspace']}"
    if kind == "role-permission":
        level = change["permission"]
        if change["op"] == "change":
            level = f"{change['old_permission']} -> {level}"
        return (f"permission {change['resource_type']}:{change['resource_pattern']} {level} of role "
                f"{change['role']} in workspace {change['workspace']}")
    if kind == "role-member":
        return f"member {change['member']} of role {change['role']} in workspace {change['workspace']}"
    if kind == "group":
        return f"group {change['group']}"
    if kind == "member":
        return f"member {change['member']} of group {change['group']}"
    level = change["permission"]
    if change["op"] == "change":
        level = f"{change['old_permission']} -> {level}"
    owner = " (owner)" if change.get("source") == "owner" else ""
    return f"grant {change['subject']} {change['resource']} {level}{owner}"


def _print_plan(changes: list[dict]) -> None:
    for change in changes:
        symbol, color = _SYMBOL[change["op"]]
        click.secho(f"{symbol} {_describe(change)}", fg=color)
    counts = {op: sum(1 for c in changes if c["op"] == op) for op in _SYMBOL}
    click.echo(f"Plan: {counts['add']} to add, {counts['change']} to change, {counts['remove']} to remove.")


def _stored_part_of(path: str) -> dict:
    """The file's groups, grants, workspaces and templates (``access``, ``workspaces``,
    ``workspace_templates``), after validating the whole file (every problem listed, exit 1)."""
    try:
        loaded = load_policy_file(path)
        compile_policy(loaded)
    except PolicyFileError as exc:
        raise CliError(f"{path}: {len(exc.problems)} problem(s):\n"
                       + "\n".join(f"  - {p}" for p in exc.problems)) from None
    dumped = loaded.model_dump(mode="json", exclude_defaults=True)
    stored = {"version", "access", "workspaces", "workspace_templates"}
    problems = [f"{key}: a server stores only access.groups, access.grants, workspaces and workspace_templates; "
                f"put {key} in its --policy file" for key in sorted(set(dumped) - stored)]
    problems += [f"access.{key}: a server stores only access.groups and access.grants; put access.{key} in its "
                 "--policy file" for key in sorted(set(dumped.get("access", {})) - {"groups", "grants"})]
    if problems:
        raise CliError(f"{path}: {len(problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in problems))
    document = {"access": {"groups": dumped.get("access", {}).get("groups", {}),
                           "grants": dumped.get("access", {}).get("grants", [])}}
    # exclude_defaults drops an empty `workspaces: {}`, which means "no workspace but default": keep it.
    if loaded.workspaces is not None:
        document["workspaces"] = loaded.model_dump(mode="json", exclude_none=True)["workspaces"]
    if loaded.workspace_templates:
        document["workspace_templates"] = dumped["workspace_templates"]
    return document


OWNER_GRANTS = click.option(
    "--owner-grants", is_flag=True,
    help="Include creators' MANAGE grants: exported, and removed by apply when the file leaves them out.")


@policy.command("export")
@OWNER_GRANTS
@target_options
def export(target, owner_grants: bool) -> None:
    """Print the stored groups, grants (not creators' MANAGE, unless --owner-grants), workspaces and roles as a
    policy file.

    Example: mlgate policy export > access.yaml
    """
    exported = target.ops().export_policy(owner_grants)
    names = exported.pop("names", None) or {}
    document = {"version": 1, **exported}
    if target.output == "json":
        emit_json(document)
    else:
        click.echo(with_name_comments(yaml.safe_dump(document, sort_keys=False, default_flow_style=False),
                                      names), nl=False)


def with_name_comments(text: str, names: dict[str, str]) -> str:
    """The exported YAML with ``# <experiment name>`` after each grant's ``resource: experiment:<id>`` line.

    Grants keep the id (names change, ids never do), so applying the file again means the same experiments;
    the comment tells a reader which experiment that is. YAML ignores it.
    """
    lines = []
    for line in text.splitlines(keepends=True):
        key, _, value = line.strip().removeprefix("- ").partition(": ")
        value = value.strip("'\"")
        name = names.get(value) if key == "resource" else None
        if name is not None:
            # json.dumps escapes a newline or other control character in a name, which would end the comment.
            line = f"{line.rstrip(chr(10))}  # {json.dumps(name, ensure_ascii=False)[1:-1]}\n"
        lines.append(line)
    return "".join(lines)


@policy.command("plan")
@click.argument("path", type=click.Path(dir_okay=False))
@OWNER_GRANTS
@target_options
def plan(target, path: str, owner_grants: bool) -> None:
    """Show what `policy apply` would change (+ add, ~ change, - remove); changes nothing.

    Example: mlgate policy plan access.yaml
    """
    result = target.ops().apply_policy(_stored_part_of(path), dry_run=True, owner_grants=owner_grants)
    if target.output == "json":
        emit_json({"changes": result["changes"]})
    else:
        _print_plan(result["changes"])


@policy.command("apply")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--yes", is_flag=True, help="Apply without asking.")
@OWNER_GRANTS
@target_options
def apply(target, path: str, yes: bool, owner_grants: bool) -> None:
    """Make the stored groups, grants, workspaces and roles equal to a policy file, all or nothing (one
    transaction).

    Groups and API grants the file does not name are removed (creators' grants too with --owner-grants); with
    a workspaces section, so are the workspaces it does not name.
    Example: mlgate policy apply access.yaml --yes
    """
    ops = target.ops()
    access = _stored_part_of(path)
    planned = ops.apply_policy(access, dry_run=True, owner_grants=owner_grants)["changes"]
    if target.output != "json":
        _print_plan(planned)
    if not planned:
        emit(target.output, {"changes": [], "applied": True}, "Nothing to change.")
        return
    if not yes:
        click.confirm("Apply these changes?", abort=True, err=True)
    if target.output != "json":
        click.echo(f"Applying {len(planned)} change(s) in one transaction...", err=True)
    result = ops.apply_policy(access, dry_run=False, owner_grants=owner_grants)
    emit(target.output, result, f"Applied {len(result['changes'])} change(s).")
