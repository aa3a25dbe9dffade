"""The offline advisory snapshot (shared/advisories.json, not committed): build it, and match a pin against it.

These machines reach PyPI, Debian and npm only; PyPI's per-release JSON API, which carries a release's
advisories, answers 404 for every release here (only ``/pypi/<name>/json``, the latest release's, is served).
So the audit reads a snapshot of the Python Packaging Advisory Database (PyPA's OSV records, the data PyPI
shows per release), kept in the repository with the source commit and its date, for every project in
requirements/lock.txt. Refresh it from a checkout (or bare clone) of github.com/pypa/advisory-database,
obtained wherever GitHub is reachable:

    python3 -m tests.security.advisories --from /path/to/advisory-database

The records are CC-BY-4.0 (PyPA); only what matching needs is kept: id, aliases, affected ranges.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import yaml
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from tests.security.lock_deps import LOCK, ROOT

# Where the snapshot is read from. It is data taken from a public repository, which this project does not
# commit: it lives beside the checkout in the steering repository's shared/ folder (CI has a copy there),
# or wherever MLGATE_ADVISORY_SNAPSHOT points.
SNAPSHOT = Path(os.environ.get("MLGATE_ADVISORY_SNAPSHOT") or ROOT.parent / "shared" / "advisories.json")
SOURCE = "https://github.com/pypa/advisory-database"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def lock_names(lock: Path = LOCK) -> list[str]:
    """Canonical project names pinned in the lock."""
    names = []
    for line in lock.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(canonicalize_name(line.partition("==")[0]))
    return sorted(set(names))


def _affected_ranges(record: dict, name: str) -> tuple[list[list[str | None]], list[str]]:
    """[[introduced, fixed, last_affected], ...] and the explicit versions, for ``name`` in one OSV record."""
    ranges, versions = [], []
    for affected in record.get("affected", []):
        package = affected.get("package", {})
        if package.get("ecosystem") != "PyPI" or canonicalize_name(package.get("name", "")) != name:
            continue
        for rng in affected.get("ranges", []):
            if rng.get("type") not in ("ECOSYSTEM", "SEMVER"):
                continue
            current: list[str | None] | None = None
            for event in rng.get("events", []):
                if "introduced" in event:
                    current = [str(event["introduced"]), None, None]
                    ranges.append(current)
                elif current is not None and "fixed" in event:
                    current[1] = str(event["fixed"])
                elif current is not None and "last_affected" in event:
                    current[2] = str(event["last_affected"])
        versions += [str(v) for v in affected.get("versions", [])]
    return ranges, versions


def build(repo: Path, names: list[str]) -> dict:
    """The snapshot for ``names`` from an advisory-database checkout or bare clone at ``repo``."""
    commit, date = _git(repo, "log", "-1", "--format=%H %cI", "HEAD").split()
    directories = {canonicalize_name(Path(p).name): p
                   for p in _git(repo, "ls-tree", "--name-only", "HEAD", "vulns/").split()}
    projects: dict[str, list[dict]] = {}
    for name in names:
        records = []
        if name in directories:
            for path in sorted(_git(repo, "ls-tree", "-r", "--name-only", "HEAD", directories[name] + "/").split()):
                record = yaml.safe_load(_git(repo, "show", f"HEAD:{path}"))
                ranges, versions = _affected_ranges(record, name)
                records.append({"id": record["id"], "aliases": sorted(record.get("aliases") or []),
                                "withdrawn": bool(record.get("withdrawn")), "ranges": ranges,
                                # explicit versions only where no range says it (they can be long)
                                "versions": [] if ranges else sorted(versions)})
        projects[name] = records
    return {"source": SOURCE, "commit": commit, "commit_date": date,
            "generated": datetime.now(UTC).date().isoformat(), "license": "CC-BY-4.0 (PyPA advisory-database)",
            "projects": projects}


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def affecting(records: list[dict], version: str) -> list[str]:
    """Ids of the records (not withdrawn) whose ranges or versions include ``version``."""
    pinned = _version(version)
    hits = []
    for record in records:
        if record["withdrawn"]:
            continue
        hit = version in record["versions"]
        for introduced, fixed, last_affected in record["ranges"]:
            if pinned is None:
                break
            low = _version(introduced) if introduced not in (None, "0") else None
            if low is not None and pinned < low:
                continue
            high, last = _version(fixed) if fixed else None, _version(last_affected) if last_affected else None
            if (fixed and high is not None and pinned < high) or (last is not None and pinned <= last) \
                    or (not fixed and not last_affected):
                hit = True
        if hit:
            hits.append(record["id"])
    return hits


def load(path: Path = SNAPSHOT) -> dict | None:
    """The snapshot, or None when there is none at ``path``."""
    return json.loads(path.read_text()) if path.is_file() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="repo", type=Path, required=True,
                        help="a checkout or bare clone of github.com/pypa/advisory-database")
    args = parser.parse_args(argv)
    snapshot = build(args.repo, lock_names())
    SNAPSHOT.write_text(json.dumps(snapshot, indent=1, sort_keys=True) + "\n")
    count = sum(len(v) for v in snapshot["projects"].values())
    print(f"wrote {SNAPSHOT}: {len(snapshot['projects'])} projects, {count} advisories, "
          f"source {snapshot['commit'][:12]} of {snapshot['commit_date']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
