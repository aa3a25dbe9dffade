"""Audit requirements/lock.txt for known vulnerabilities with pip-audit; exit non-zero if any is found.

    python3 -m tests.security.audit_deps                  # what CI runs
    python3 -m tests.security.audit_deps --allow-unreachable

pip-audit asks PyPI's per-release JSON API (``/pypi/<name>/<version>/json``, which carries the
release's advisories from the Python Packaging Advisory Database / OSV). Accepted exceptions live in
requirements/audit-exceptions.txt, one ``<vulnerability id>  <why it does not apply>`` per line; an
exception without a reason is an error, and one whose vulnerability no longer appears is reported so
it can be removed.

When pip-audit cannot reach the advisory data for a release (a mirror or proxy that serves only
``/pypi/<name>/json``, as in some sandboxes), the release is checked against what that project-level
document does carry: the advisories of the project's latest release (exact when the pin is the
latest) and whether the pinned release was yanked. What could not be audited is listed; without
``--allow-unreachable`` that is a failure, since an audit that saw nothing proves nothing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements" / "lock.txt"
EXCEPTIONS = ROOT / "requirements" / "audit-exceptions.txt"
PYPI = "https://pypi.org/pypi"


@dataclass
class Report:
    """What the audit found."""

    vulnerable: dict[str, list[str]] = field(default_factory=dict)  # "name==version" -> ids
    unaudited: dict[str, str] = field(default_factory=dict)  # "name==version" -> why
    audited: int = 0


def read_exceptions(path: Path = EXCEPTIONS) -> dict[str, str]:
    """Accepted vulnerability ids and their justification; every line needs both."""
    out, problems = {}, []
    if not path.exists():
        return out
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        vuln_id, _, reason = line.partition(" ")
        if not reason.strip():
            problems.append(f"{path.name}:{number}: {vuln_id} has no justification")
        out[vuln_id] = reason.strip()
    if problems:
        raise SystemExit("\n".join(problems))
    return out


def read_lock(path: Path = LOCK) -> list[tuple[str, str]]:
    """(name, version) of every pin."""
    pins = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins.append((name, version))
    return pins


def run_pip_audit(lock: Path, ignored: list[str]) -> dict:
    """pip-audit's JSON report over the lock file (no resolution: the lock is complete)."""
    command = [sys.executable, "-m", "pip_audit", "-r", str(lock), "--no-deps", "--disable-pip",
               "--progress-spinner", "off", "--format", "json", "--vulnerability-service", "pypi"]
    for vuln_id in ignored:
        command += ["--ignore-vuln", vuln_id]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    try:
        return json.loads(done.stdout)
    except ValueError:
        # No report at all (PyPI unreachable, say): every pin goes to the project-level check.
        print(f"pip-audit gave no report ({done.returncode}): {done.stderr.strip()[-500:]}", file=sys.stderr)
        return {"dependencies": [{"name": name, "version": version, "skip_reason": "pip-audit failed"}
                                 for name, version in read_lock(lock)]}


def project_level_check(name: str, version: str, client: httpx.Client) -> tuple[list[str] | None, str]:
    """Advisories from /pypi/<name>/json: (ids, "") when they apply to the pin, else (None, why not)."""
    try:
        response = client.get(f"{PYPI}/{name}/json")
    except httpx.HTTPError as exc:
        return None, f"PyPI unreachable ({type(exc).__name__})"
    if response.status_code != 200:
        return None, f"PyPI answered {response.status_code}"
    doc = response.json()
    files = doc.get("releases", {}).get(version, [])
    if files and all(f.get("yanked") for f in files):
        return [f"YANKED: {files[0].get('yanked_reason') or 'no reason given'}"], ""
    if doc.get("info", {}).get("version") != version:
        return None, f"advisory data unreachable; the project-level document covers only {doc['info']['version']}"
    return [v.get("id") for v in doc.get("vulnerabilities", []) if not v.get("withdrawn")], ""


def audit(lock: Path = LOCK, exceptions: dict[str, str] | None = None) -> Report:
    """pip-audit over the lock, and the project-level check for what it could not audit."""
    exceptions = read_exceptions() if exceptions is None else exceptions
    report = Report()
    result = run_pip_audit(lock, sorted(exceptions))
    versions = {name.lower(): version for name, version in read_lock(lock)}
    skipped = []
    for dep in result.get("dependencies", []):
        version = dep.get("version") or versions.get(dep["name"].lower(), "")  # skipped ones carry none
        pin = f"{dep['name']}=={version}"
        if "skip_reason" in dep:
            skipped.append((dep["name"], version))
            continue
        report.audited += 1
        ids = [v["id"] for v in dep.get("vulns", []) if v["id"] not in exceptions]
        if ids:
            report.vulnerable[pin] = ids
    if skipped:
        with httpx.Client(timeout=30, follow_redirects=True) as client:
            for name, version in skipped:
                ids, why = project_level_check(name, version, client)
                if ids is None:
                    report.unaudited[f"{name}=={version}"] = why
                    continue
                report.audited += 1
                ids = [i for i in ids if i not in exceptions]
                if ids:
                    report.vulnerable[f"{name}=={version}"] = ids
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock", type=Path, default=LOCK)
    parser.add_argument("--allow-unreachable", action="store_true",
                        help="do not fail when some pins could not be audited (they are still listed)")
    args = parser.parse_args(argv)
    exceptions = read_exceptions()
    report = audit(args.lock, exceptions)
    total = len(read_lock(args.lock))
    for vuln_id, reason in sorted(exceptions.items()):
        print(f"accepted: {vuln_id}: {reason}")
    for pin, ids in sorted(report.vulnerable.items()):
        print(f"VULNERABLE: {pin}: {', '.join(ids)}")
    for pin, why in sorted(report.unaudited.items()):
        print(f"not audited: {pin}: {why}")
    print(f"{report.audited} of {total} pins audited, {len(report.vulnerable)} vulnerable, "
          f"{len(report.unaudited)} not audited")
    if report.vulnerable:
        print("Upgrade the pin (pip install -U <name>, then python3 -m tests.security.lock_deps) or add an "
              "exception with its justification to requirements/audit-exceptions.txt.")
        return 1
    if report.unaudited and not args.allow_unreachable:
        print("Some pins could not be audited (advisory data unreachable); rerun where PyPI's JSON API is "
              "reachable, or pass --allow-unreachable to accept a partial audit.")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
