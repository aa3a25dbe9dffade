"""Audit requirements/lock.txt for known vulnerabilities; exit non-zero on any finding or any gap.

    python3 -m tests.security.audit_deps                            # fails without a snapshot
    python3 -m tests.security.audit_deps --allow-missing-snapshot   # what CI runs while shared/ has none

Every pin is checked against two sources:

1. shared/advisories.json beside the checkout (or $MLGATE_ADVISORY_SNAPSHOT; never committed), a snapshot
   of the Python Packaging Advisory Database (PyPA's OSV records,
   the data PyPI shows per release) for every project in the lock, with its source commit and date
   (tests/security/advisories.py builds it; SECURITY.md says how to refresh it). It covers every pin; a
   pin whose project is missing from it (a new dependency) fails the audit until the snapshot is rebuilt.
2. PyPI, live, where it answers: the release's own advisories (``/pypi/<name>/<version>/json``), else the
   project document (``/pypi/<name>/json``), whose advisories are the latest release's (so they count only
   when the pin is the latest) and which says whether the pinned release was yanked. Machines that reach
   PyPI only through a mirror without per-release documents get the project document alone; a pin checked
   by neither live source is listed, not failed: the snapshot still covers it.

The audit fails when a pin is affected by an advisory (from either source) that
requirements/audit-exceptions.txt does not accept with a reason, when a pin is yanked, and when any runtime
or test pin is missing from the snapshot (coverage below 100%). Each run prints the coverage and the
snapshot's date.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from packaging.utils import canonicalize_name

from tests.security.advisories import SNAPSHOT, affecting, load
from tests.security.lock_deps import LOCK, closure, root_requirements

ROOT = Path(__file__).resolve().parents[2]
EXCEPTIONS = ROOT / "requirements" / "audit-exceptions.txt"
PYPI = "https://pypi.org/pypi"


@dataclass
class Report:
    """What the audit found."""

    vulnerable: dict[str, list[str]] = field(default_factory=dict)  # "name==version" -> ids
    not_in_snapshot: list[str] = field(default_factory=list)
    live: dict[str, str] = field(default_factory=dict)  # "name==version" -> "release" | "latest" | why not
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


def live_check(name: str, version: str, client: httpx.Client) -> tuple[list[str] | None, str]:
    """Advisories PyPI gives for the pin now: (ids, "release" | "latest"), or (None, why there are none)."""
    try:
        release = client.get(f"{PYPI}/{name}/{version}/json")
        if release.status_code == 200:
            return [v["id"] for v in release.json().get("vulnerabilities", []) if not v.get("withdrawn")], "release"
        project = client.get(f"{PYPI}/{name}/json")
    except httpx.HTTPError as exc:
        return None, f"PyPI unreachable ({type(exc).__name__})"
    if project.status_code != 200:
        return None, f"PyPI answered {project.status_code}"
    doc = project.json()
    files = doc.get("releases", {}).get(version, [])
    if files and all(f.get("yanked") for f in files):
        return [f"YANKED: {files[0].get('yanked_reason') or 'no reason given'}"], "latest"
    if doc.get("info", {}).get("version") != version:
        return None, f"no per-release document; latest is {doc['info']['version']}"
    return [v.get("id") for v in doc.get("vulnerabilities", []) if not v.get("withdrawn")], "latest"


def audit(lock: Path = LOCK, snapshot: dict | None = None, exceptions: dict[str, str] | None = None,
          online: bool = True) -> Report:
    """Every pin against the snapshot and, where PyPI answers, against PyPI's live data."""
    exceptions = read_exceptions() if exceptions is None else exceptions
    snapshot = load(SNAPSHOT) if snapshot is None else snapshot
    report = Report()
    pins = read_lock(lock)
    found: dict[str, set[str]] = {}
    for name, version in pins:
        pin = f"{name}=={version}"
        records = snapshot["projects"].get(canonicalize_name(name))
        if records is None:
            report.not_in_snapshot.append(pin)
            continue
        report.audited += 1
        found.setdefault(pin, set()).update(affecting(records, version))
    if online:
        with httpx.Client(timeout=30, follow_redirects=True) as client, ThreadPoolExecutor(8) as pool:
            results = pool.map(lambda p: live_check(*p, client), pins)
            for (name, version), (ids, how) in zip(pins, results, strict=True):
                pin = f"{name}=={version}"
                report.live[pin] = how
                if ids:
                    found.setdefault(pin, set()).update(ids)
    for pin, ids in found.items():
        # An accepted id may come back under an alias (PyPI names GHSA or CVE ids too): accept by any alias.
        aliases = {r["id"]: set(r["aliases"]) for r in snapshot["projects"].get(
            canonicalize_name(pin.partition("==")[0]), [])}
        open_ids = sorted(i for i in ids if i not in exceptions and not (aliases.get(i, set()) & set(exceptions)))
        if open_ids:
            report.vulnerable[pin] = open_ids
    return report


def runtime_names() -> set[str]:
    """Canonical names of the runtime closure (pyproject's dependencies, no extras)."""
    return set(closure(root_requirements(extras=())))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock", type=Path, default=LOCK)
    parser.add_argument("--offline", action="store_true", help="the snapshot only, no PyPI requests")
    parser.add_argument("--allow-missing-snapshot", action="store_true",
                        help="without a snapshot, audit what live PyPI data covers and list the rest (exit 0)")
    args = parser.parse_args(argv)
    exceptions = read_exceptions()
    snapshot = load(SNAPSHOT)
    if snapshot is None:
        print(f"NO ADVISORY SNAPSHOT at {SNAPSHOT}: only live PyPI data is audited (see SECURITY.md)")
        if not args.allow_missing_snapshot:
            return 2
        snapshot = {"commit": "none", "commit_date": "none", "source": "no snapshot", "projects": {}}
    report = audit(args.lock, snapshot, exceptions, online=not args.offline)
    pins = read_lock(args.lock)
    runtime = runtime_names()
    runtime_pins = [p for p in pins if canonicalize_name(p[0]) in runtime]
    runtime_covered = sum(1 for n, v in runtime_pins if f"{n}=={v}" not in report.not_in_snapshot)
    for vuln_id, reason in sorted(exceptions.items()):
        print(f"accepted: {vuln_id}: {reason}")
    for pin, ids in sorted(report.vulnerable.items()):
        print(f"VULNERABLE: {pin}: {', '.join(ids)}")
    for pin in report.not_in_snapshot:
        print(f"NOT IN THE SNAPSHOT: {pin}")
    live = list(report.live.values())
    print(f"snapshot {snapshot['commit'][:12]} of {snapshot['commit_date'][:10]} ({snapshot['source']}): "
          f"{report.audited} of {len(pins)} pins audited, runtime {runtime_covered} of {len(runtime_pins)}; "
          f"live PyPI data: {live.count('release')} per release, {live.count('latest')} as the latest release, "
          f"{len(live) - live.count('release') - live.count('latest')} none"
          + (" (offline)" if args.offline else ""))
    print(f"{len(report.vulnerable)} vulnerable")
    if report.vulnerable:
        print("Upgrade the pin (pip install -U <name>, then python3 -m tests.security.lock_deps) or add an "
              "exception with its justification to requirements/audit-exceptions.txt.")
        return 1
    if report.not_in_snapshot and not (args.allow_missing_snapshot and not snapshot["projects"]):
        print("Pins missing from the advisory snapshot: rebuild it (python3 -m tests.security.advisories "
              "--from <advisory-database checkout>), see SECURITY.md.")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
