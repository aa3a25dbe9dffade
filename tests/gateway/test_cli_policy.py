"""``mlgate policy validate|test`` as an operator runs them: the installed command, exit codes and output."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CASES_DIR = Path(__file__).resolve().parent.parent / "policies" / "cases"


def mlgate(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("mlgate")
    command = [exe] if exe else [sys.executable, "-m", "gateway.cli"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=60, check=False)


def test_validate_lists_every_problem_and_exits_1(tmp_path):
    bad = tmp_path / "policy.yaml"
    bad.write_text(
        "version: 1\n"
        "access:\n"
        "  default_permission: WRITE\n"
        "  grants:\n"
        "    - {principal: 'team-a', resource: 'experiment:1', permission: READ}\n"
    )
    result = mlgate("policy", "validate", str(bad), "--output", "json")
    assert result.returncode == 1
    problems = json.loads(result.stdout)["problems"]
    assert any(p.startswith("access.default_permission:") for p in problems), problems
    assert any(p.startswith("access.grants[0].principal:") for p in problems), problems


def test_validate_accepts_the_shipped_example():
    example = Path(__file__).resolve().parents[2] / "policies" / "file" / "example-policy.yaml"
    result = mlgate("policy", "validate", str(example))
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout


@pytest.mark.parametrize("case_file", sorted(p.name for p in CASES_DIR.glob("*.yaml")))
def test_the_projects_own_cases_pass_through_the_cli(case_file):
    result = mlgate("policy", "test", str(CASES_DIR / case_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 failed" in result.stdout


def test_a_failing_case_exits_1_and_names_it(tmp_path):
    cases = tmp_path / "cases.yaml"
    cases.write_text(
        "policy:\n"
        "  access:\n"
        "    grants:\n"
        "      - {principal: 'user:alice', resource: 'experiment:1', permission: READ}\n"
        "cases:\n"
        "  - name: alice may write (wrong on purpose)\n"
        "    principal: user:alice\n"
        "    operation: runs.log_metric\n"
        "    experiment: {id: '1', name: exp}\n"
        "    expect: allow\n"
    )
    result = mlgate("policy", "test", str(cases))
    assert result.returncode == 1
    assert "FAIL alice may write (wrong on purpose)" in result.stdout
    assert "0 passed, 1 failed" in result.stdout
