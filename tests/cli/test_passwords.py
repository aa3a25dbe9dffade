"""Passwords reach commands only through a terminal prompt or --password-stdin, and every failure says why."""

from __future__ import annotations

from tests.cli.conftest import Mlgate


def test_a_piped_password_without_the_flag_names_the_flag(admin: Mlgate):
    result = admin("users", "create", "piped-user", input="Piped-Passw0rd-long\n")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Aborted" not in result.stderr
    assert result.stderr.strip() == ("mlgate: stdin is not a terminal, so the password cannot be prompted for; "
                                     "to pipe it, add --password-stdin (the password as the first line of stdin).")
    assert admin("users", "show", "piped-user").returncode == 3  # nothing was created


def test_password_stdin_with_nothing_on_stdin(admin: Mlgate):
    result = admin("users", "set-password", "admin", "--password-stdin", input="")
    assert result.returncode == 2
    assert result.stderr.strip() == "mlgate: --password-stdin: no password on stdin (expected it as the first line)."


def test_login_without_a_terminal_needs_username_and_the_flag(server, tmp_path):
    cli = Mlgate(tmp_path / "config.json")
    no_user = cli("login", "--server", server.url, input=server.admin_password + "\n")
    assert no_user.returncode == 2
    assert no_user.stderr.strip() == "mlgate: --username is required when stdin is not a terminal."
    no_flag = cli("login", "--server", server.url, "--username", "admin", input=server.admin_password + "\n")
    assert no_flag.returncode == 2
    assert "add --password-stdin" in no_flag.stderr
    ok = cli("login", "--server", server.url, "--username", "admin", "--password-stdin",
             input=server.admin_password + "\n")
    assert ok.returncode == 0, ok.stderr


def test_a_refused_login_names_the_way_for_single_sign_on_users(server, tmp_path):
    cli = Mlgate(tmp_path / "config.json")
    result = cli("login", "--server", server.url, "--username", "sso-only-person", "--password-stdin",
                 input="whatever-it-is\n")
    assert result.returncode == 4, result.stdout + result.stderr
    assert (f"create a token at {server.url}/account, then run `mlgate login --server {server.url} --token-stdin`"
            in result.stderr)
