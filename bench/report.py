#!/usr/bin/env python3
"""A results JSON of bench/run.py as Markdown tables, and docs/performance.md's generated tables kept equal to them.

    python3 bench/report.py bench/published/<name>.json   # print the tables
    python3 bench/report.py --update docs/performance.md  # rewrite every generated block from its JSON
    python3 bench/report.py --check docs/performance.md   # exit 1 if a generated block differs from its JSON
    python3 bench/report.py --charts docs/img bench/published/<name>.json   # a PNG per scenario (matplotlib)

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


def _load(machine: dict) -> str:
    start, end = machine.get("load_average_at_start"), machine.get("load_average_at_end")
    if start:
        return f"load average {start[0]:.1f} at the start and {end[0]:.1f} at the end of the run"
    return f"load average {end[0]:.1f} at the end of the run"


# bench/scale.py's scenarios and the goal for each (p50 from one client, ms).
SCALE_GOALS = {"search-runs": 20, "get-history-bulk-interval": 50, "ui-runs-table": 100}


def scale_tables(data: dict) -> str:
    """bench/scale.py's JSON: per backend and server, each scenario's p50/p99/CPU or why it has none."""
    machine, options = data.get("machine") or {}, data.get("options") or {}
    out = [f"{machine.get('cpus', '?')} CPUs, {_load(machine)}; {options.get('runs')} runs in the experiment, "
           f"{options.get('long_runs')} of them with {options.get('steps')} steps of {options.get('keys')} "
           f"metric(s); {options.get('requests')} requests per scenario, one at a time; a request over "
           f"{options.get('timeout'):.0f} s did not finish.\n",
           "| backend | server | seeded in | scenario | p50 ms | p99 ms | server CPU ms/req | goal (p50) | met |",
           "|---|---|---:|---|---:|---:|---:|---:|---|"]
    for row in data["rows"]:
        if "not_run" in row:
            out.append(f"| {row['backend']} | {row['server']} | | all | not run: {row['not_run']} | | | | |")
            continue
        for scenario, goal in SCALE_GOALS.items():
            r = row.get(scenario) or {}
            mine = row["server"] == "mlgate"
            if "did_not_finish_seconds" in r:
                figures = f"did not finish in {r['did_not_finish_seconds']:.0f} s | | "
                met = "**no**" if mine else ""
            else:
                figures = f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['cpu_ms_per_req']:.1f}"
                met = ("yes" if r["p50_ms"] <= goal else "**no**") if mine else ""
            out.append(f"| {row['backend']} | {row['server']} | {row.get('seed_seconds', 0):.0f} s | {scenario} | "
                       f"{figures} | <= {goal} ms | {met} |")
    return "\n".join(out) + "\n"


def tables(data: dict) -> str:
    """The run's rows grouped by scenario, then ratios, footprint and targets, as Markdown."""
    if data.get("kind") == "scale":
        return scale_tables(data)
    out = []
    machine = data.get("machine") or {}
    load = machine.get("load_average_at_end")
    options = data.get("options") or {}
    if load:
        out.append(f"{machine.get('cpus', '?')} CPUs, {_load(machine)}; "
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


def charts(data: dict, directory: Path, stem: str) -> list[Path]:
    """A PNG per scenario: server CPU per request of every server (bench/run.py's JSON, the floor and the
    mlgate/floor multiple named), or p50 per backend and server against the goal (bench/scale.py's)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    if data.get("kind") == "scale":
        rows = [r for r in data["rows"] if "not_run" not in r]
        for scenario, goal in SCALE_GOALS.items():
            labels, values, colours = [], [], []
            for r in rows:
                figures = r.get(scenario) or {}
                labels.append(f"{r['server']}\n{r['backend']}")
                if "did_not_finish_seconds" in figures:
                    values.append(figures["did_not_finish_seconds"] * 1000)
                    colours.append("lightgrey")
                else:
                    values.append(figures["p50_ms"])
                    colours.append("tab:blue" if r["server"] == "mlgate" else "tab:orange")
            fig, ax = plt.subplots(figsize=(6, 3.6))
            bars = ax.bar(labels, values, color=colours)
            ax.axhline(goal, color="tab:red", linestyle="--", label=f"goal {goal} ms")
            for bar, value, colour in zip(bars, values, colours, strict=True):
                text = "did not finish" if colour == "lightgrey" else f"{value:.0f} ms"
                ax.annotate(text, (bar.get_x() + bar.get_width() / 2, value), ha="center", va="bottom", fontsize=8)
            ax.set_yscale("log")
            ax.set_ylabel("p50 ms, one client (log scale)")
            ax.set_title(f"{scenario} at scale ({data['options']['runs']:,} runs)", fontsize=10)
            ax.legend(fontsize=8)
            fig.tight_layout()
            path = directory / f"{stem}-{scenario}.png"
            fig.savefig(path, dpi=100)
            plt.close(fig)
            written.append(path)
        return written
    rows = data["rows"]
    for scenario in dict.fromkeys(r["scenario"] for r in rows):
        mine = [r for r in rows if r["scenario"] == scenario and not r.get("failed")]
        floor = next((r for r in mine if r["server"] == "floor"), None)
        fig, ax = plt.subplots(figsize=(6, 3.6))
        bars = ax.bar([r["server"] for r in mine], [r["cpu_ms_per_req"] for r in mine],
                      color=["tab:grey" if r["server"] == "floor" else "tab:blue" if r["server"].startswith("mlgate")
                             else "tab:orange" for r in mine])
        for bar, r in zip(bars, mine, strict=True):
            label = f"{r['cpu_ms_per_req']:.2f} ms"
            if floor and r is not floor and floor["cpu_ms_per_req"]:
                label += f"\n{r['cpu_ms_per_req'] / floor['cpu_ms_per_req']:.1f}x floor"
            ax.annotate(label, (bar.get_x() + bar.get_width() / 2, r["cpu_ms_per_req"]), ha="center",
                        va="bottom", fontsize=8)
        ax.set_ylabel("server CPU ms per request")
        ax.set_ylim(0, max(r["cpu_ms_per_req"] for r in mine) * 1.3)
        ax.set_title(f"{scenario}: CPU per request, side by side in one run", fontsize=10)
        fig.tight_layout()
        path = directory / f"{stem}-{scenario}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


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
    mode.add_argument("--charts", metavar="DIR", help="write a PNG per scenario of the JSON into DIR")
    args = parser.parse_args(argv)
    path = Path(args.path)
    if args.charts:
        try:
            written = charts(json.loads(path.read_text()), Path(args.charts), path.stem)
        except ImportError:
            print("matplotlib is needed for charts (it comes with mlgate[test], through mlflow)", file=sys.stderr)
            return 2
        print("\n".join(str(p) for p in written))
        return 0
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
