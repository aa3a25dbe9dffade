"""docs/performance.md's generated tables are exactly bench/report.py's rendering of the JSON each names."""

from __future__ import annotations

import json
from pathlib import Path

from bench import report

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "performance.md"


def test_the_published_tables_match_their_json():
    text = DOC.read_text()
    blocks = list(report.BLOCK.finditer(text))
    assert blocks, "docs/performance.md has no generated block"
    for block in blocks:
        assert (ROOT / block["path"]).is_file(), block["path"]
    assert report.regenerated(text) == text, "run: python3 bench/report.py --update docs/performance.md"


def test_a_changed_figure_or_json_is_caught(tmp_path: Path):
    text = DOC.read_text()
    block = next(report.BLOCK.finditer(text))
    edited = text.replace(block["body"], block["body"].replace("| get-run | mlgate |", "| get-run | mlgate* |"), 1)
    assert edited != text
    assert report.regenerated(edited) != edited
    for other in report.BLOCK.finditer(text):  # every other block's JSON unchanged
        (tmp_path / other["path"]).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / other["path"]).write_text((ROOT / other["path"]).read_text())
    data = json.loads((ROOT / block["path"]).read_text())
    data["rows"][0]["rps"] += 1
    (tmp_path / block["path"]).write_text(json.dumps(data))
    assert report.regenerated(text, root=tmp_path) != text


def test_failed_scenarios_are_marked_and_only_successful_requests_count():
    from bench.wrk import WrkResult

    result = WrkResult(requests=100, seconds=10, p50_ms=1, p99_ms=2, errors=5, non2xx=20)
    assert result.successful == 80
    assert result.rps == 8.0
    assert result.error_rate == 25 / 105
    row = {"scenario": "s", "server": "x", "rps": 8.0, "p50_ms": 1, "p99_ms": 2, "cpu_ms_per_req": 1,
           "peak_rss_mib": 1, "errors": 5, "non2xx": 20, "successful": 80, "error_rate": 25 / 105, "failed": True}
    assert "FAILED: 24% of attempts" in report.tables({"rows": [row]})


def test_scale_runs_say_what_did_not_finish_or_run_and_judge_only_mlgate():
    data = {"kind": "scale", "machine": {"cpus": 2, "load_average_at_start": [9.0], "load_average_at_end": [12.0]},
            "options": {"runs": 100000, "long_runs": 100, "steps": 10000, "keys": 1, "requests": 10, "timeout": 30},
            "rows": [
                {"server": "mlgate", "backend": "sqlite", "seed_seconds": 9,
                 "search-runs": {"p50_ms": 12.0, "p99_ms": 20.0, "cpu_ms_per_req": 5.0},
                 "get-history-bulk-interval": {"did_not_finish_seconds": 30.0},
                 "ui-runs-table": {"p50_ms": 150.0, "p99_ms": 200.0, "cpu_ms_per_req": 50.0}},
                {"server": "mlflow", "backend": "postgresql", "not_run": "no driver"}]}
    text = report.tables(data)
    assert "load average 9.0 at the start and 12.0 at the end" in text
    assert "| sqlite | mlgate | 9 s | search-runs | 12.0 | 20.0 | 5.0 | <= 20 ms | yes |" in text
    assert "| get-history-bulk-interval | did not finish in 30 s | |  | <= 50 ms | **no** |" in text
    assert "| ui-runs-table | 150.0 | 200.0 | 50.0 | <= 100 ms | **no** |" in text
    assert "not run: no driver" in text
