#!/usr/bin/env python3
"""A results JSON of bench/run.py as Markdown tables, and docs/performance.md's generated tables kept equal to them.

    python3 bench/report.py bench/published/<name>.json   # print the tables
    python3 bench/report.py --update docs/performance.md  # rewrite every generated block from its JSON
    python3 bench/report.py --check docs/performance.md   # exit 1 if a generated block differs from its JSON

A generated block in a document starts with ``<!-- bench/report.py <json path> -->`` (the path relative to the
repository) and ends with ``<!-- end of bench/report.py -->``; everything between is the tables of that file.
tests/test_bench_report.py runs the check, so the published figures cannot drift from their raw data.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"(<!-- bench/report\.py (?P<path>\S+) -->\n)(?P<body>.*?)(<!-- end of bench/report\.py -->)",
                   re.DOTALL)


def tables(data: dict) -> str:
    """The run's rows grouped by scenario, then ratios, footprint and targets, as Markdown."""
    out = []
    machine = data.get("machine") or {}
    load = machine.get("load_average_at_end")
    options = data.get("options") or {}
    if load:
        out.append(f"{machine.get('cpus', '?')} CPUs, load average {load[0]:.1f} at the end of the run; "
                   f"{options.get('duration', '?')} s per scenario, {options.get('connections', '?')} connections. "
                   "req/s and MiB/s count successful (2xx/3xx) requests only; a scenario with more than 1 % "
                   "failed attempts is marked FAILED and its figures are not comparisons.\n")
    out.append("| scenario | server | req/s | p50 ms | p99 ms | server CPU ms/req | peak RSS MiB | MiB/s | errors |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    rows = data["rows"]
    for scenario in dict.fromkeys(r["scenario"] for r in rows):
        for r in (r for r in rows if r["scenario"] == scenario):
            mib = f"{r['mib_per_s']:.0f}" if r.get("mib_per_s") is not None else ""
            errors = f"{r['errors'] + r['non2xx']}"
            if r.get("failed"):
                attempts = r["successful"] + r["errors"] + r["non2xx"]
                errors += (f" (FAILED: {r['error_rate']:.0%} of attempts)" if attempts
                           else " (FAILED: no request completed)")
            out.append(f"| {scenario} | {r['server']} | {r['rps']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
                       f"{r['cpu_ms_per_req']:.2f} | {r['peak_rss_mib']:.0f} | {mib} | {errors} |")
    if data.get("ratios"):
        out += ["", "| scenario | mlgate / other: req/s (CPU per request) |", "|---|---|"]
        for scenario, parts in data["ratios"].items():
            if parts:
                out.append(f"| {scenario} | "
                           + "; ".join(f"{o}: {v['rps']}x ({v['cpu']}x)" for o, v in parts.items()) + " |")
    if data.get("footprint"):
        out += ["", "| default server | ready after start | idle RSS (all processes) | processes |",
                "|---|---:|---:|---:|"]
        for name, fp in data["footprint"].items():
            out.append(f"| {name} | {fp['ready_seconds']:.2f} s | {fp['idle_rss_mib']:.0f} MiB | {fp['processes']} |")
    if data.get("targets"):
        out += ["", "| target | measured | goal | met |", "|---|---|---|---|"]
        for t in data["targets"]:
            out.append(f"| {t['target']} | {t['measured']} | {t['goal']} | {'yes' if t['met'] else '**no**'} |")
    return "\n".join(out) + "\n"


def regenerated(text: str, root: Path = ROOT) -> str:
    """``text`` with every generated block rewritten from the JSON file it names."""
    def block(match: re.Match) -> str:
        data = json.loads((root / match["path"]).read_text())
        return match.group(1) + tables(data) + match.group(4)

    return BLOCK.sub(block, text)


def main(argv: list[str] | None = None) -> int:
    """Print one JSON's tables, or update / check a document's generated blocks."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", help="a results JSON, or with --update/--check a Markdown document")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--update", action="store_true", help="rewrite the document's generated blocks")
    mode.add_argument("--check", action="store_true", help="exit 1 if a generated block is not its JSON's tables")
    args = parser.parse_args(argv)
    path = Path(args.path)
    if not (args.update or args.check):
        print(tables(json.loads(path.read_text())), end="")
        return 0
    text = path.read_text()
    if not BLOCK.search(text):
        print(f"{path}: no generated block (<!-- bench/report.py <json> -->)", file=sys.stderr)
        return 1
    fresh = regenerated(text)
    if args.update:
        path.write_text(fresh)
        return 0
    if fresh != text:
        print(f"{path}: generated tables differ from their JSON; run python3 bench/report.py --update {path}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
