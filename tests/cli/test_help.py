"""Every command documents itself with an example, and shell completion comes from click's own mechanism."""

from __future__ import annotations

import click
import pytest

from gateway.cli import main
from tests.cli.conftest import Mlgate


def _commands(command: click.Command, path: tuple[str, ...] = ("mlgate",)):
    yield path, command
    if isinstance(command, click.Group):
        ctx = click.Context(command)
        for name in command.list_commands(ctx):
            yield from _commands(command.get_command(ctx, name), (*path, name))


@pytest.mark.parametrize(("path", "command"), list(_commands(main)), ids=lambda v: " ".join(v) if
                         isinstance(v, tuple) else "")
def test_every_command_has_an_example_in_its_help(path, command):
    assert "Example:" in (command.help or ""), " ".join(path)


def test_every_command_is_listed_and_runs_its_help(tmp_path):
    cli = Mlgate(tmp_path / "config.json")
    listed = cli("--help").stdout
    names = [name for path, _ in _commands(main) if len(path) == 2 for name in path[1:]]
    assert {"server", "db", "users", "service-accounts", "tokens", "groups", "perms", "policy", "audit", "login",
            "completion", "import-mlflow", "workspaces", "roles"} == set(names)
    for name in names:
        assert name in listed
        assert cli(name, "--help").returncode == 0, name


def test_completion_scripts_and_completions(tmp_path):
    cli = Mlgate(tmp_path / "config.json")
    for shell in ("bash", "zsh", "fish"):
        script = cli("completion", shell)
        assert script.returncode == 0
        assert "_MLGATE_COMPLETE" in script.stdout
    completed = cli(_MLGATE_COMPLETE="bash_complete", COMP_WORDS="mlgate perms ex", COMP_CWORD="2")
    assert completed.stdout.split() == ["plain,explain"]
