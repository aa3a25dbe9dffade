"""``mlgate completion``: print the shell completion script (click's own mechanism) for bash, zsh or fish."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class


@click.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the completion script for SHELL; load it from your shell's startup file.

    Example: eval "$(mlgate completion bash)"   (zsh: eval "$(mlgate completion zsh)";
    fish: mlgate completion fish > ~/.config/fish/completions/mlgate.fish)
    """
    root = click.get_current_context().find_root().command
    script = get_completion_class(shell)(root, {}, "mlgate", "_MLGATE_COMPLETE")
    click.echo(script.source())
