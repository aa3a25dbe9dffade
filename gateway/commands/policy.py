"""``mlgate policy``: validate a policy file and run policy test cases (no server needed)."""

from __future__ import annotations

import json
import sys

import click

from policies.decide import compile_policy
from policies.file import PolicyFileError, load_policy_file
from policies.testing import CaseFileError, run_case_file

EXIT_ERROR = 1


@click.group()
def policy() -> None:
    """Work with declarative policy files."""


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
        compiled = compile_policy(load_policy_file(policy_path)) if policy_path else None
        results = run_case_file(cases, policy=compiled)
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
