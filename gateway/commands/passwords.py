"""Reading a password for a command: one line from stdin (``--password-stdin``) or a hidden prompt, never argv."""

from __future__ import annotations

import click

from gateway.commands.output import EXIT_USAGE, CliError


def read_password(prompt: str, *, from_stdin: bool, confirm: bool) -> str:
    """The password: the first line of stdin, or a hidden prompt when stdin is a terminal.

    A password piped without ``--password-stdin`` would be read by the prompt and the confirmation would
    meet the end of input (click's bare "Aborted!"): say what to do instead.
    """
    stdin = click.get_text_stream("stdin")
    if from_stdin:
        password = stdin.readline().rstrip("\r\n")
        if not password:
            raise CliError("--password-stdin: no password on stdin (expected it as the first line).", EXIT_USAGE)
        return password
    if not stdin.isatty():
        raise CliError("stdin is not a terminal, so the password cannot be prompted for; to pipe it, add "
                       "--password-stdin (the password as the first line of stdin).", EXIT_USAGE)
    try:
        return click.prompt(prompt, hide_input=True, confirmation_prompt=confirm)
    except click.Abort:
        raise CliError("no password entered.", EXIT_USAGE) from None
