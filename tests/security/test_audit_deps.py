"""The dependency audit gates: an affected pin, a pin the snapshot lacks, and a yanked pin each fail it."""

from __future__ import annotations

import pytest

from tests.security import audit_deps
from tests.security.advisories import affecting, load, lock_names

RECORD = {"id": "PYSEC-0000-1", "aliases": ["CVE-0000-1"], "withdrawn": False,
          "ranges": [["0", "2.0", None], ["3.0", None, "3.1"]], "versions": []}


@pytest.mark.parametrize(("version", "hit"), [("1.9", True), ("2.0", False), ("2.5", False), ("3.0", True),
                                              ("3.1", True), ("3.2", False)])
def test_ranges(version, hit):
    assert affecting([RECORD], version) == (["PYSEC-0000-1"] if hit else [])


def test_withdrawn_and_explicit_versions():
    assert affecting([{**RECORD, "withdrawn": True}], "1.0") == []
    assert affecting([{**RECORD, "ranges": [], "versions": ["1.0"]}], "1.0") == ["PYSEC-0000-1"]


def _run(tmp_path, monkeypatch, lock: str, projects: dict, exceptions: dict | None = None):
    path = tmp_path / "lock.txt"
    path.write_text(lock)
    snapshot = {"commit": "0" * 40, "commit_date": "2024-10-10T00:00:00+00:00", "source": "test",
                "projects": projects}
    monkeypatch.setattr(audit_deps, "load", lambda _path: snapshot)
    monkeypatch.setattr(audit_deps, "read_exceptions", lambda: exceptions or {})
    monkeypatch.setattr(audit_deps, "runtime_names", lambda: {"demo"})
    return audit_deps.main(["--lock", str(path), "--offline"])


def test_an_affected_pin_fails(tmp_path, monkeypatch, capsys):
    assert _run(tmp_path, monkeypatch, "demo==1.0\n", {"demo": [RECORD]}) == 1
    assert "VULNERABLE: demo==1.0: PYSEC-0000-1" in capsys.readouterr().out


def test_an_exception_accepts_it_by_any_alias(tmp_path, monkeypatch):
    assert _run(tmp_path, monkeypatch, "demo==1.0\n", {"demo": [RECORD]}, {"CVE-0000-1": "does not apply"}) == 0


def test_a_pin_missing_from_the_snapshot_fails(tmp_path, monkeypatch, capsys):
    assert _run(tmp_path, monkeypatch, "demo==2.0\nnew==1.0\n", {"demo": [RECORD]}) == 2
    out = capsys.readouterr().out
    assert "NOT IN THE SNAPSHOT: new==1.0" in out
    assert "1 of 2 pins audited, runtime 1 of 1" in out


def test_a_clean_lock_passes(tmp_path, monkeypatch):
    assert _run(tmp_path, monkeypatch, "demo==2.0\n", {"demo": [RECORD]}) == 0


def test_the_snapshot_covers_the_lock():
    """Every pinned project is in the advisory snapshot, where one is kept (shared/advisories.json)."""
    snapshot = load()
    if snapshot is None:
        pytest.skip("no advisory snapshot beside the checkout (shared/advisories.json): see SECURITY.md")
    assert sorted(snapshot["projects"]) == lock_names()
