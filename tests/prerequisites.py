"""What a test run prepares by itself, and the one line that says what did not run and how to run it.

tests/conftest.py imports the two hooks: at session start the test IdP's node packages are installed when
``node`` is there and they are missing (as bench/.venv-mlflow is built on demand); at the end, after
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
_HINT = re.compile(r"^(?:Skipped: )?(?P<reason>.*?)\s*\(" + re.escape(TO_RUN) + r"(?P<command>.+)\)$", re.S)


def prepare_test_idp(write=print) -> None:
    """``npm ci`` in tests/oidc when node and npm exist and oidc-provider is not installed yet."""
    if (IDP_DIR / "node_modules" / "oidc-provider").exists() or not (IDP_DIR / "package-lock.json").exists():
        return
    if shutil.which("node") is None or shutil.which("npm") is None:
        return  # the IdP tests skip, naming the command that installs node
    # Two test runs starting together must not both write node_modules.
    with open(Path(tempfile.gettempdir()) / "mlgate-npm-ci.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (IDP_DIR / "node_modules" / "oidc-provider").exists():
            return
        write("preparing the test IdP: npm ci in tests/oidc")
        done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=IDP_DIR, capture_output=True,
                              text=True, timeout=600, check=False)
        if done.returncode != 0:
            message = f"npm ci in tests/oidc failed ({done.returncode}): {done.stderr.strip()[-800:]}"
            if IN_CI:
                raise pytest.UsageError(message)
            write(message + "\nthe tests that need the test IdP will be skipped")


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
    prepare_test_idp(reporter.write_line if reporter is not None else print)


@pytest.hookimpl(wrapper=True, tryfirst=True)  # outermost: after pytest's -rs list
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    result = yield
    line = skip_summary(terminalreporter.stats.get("skipped", []))
    if line is not None:
        terminalreporter.write_line(line, yellow=True, bold=True)
    return result
