#!/usr/bin/env python3
"""Profile one mlgate scenario with py-spy while wrk loads it; print the hottest functions.

    python3 bench/profile.py get-run                # non-admin user, auth on, 10 s of load
    python3 bench/profile.py search-runs --open     # mlgate-open (security off) for comparison

Writes bench/results/profile-<scenario>.txt (collapsed stacks) and prints self and inclusive time
per function, so a hot path is visible without a flame-graph viewer.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import run as bench_run
from bench import scenarios
from bench.seeding import SeedSpec
from bench.servers import USER_PASSWORD
from bench.wrk import run_wrk


def summarise(collapsed: Path, top: int) -> None:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if f]
        # Idle threads (selectors, waiting workers) are not request cost.
        if frames and any(k in frames[-1] for k in ("select (", "wait (", "_worker (", "epoll", "poll (")):
            continue
        total += n
        if frames:
            own[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n
    print(f"{total} busy samples")
    print("\nself:")
    for f, n in own.most_common(top):
        print(f"  {100 * n / total:5.1f}%  {f}")
    print("\ninclusive:")
    for f, n in inclusive.most_common(top * 2):
        print(f"  {100 * n / total:5.1f}%  {f}")


def main() -> int:
    """Start mlgate, seed it, load one scenario under py-spy and summarise."""
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario")
    parser.add_argument("--open", action="store_true", help="profile mlgate-open instead")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--big-runs", type=int, default=0, help="seed bench-100k too (search-runs-100k)")
    args = parser.parse_args()
    if shutil.which("py-spy") is None:
        print("py-spy is required: pip install py-spy", file=sys.stderr)
        return 2
    name = "mlgate-open" if args.open else "mlgate"
    work = bench_run.RESULTS / f"profile-{time.strftime('%H%M%S')}"
    # The benchmark's cached seeded database (seeded first if needed), so big runs cost seconds, not minutes.
    data = bench_run.seeded(name, SeedSpec(runs=args.runs, big_runs=args.big_runs), work, 5991)
    server, _ = bench_run.start(name, work / name, 5990)
    try:
        ctx = bench_run.setup_server(server, data, work / name)
        load = scenarios.build(args.scenario, ctx, USER_PASSWORD)
        method, paths, bodies = load.method, load.paths, load.bodies
        headers = {**server.user_headers, **load.headers}
        run_wrk(server.url, method, paths, bodies, headers, duration=2, connections=8,
                new_connections=load.new_connections)
        out = bench_run.RESULTS / f"profile-{args.scenario}.txt"
        spy = subprocess.Popen(["py-spy", "record", "--pid", str(server.process.pid), "--format", "raw",
                                "--rate", "200", "--subprocesses", "--nonblocking", "--duration", str(args.duration),
                                "-o", str(out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
        result = run_wrk(server.url, method, paths, bodies, headers, duration=args.duration,
                         connections=8, new_connections=load.new_connections)
        spy.wait(timeout=120)
        print(f"{result.rps:.1f} req/s, {result.errors + result.non2xx} errors")
        summarise(out, args.top)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
