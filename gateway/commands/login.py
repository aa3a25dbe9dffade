"""``mlgate login``: store a token for a server in the 0600 config file, under a profile."""

from __future__ import annotations

import socket
import sys
from urllib.parse import urlsplit

import click

from gateway.commands.output import EXIT_DENIED, EXIT_USAGE, CliError, emit
from gateway.commands.passwords import read_password
from gateway.commands.remote import RemoteOps
from gateway.commands.target import DEFAULT_PROFILE, save_profile


@click.command()
@click.option("--server", required=True, envvar="MLGATE_SERVER", metavar="URL", help="The server to sign in to.")
@click.option("--username", default=None, help="Sign in with this user's password (prompted) to mint a token.")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@click.option("--token-stdin", is_flag=True, help="Store an existing token read from stdin instead.")
@click.option("--days", default=30, show_default=True, type=click.IntRange(min=1), help="Lifetime of a new token.")
@click.option("--profile", default=DEFAULT_PROFILE, show_default=True, envvar="MLGATE_PROFILE",
              help="Store the login under this name (use several for several servers).")
@click.option("--output", "-o", type=click.Choice(["table", "json"]), default="table", show_default=True)
def login(server, username, password_stdin, token_stdin, days, profile, output) -> None:
    """Sign in to a server and keep a token for later commands.

    Example: mlgate login --server https://mlflow.example.com --username alice
    """
    server = server.rstrip("/")
    parsed = urlsplit(server)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise CliError(f"--server {server!r} is not an http(s) URL.", EXIT_USAGE)
    if parsed.scheme == "http" and parsed.hostname not in ("127.0.0.1", "localhost", "::1"):
        click.echo("mlgate: warning: plain http; the password and token cross the network unencrypted. "
                   "Use https.", err=True)
    if token_stdin and (username or password_stdin):
        raise CliError("--token-stdin stores a token as is; do not combine it with --username/--password-stdin.",
                       EXIT_USAGE)
    if token_stdin:
        token = sys.stdin.readline().strip()
        if not token:
            raise CliError("No token on stdin.", EXIT_USAGE)
    else:
        if username is None:
            if not sys.stdin.isatty():
                raise CliError("--username is required when stdin is not a terminal.", EXIT_USAGE)
            username = click.prompt("Username")
        password = read_password("Password", from_stdin=password_stdin, confirm=False)
        try:
            minted = RemoteOps(server, None, auth=(username, password)).create_token(
                f"mlgate-cli@{socket.gethostname()}"[:255], days, None, False)
        except CliError as exc:
            if exc.exit_code != EXIT_DENIED:
                raise
            # The server does not say whether the user exists or signs in through SSO (no username oracle),
            # so the way out for an SSO-only account is always named.
            raise CliError(f"{exc.message.rstrip('.')}. If you sign in to {server} through single sign-on, you "
                           f"have no mlgate password: create a token at {server}/account, then run "
                           f"`mlgate login --server {server} --token-stdin` and paste it.", EXIT_DENIED) from None
        token = minted["token"]
    me = RemoteOps(server, token).current_user()
    name = me["user"]["username"]
    path = save_profile(profile, {"server": server, "token": token, "username": name})
    emit(output, {"server": server, "profile": profile, "username": name, "is_admin": me["user"]["is_admin"],
                  "config": str(path)},
         f"signed in to {server} as {name} (profile {profile}); token stored in {path}")
