#!/usr/bin/env python3
"""Print a results JSON of bench/run.py as Markdown tables (for docs/performance.md).

    python3 bench/report.py bench/results/<stamp>.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> int:
    """Rows grouped by scenario, then the targets."""
    data = json.loads(Path(sys.argv[1]).read_text())
    rows = data["rows"]
    print("| scenario | server | req/s | p50 ms | p99 ms | server CPU ms/req | peak RSS MiB | MiB/s | errors |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for scenario in dict.fromkeys(r["scenario"] for r in rows):
        for r in (r for r in rows if r["scenario"] == scenario):
            mib = f"{r['mib_per_s']:.0f}" if r.get("mib_per_s") is not None else ""
            print(f"| {scenario} | {r['server']} | {r['rps']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
                  f"{r['cpu_ms_per_req']:.2f} | {r['peak_rss_mib']:.0f} | {mib} | {r['errors'] + r['non2xx']} |")
    if data.get("ratios"):
        print("\n| scenario | mlgate / other: req/s (CPU per request) |")
        print("|---|---|")
        for scenario, parts in data["ratios"].items():
            text = "; ".join(f"{o}: {v['rps']}x ({v['cpu']}x)" for o, v in parts.items())
            print(f"| {scenario} | {text} |")
    if data.get("footprint"):
        print("\n| default server | ready after start | idle RSS (all processes) | processes |")
        print("|---|---:|---:|---:|")
        for name, fp in data["footprint"].items():
            print(f"| {name} | {fp['ready_seconds']:.2f} s | {fp['idle_rss_mib']:.0f} MiB | {fp['processes']} |")
    if data.get("targets"):
        print("\n| target | measured | goal | met |")
        print("|---|---|---|---|")
        for t in data["targets"]:
            print(f"| {t['target']} | {t['measured']} | {t['goal']} | {'yes' if t['met'] else '**no**'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
