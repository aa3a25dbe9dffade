"""What a test run prepares by itself, and the one line that says what did not run and how to run it.

tests/conftest.py imports the two hooks: at session start the node packages of the test IdP (tests/oidc) and of
the Azure Storage emulator (tests/azurite) are installed when ``node`` is there and they are missing (as
bench/.venv-mlflow is built on demand); at the end, after
pytest's ``-rs`` list, one line counts the skipped tests by cause and names the command that enables them
(each skip reason from tests/services.py ends with ``(to run: <command>)``).
"""

from __future__ import annotations

import fcntl
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

import pytest

from tests.services import IN_CI, TO_RUN

IDP_DIR = Path(__file__).resolve().parent / "oidc"
AZURITE_DIR = Path(__file__).resolve().parent / "azurite"
# Each directory with a package-lock.json, and the package whose presence shows `npm ci` ran there.
NODE_PACKAGES = ((IDP_DIR, "oidc-provider", "the test IdP"), (AZURITE_DIR, "azurite", "the Azure Storage emulator"))
_HINT = re.compile(r"^(?:Skipped: )?(?P<reason>.*?)\s*\(" + re.escape(TO_RUN) + r"(?P<command>.+)\)$", re.S)


def prepare_node_packages(directory: Path, package: str, purpose: str, write=print) -> None:
    """``npm ci`` in ``directory`` when node and npm exist and ``package`` is not installed there yet."""
    if (directory / "node_modules" / package).exists() or not (directory / "package-lock.json").exists():
        return
    if shutil.which("node") is None or shutil.which("npm") is None:
        return  # the tests that need it skip, naming the command that installs node
    # Two test runs starting together must not both write node_modules.
    with open(Path(tempfile.gettempdir()) / "mlgate-npm-ci.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (directory / "node_modules" / package).exists():
            return
        where = directory.relative_to(directory.parent.parent)
        write(f"preparing {purpose}: npm ci in {where}")
        done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=directory, capture_output=True,
                              text=True, timeout=600, check=False)
        if done.returncode != 0:
            message = f"npm ci in {where} failed ({done.returncode}): {done.stderr.strip()[-800:]}"
            if IN_CI:
                raise pytest.UsageError(message)
            write(message + f"\nthe tests that need {purpose} will be skipped")


def skip_summary(reports) -> str | None:
    """One line: how many tests did not run, why, and the command that would run them (None: all ran)."""
    by_command: Counter[str] = Counter()
    label: dict[str, str] = {}
    other = 0
    for report in reports:
        longrepr = getattr(report, "longrepr", None)
        reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr or "")
        match = _HINT.match(reason.strip())
        if match is None:
            other += 1
            continue
        by_command[match["command"]] += 1
        label.setdefault(match["command"], match["reason"])
    total = sum(by_command.values()) + other
    if total == 0:
        return None
    causes = [f"{count} because {label[command]}" for command, count in by_command.most_common()]
    if other:
        causes.append(f"{other} for the reasons listed above")
    line = f"not run: {total} skipped tests ({'; '.join(causes)})"
    if by_command:
        line += "; to run them: " + " && ".join(command for command, _ in by_command.most_common())
    return line


def pytest_sessionstart(session: pytest.Session) -> None:
    if hasattr(session.config, "workerinput"):
        return  # an xdist worker: the controller prepared everything before starting it
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    for directory, package, purpose in NODE_PACKAGES:
        prepare_node_packages(directory, package, purpose, reporter.write_line if reporter is not None else print)


@pytest.hookimpl(wrapper=True, tryfirst=True)  # outermost: after pytest's -rs list
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    result = yield
    line = skip_summary(terminalreporter.stats.get("skipped", []))
    if line is not None:
        terminalreporter.write_line(line, yellow=True, bold=True)
    return result
