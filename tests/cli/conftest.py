"""Fixtures for driving the installed ``mlgate`` command: a runner, one server per module, a signed-in admin."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LiveServer, start_server


class Mlgate:
    """Runs ``mlgate`` as an operator would, with its own config file and a clean MLGATE_* environment."""

    def __init__(self, config: Path, **env: str):
        exe = shutil.which("mlgate")
        self.command = [exe] if exe else [sys.executable, "-m", "gateway.cli"]
        base = {k: v for k, v in os.environ.items() if not k.startswith("MLGATE_")}
        self.env = {**base, "MLGATE_CONFIG": str(config), **env}

    def __call__(self, *args: str, input: str | None = None, **env: str) -> subprocess.CompletedProcess:
        """Run one command; never raises on a non-zero exit."""
        return subprocess.run([*self.command, *args], capture_output=True, text=True, timeout=60, check=False,
                              input=input, env={**self.env, **env})

    def json(self, *args: str, input: str | None = None, **env: str):
        """Run with ``--output json``, assert success, and parse stdout."""
        result = self(*args, "--output", "json", input=input, **env)
        assert result.returncode == 0, result.stdout + result.stderr
        return json.loads(result.stdout)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[LiveServer]:
    """One real server for the whole module."""
    workdir = tmp_path_factory.mktemp("cli-server")
    live = start_server(workdir, f"sqlite:///{workdir / 'mlgate.db'}")
    yield live
    live.stop()


@pytest.fixture(scope="module")
def admin(server: LiveServer, tmp_path_factory) -> Mlgate:
    """``mlgate`` signed in to ``server`` as its administrator through ``mlgate login``."""
    cli = Mlgate(tmp_path_factory.mktemp("cli-config") / "config.json")
    result = cli("login", "--server", server.url, "--username", server.admin_username, "--password-stdin",
                 input=server.admin_password + "\n")
    assert result.returncode == 0, result.stdout + result.stderr
    return cli
