"""The README's test command is the one CI runs, byte for byte, so the two cannot drift apart."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def readme_test_command(readme: str) -> tuple[str, str]:
    """(install, test) from the README's first code block: the line that runs the tests."""
    block = re.search(r"```bash\n(.*?)```", readme, re.S)
    assert block, "README.md starts without a bash code block"
    lines = [line.split("  #", 1)[0].strip() for line in block.group(1).splitlines()]
    tests = [line for line in lines if line.endswith("python3 -m pytest")]
    assert len(tests) == 1, f"README's first block needs exactly one line ending in `python3 -m pytest`: {lines}"
    install, _, test = tests[0].partition(" && ")
    return install, test


def ci_commands(script: str) -> list[str]:
    """.ci/run's command lines, comments and blank lines left out."""
    return [line.strip() for line in script.splitlines() if line.strip() and not line.strip().startswith("#")]


def check(readme: str, script: str) -> None:
    """Fail unless .ci/run runs the README's test command (install && pytest) as one line, as written."""
    install, test = readme_test_command(readme)
    commands = ci_commands(script)
    whole = f"{install} && {test}"
    assert whole in commands, f".ci/run does not run the README's test command as one line {whole!r}"
    assert "-c requirements/lock.txt" in install, "the README's install must use the lock CI tested and audited"


def test_ci_runs_the_readmes_commands():
    check((ROOT / "README.md").read_text(), (ROOT / ".ci" / "run").read_text())


@pytest.mark.parametrize(("readme", "script"), [
    # pytest with other flags in CI than in the README
    ("```bash\npip install -c requirements/lock.txt -e '.[test]' && python3 -m pytest\n```",
     "pip install -c requirements/lock.txt -e '.[test]'\npython3 -m pytest -q\n"),
    # an install without the lock
    ("```bash\npip install -e '.[test]' && python3 -m pytest\n```", "pip install -e '.[test]'\npython3 -m pytest\n"),
    # CI's install differs
    ("```bash\npip install -c requirements/lock.txt -e '.[test]' && python3 -m pytest\n```",
     "pip install -q -c requirements/lock.txt -e '.[test]'\npython3 -m pytest\n"),
    # the same two commands on separate lines: a failed install would not stop CI's tests as it stops a newcomer's
    ("```bash\npip install -c requirements/lock.txt -e '.[test]' && python3 -m pytest\n```",
     "pip install -c requirements/lock.txt -e '.[test]'\npython3 -m pytest\n"),
    # only in a comment
    ("```bash\npip install -c requirements/lock.txt -e '.[test]' && python3 -m pytest\n```",
     "# pip install -c requirements/lock.txt -e '.[test]'\npython3 -m pytest\n"),
])
def test_the_check_fails_when_they_differ(readme, script):
    with pytest.raises(AssertionError):
        check(readme, script)


def test_ci_normalises_ci():
    """An inherited CI=1 (or empty) must not turn CI's failures on missing services back into skips."""
    assert "export CI=true" in ci_commands((ROOT / ".ci" / "run").read_text())
