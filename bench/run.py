#!/usr/bin/env python3
"""Side-by-side benchmark of mlgate against MLflow's own server, in one run on one machine.

    python3 bench/run.py --full          # everything: 5 servers, all scenarios, 100k runs, 10k experiments
    python3 bench/run.py --duration 3 --servers mlflow-auth-cache,mlgate --scenarios get-run,log-batch
    python3 bench/run.py --servers floor,mlgate --scenarios get-run,log-batch,search-runs   # vs the floor
    python3 bench/run.py --scale --keys 1   # at scale (bench/scale.py): 100,000 runs, SQLite and PostgreSQL

Each server is started alone (so it has both cores) over a copy of the same seeded data (seeded once per
server family through its REST API and cached in bench/.seed-cache/), loaded by wrk with 8 concurrent
keep-alive connections (and, for get-run, new connections too), then stopped. Server CPU per request is
read from /proc for the server's whole process tree. Results: a table on stdout, and
bench/results/<stamp>.json plus a PNG chart beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import procstat, scenarios, seeding
from bench.scenarios import SCENARIOS, Context, SkipScenario
from bench.seeding import A, SeededData, SeedSpec
from bench.servers import (
    MLFLOW_VENV,
    USER_PASSWORD,
    Server,
    basic,
    start_floor,
    start_mlflow,
    start_mlgate,
    wait_healthy,
)
from bench.wrk import run_wrk, wrk_available

RESULTS = Path(__file__).resolve().parent / "results"
SERVER_NAMES = ["mlflow", "mlflow-auth", "mlflow-auth-cache", "mlgate", "mlgate-open", "floor"]
FAMILY = {"mlflow": "mlflow", "mlflow-auth": "mlflow", "mlflow-auth-cache": "mlflow", "mlgate": "mlgate",
          "mlgate-open": "mlgate", "floor": "mlgate"}
# The floor (bench/floor.py) answers these only; mlgate's CPU per request is reported as a multiple of it,
# with the goal for each.
FLOOR_SCENARIOS = {"get-run": 1.5, "log-batch": 2.0, "search-runs": 3.0}
SEEDER = {"mlflow": "mlflow", "mlgate": "mlgate-open"}  # the plain variant seeds fastest


@dataclass
class Row:
    """One server x scenario measurement."""

    server: str
    scenario: str
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_req: float
    peak_rss_mib: float
    errors: int
    non2xx: int
    mib_per_s: float | None = None
    successful: int = 0  # requests answered 2xx/3xx: the only ones req/s and MiB/s count
    error_rate: float = 0.0  # failed attempts / all attempts; over MAX_ERROR_RATE fails the scenario
    failed: bool = False


# A scenario with more failed attempts than this fails the run: its figures measure error answers, not work.
MAX_ERROR_RATE = 0.01


def api(server: Server, method: str, path: str, *, admin: bool = True, **kwargs) -> dict:
    """One JSON API call, raising with the body on an error."""
    headers = server.admin_headers if admin else server.user_headers
    response = httpx.request(method, server.url + path, headers=headers, timeout=120, **kwargs)
    if response.status_code >= 400:
        raise RuntimeError(f"{method} {path} -> {response.status_code}: {response.text[:500]}")
    return response.json() if response.content else {}


def mlgate_policy(path: Path, open_mode: bool) -> Path:
    """mlgate's policy: group `bench-team` (EDIT on `bench`, READ on 100 experiments); limits above the load."""
    if open_mode:
        # Security off, for the overhead comparison: anyone may do anything, no rate limiting.
        text = "version: 1\nnetwork:\n  rate_limit:\n    enabled: false\naccess:\n  default_permission: MANAGE\n"
    else:
        text = """\
version: 1
network:
  rate_limit:
    per_client: "1000000/minute"
    per_principal: "1000000/minute"
    sensitive: "1000000/minute"
access:
  default_permission: NO_PERMISSIONS
  groups:
    bench-team: [bench]
  grants:
    - {principal: "group:bench-team", resource: "experiment-name:bench", permission: EDIT}
    - {principal: "group:bench-team", resource: "experiment-name:bench-100k", permission: READ}
    - {principal: "group:bench-team", resource: "experiment-name:bench-exp-000*", permission: READ}
    - {principal: "group:bench-team", resource: "model-name:bench-model-*", permission: EDIT}
"""
    path.write_text(text)
    return path


# mlgate's --workers in the measured servers (bench/run.py --mlgate-workers; MLflow runs its own default, 4).
MLGATE_WORKERS = 1


def start(name: str, workdir: Path, port: int) -> tuple[Server, float]:
    """Start one named server over the database at ``workdir/db.sqlite``."""
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "db.sqlite"
    if name == "mlflow":
        return start_mlflow(workdir, port, db, auth=False)
    if name == "mlflow-auth":
        return start_mlflow(workdir, port, db, auth=True, cache_ttl=0)
    if name == "mlflow-auth-cache":
        return start_mlflow(workdir, port, db, auth=True, cache_ttl=60)
    if name == "mlgate":
        return start_mlgate(workdir, port, db, policy_file=mlgate_policy(workdir / "policy.yaml", False),
                            workers=MLGATE_WORKERS)
    if name == "mlgate-open":
        return start_mlgate(workdir, port, db, policy_file=mlgate_policy(workdir / "policy.yaml", True),
                            name="mlgate-open", workers=MLGATE_WORKERS)
    if name == "floor":
        return start_floor(workdir, port, db)
    raise ValueError(name)


def seeded(name: str, spec: SeedSpec, root: Path, port: int) -> SeededData:
    """The family's seeded database copied into ``root/name`` (seeding and caching it first if needed)."""
    family = FAMILY[name]
    data = seeding.cached(family, spec)
    if data is None:
        seeder = SEEDER[family]
        work = root / f"seed-{family}"
        print(f"seeding {family} through {seeder} ({spec.key()}); cached for later runs ...", flush=True)
        server, _ = start(seeder, work, port)
        try:
            t = time.monotonic()
            data = seeding.seed_tracking(server.url, server.admin_headers, spec)
            print(f"  seeded in {time.monotonic() - t:.0f}s", flush=True)
        finally:
            server.stop()
        if data.big_experiment_id:
            total = seeding.replicate_runs(work / "db.sqlite", data.big_experiment_id)
            print(f"  bench-100k: {total} runs", flush=True)
        seeding.save(family, spec, work / "db.sqlite", data)
    seeding.restore(family, spec, root / name / "db.sqlite")
    return data


def setup_server(server: Server, data: SeededData, workdir: Path) -> Context:
    """Per-server setup on the seeded data: the non-admin user and its grants, a model, two artifacts."""
    if server.name == "floor":  # no users, models or artifacts: it answers FLOOR_SCENARIOS only
        return Context(server.url, {}, data.experiment_id, data.run_ids, data.big_experiment_id, "", "", "",
                       workdir / "none", workdir)
    model = f"bench-model-{uuid.uuid4().hex[:6]}"
    api(server, "POST", f"{A}/registered-models/create", json={"name": model})
    if server.name != "mlflow":
        api(server, "POST", f"{A}/users/create", json={"username": "bench", "password": USER_PASSWORD})
        server.user_headers = {"Authorization": basic("bench", USER_PASSWORD)}
    if server.name.startswith("mlflow-auth"):
        # MLflow grants per user, one resource at a time (its 3.0 users/permissions API).
        grant = "/api/3.0/mlflow/users/permissions/grant"
        wanted = [("experiment", data.experiment_id, "EDIT"), ("registered_model", model, "EDIT")]
        if data.big_experiment_id:
            wanted.append(("experiment", data.big_experiment_id, "READ"))
        wanted += [("experiment", e, "READ") for e in data.visible_experiment_ids]
        for kind, rid, permission in wanted:
            api(server, "POST", grant, json={"username": "bench", "resource_type": kind, "resource_id": rid,
                                             "permission": permission})
    # mlgate's grants come through the group in its policy file (see mlgate_policy()).
    small = f"{data.experiment_id}/{data.run_ids[0]}/artifacts/blob-1mib.bin"
    big = f"{data.experiment_id}/{data.run_ids[0]}/artifacts/blob-100mib.bin"
    big_file = workdir / "blob-100mib.bin"
    with open(big_file, "wb") as fh:
        rng = random.Random(5)
        for _ in range(scenarios.BIG_FILE_MIB):
            fh.write(rng.randbytes(1 << 20))
    headers = server.admin_headers
    httpx.put(f"{server.url}{scenarios.ARTIFACTS}/{small}", content=random.Random(1).randbytes(1 << 20),
              headers=headers, timeout=120).raise_for_status()
    with open(big_file, "rb") as fh:
        httpx.put(f"{server.url}{scenarios.ARTIFACTS}/{big}", content=iter(lambda: fh.read(1 << 20), b""),
                  headers=headers, timeout=300).raise_for_status()
    # One request first, so the credential cache is warm before concurrent load (both servers cache).
    api(server, "GET", f"{A}/runs/get?run_id={data.run_ids[0]}", admin=False)
    return Context(server.url, server.user_headers, data.experiment_id, data.run_ids, data.big_experiment_id,
                   model, small, big, big_file, workdir)


def measure(server: Server, name: str, ctx: Context, duration: int, connections: int) -> Row:
    """Load one scenario and read CPU and memory of the server's process tree meanwhile."""
    load = scenarios.build(name, ctx, USER_PASSWORD)
    headers = {**server.user_headers, **load.headers}

    def run(seconds: int):
        if load.driver is not None:
            return scenarios.drive(load.driver, seconds)
        return run_wrk(server.url, load.method, load.paths, load.bodies, headers, duration=seconds,
                       connections=load.connections or connections, new_connections=load.new_connections)

    run(1 if load.driver else 2)  # warm up (caches, imports, connection pools) before measuring
    peak = [procstat.rss_bytes(server.process.pid)]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.1):
            peak.append(procstat.rss_bytes(server.process.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    cpu_before = procstat.cpu_seconds(server.process.pid)
    sampler.start()
    result = run(duration)
    stop.set()
    sampler.join()
    cpu = procstat.cpu_seconds(server.process.pid) - cpu_before
    wait_idle(server)
    mib = round(result.rps * load.mib_per_request, 1) if load.mib_per_request else None
    return Row(server.name, name, round(result.rps, 1), round(result.p50_ms, 2), round(result.p99_ms, 2),
               round(cpu * 1000 / max(result.requests, 1), 2), round(max(peak) / 2**20, 1),
               result.errors, result.non2xx, mib, result.successful, round(result.error_rate, 4),
               result.error_rate > MAX_ERROR_RATE)


def wait_idle(server: Server, limit: float = 90) -> None:
    """Wait until requests still in flight after the load (slow searches) are done, so they do not
    spill into the next scenario: the server's tree uses under a tenth of a core for half a second."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = procstat.cpu_seconds(server.process.pid)
        time.sleep(0.5)
        if procstat.cpu_seconds(server.process.pid) - before < 0.05:
            return


def idle_footprint(name: str, workdir: Path, port: int) -> dict:
    """A default server (no options but host/port/working directory): seconds to ready, idle RSS, processes."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLGATE_"))}
    if name == "mlgate":
        args = [sys.executable, "-m", "gateway.cli", "server", "--port", str(port)]
    else:
        args = [str(MLFLOW_VENV / "bin" / "mlflow"), "server", "--port", str(port)]
    log = workdir / "server.log"
    proc = subprocess.Popen(args, cwd=workdir, env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT,  # noqa: SIM115
                            start_new_session=True)
    server = Server(name, f"http://127.0.0.1:{port}", proc)
    try:
        ready = wait_healthy(server.url, proc, log)
        time.sleep(5)  # background threads and workers settle
        return {"ready_seconds": round(ready, 2), "idle_rss_mib": round(procstat.rss_bytes(proc.pid) / 2**20, 1),
                "processes": len(procstat.process_tree(proc.pid))}
    finally:
        server.stop()


def print_table(rows: list[Row]) -> None:
    """A fixed-width table, then mlgate/MLflow ratios per scenario."""
    header = (f"{'server':<18}{'scenario':<22}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'cpu ms/req':>12}"
              f"{'peak MiB':>10}{'MiB/s':>8}{'errors':>8}")
    print(header)
    print("-" * len(header))
    for r in rows:
        mib = f"{r.mib_per_s:>8.0f}" if r.mib_per_s is not None else f"{'':>8}"
        print(f"{r.server:<18}{r.scenario:<22}{r.rps:>9.1f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}"
              f"{r.cpu_ms_per_req:>12.2f}{r.peak_rss_mib:>10.1f}{mib}{r.errors + r.non2xx:>8}")
    print("\nratios mlgate / other: req/s (cpu ms/req)")
    for scenario, parts in ratios(rows).items():
        print(f"  {scenario:<22}" + "  ".join(f"{o}: {v['rps']}x ({v['cpu']}x cpu)" for o, v in parts.items()))


def ratios(rows: list[Row]) -> dict[str, dict[str, dict[str, float]]]:
    """Per scenario: mlgate's req/s and CPU per request relative to every other server."""
    by = {(r.server, r.scenario): r for r in rows}
    out: dict[str, dict[str, dict[str, float]]] = {}
    for scenario in dict.fromkeys(r.scenario for r in rows):
        mine = by.get(("mlgate", scenario))
        if not mine:
            continue
        out[scenario] = {}
        for other in SERVER_NAMES:
            theirs = by.get((other, scenario))
            if other == "mlgate" or theirs is None or not theirs.rps or not theirs.cpu_ms_per_req:
                continue
            out[scenario][other] = {"rps": round(mine.rps / theirs.rps, 1),
                                    "cpu": round(mine.cpu_ms_per_req / theirs.cpu_ms_per_req, 2)}
    return out


def targets(rows: list[Row], footprint: dict, cp_mib_per_s: float | None, overhead: dict | None = None,
            ready_rss: dict[str, float] | None = None) -> list[dict]:
    """The issue's targets, each with the measured figure and whether it is met."""
    by = {(r.server, r.scenario): r for r in rows}
    out = []

    def add(name: str, value, goal: str, met: bool) -> None:
        out.append({"target": name, "measured": value, "goal": goal, "met": met})

    for scenario, factor in (("get-run", 10), ("log-batch", 10), ("search-runs", 5)):
        mine, theirs = by.get(("mlgate", scenario)), by.get(("mlflow-auth-cache", scenario))
        if mine and theirs and theirs.rps:
            ratio = mine.rps / theirs.rps
            add(f"{scenario} req/s vs MLflow basic-auth+cache", f"{ratio:.1f}x", f">= {factor}x", ratio >= factor)
    for scenario, goal in FLOOR_SCENARIOS.items():
        mine, floor = by.get(("mlgate", scenario)), by.get(("floor", scenario))
        if mine and floor and floor.cpu_ms_per_req and not (mine.failed or floor.failed):
            multiple = mine.cpu_ms_per_req / floor.cpu_ms_per_req
            add(f"{scenario} server CPU per request vs the floor",
                f"{multiple:.2f}x ({mine.cpu_ms_per_req:.2f} / {floor.cpu_ms_per_req:.2f} ms)", f"<= {goal}x",
                multiple <= goal)
    if (row := by.get(("mlgate", "get-run"))):
        add("get-run server CPU per request", f"{row.cpu_ms_per_req:.2f} ms", "<= 1.5 ms", row.cpu_ms_per_req <= 1.5)
    for scenario in ("get-run", "log-batch", "search-runs"):
        if scenario in (overhead or {}):
            extra = overhead[scenario]["extra"]
            add(f"{scenario} CPU with security on vs off", f"{extra * 100:+.0f}% (median of "
                f"{overhead[scenario]['rounds']} alternating rounds)", "<= +5%", extra <= 0.05)
            continue
        mine, open_ = by.get(("mlgate", scenario)), by.get(("mlgate-open", scenario))
        if mine and open_ and open_.cpu_ms_per_req:
            extra = mine.cpu_ms_per_req / open_.cpu_ms_per_req - 1
            add(f"{scenario} CPU with security on vs off", f"{extra * 100:+.0f}%", "<= +5%", extra <= 0.05)
    if (row := by.get(("mlgate", "search-runs-100k-1c"))):
        add("search-runs over 100k runs p50, one client", f"{row.p50_ms:.1f} ms", "<= 50 ms", row.p50_ms <= 50)
    if (row := by.get(("mlgate", "search-runs-100k"))):
        add("search-runs over 100k runs p50, all --connections", f"{row.p50_ms:.1f} ms", "<= 50 ms", row.p50_ms <= 50)
    for scenario in ("artifact-put-100mib", "artifact-get-100mib"):
        if (row := by.get(("mlgate", scenario))) and cp_mib_per_s and row.mib_per_s:
            add(f"{scenario} throughput vs cp", f"{row.mib_per_s:.0f} MiB/s vs cp {cp_mib_per_s:.0f} MiB/s",
                ">= cp / 2", row.mib_per_s >= cp_mib_per_s / 2)
            # The idle default server's RSS, else this server's own RSS when it became ready.
            idle = footprint.get("mlgate", {}).get("idle_rss_mib") or (ready_rss or {}).get("mlgate")
            add(f"{scenario} peak RSS", f"{row.peak_rss_mib:.0f} MiB (idle {idle} MiB)", "flat (streamed)",
                idle is not None and row.peak_rss_mib < idle + 64)
    if (fp := footprint.get("mlgate")):
        add("idle RSS of a default mlgate server", f"{fp['idle_rss_mib']:.0f} MiB", "<= 150 MiB",
            fp["idle_rss_mib"] <= 150)
        add("ready after start", f"{fp['ready_seconds']:.2f} s", "<= 2 s", fp["ready_seconds"] <= 2)
    return out


def plot(result_json: Path, png: Path) -> None:
    """Grouped bars of req/s and CPU per request, drawn with the benchmark virtualenv's matplotlib."""
    script = """
import json, sys
import matplotlib; matplotlib.use("Agg")
import matplotlib.pyplot as plt
rows = json.load(open(sys.argv[1]))["rows"]
scen = list(dict.fromkeys(r["scenario"] for r in rows)); servers = list(dict.fromkeys(r["server"] for r in rows))
fig, axes = plt.subplots(2, 1, figsize=(max(10, len(scen) * 1.1), 9)); w = 0.8 / max(len(servers), 1)
for ax, key, label in ((axes[0], "rps", "requests/s (higher is better)"),
                       (axes[1], "cpu_ms_per_req", "server CPU ms per request (lower is better)")):
    for i, s in enumerate(servers):
        vals = [next((r[key] for r in rows if r["server"] == s and r["scenario"] == c), 0) for c in scen]
        ax.bar([x + i * w for x in range(len(scen))], vals, w, label=s)
    ax.set_xticks([x + w * (len(servers) - 1) / 2 for x in range(len(scen))])
    ax.set_xticklabels(scen, rotation=25, ha="right", fontsize=8)
    ax.set_ylabel(label); ax.set_yscale("log"); ax.grid(axis="y", alpha=0.3)
axes[0].legend(fontsize=8, ncol=len(servers)); axes[0].set_title("mlgate vs MLflow 3.17.2 (same machine, same data)")
fig.tight_layout(); fig.savefig(sys.argv[2], dpi=110)
"""
    python = MLFLOW_VENV / "bin" / "python"
    if not python.exists():
        print(f"no chart: {python} is missing (it has matplotlib; a run that starts MLflow builds it)")
        return
    subprocess.run([str(python), "-c", script, str(result_json), str(png)], check=False)


OVERHEAD_SCENARIOS = ("get-run", "log-batch", "search-runs")


def interleaved_overhead(spec: SeedSpec, root: Path, args) -> dict[str, dict]:
    """Security on vs off, measured so that machine noise hits both alike.

    On a shared two-core machine one measurement window of each server can differ by 30 % for reasons
    that have nothing to do with the servers. Here mlgate and mlgate-open run side by side (the idle one
    uses no CPU) and each scenario alternates between them for ``--overhead-rounds`` rounds; the
    overhead is the ratio of the two medians of server CPU per request.
    """
    servers, contexts = {}, {}
    try:
        for offset, name in enumerate(("mlgate", "mlgate-open")):
            port = args.port + 60 + offset
            data = seeded(name, spec, root / "overhead", port + 10)
            servers[name], _ = start(name, root / "overhead" / name, port)
            contexts[name] = setup_server(servers[name], data, root / "overhead" / name)
        out: dict[str, dict] = {}
        for scenario in [s for s in OVERHEAD_SCENARIOS if s in args.scenarios.split(",")]:
            cpu: dict[str, list[float]] = {"mlgate": [], "mlgate-open": []}
            for round_ in range(args.overhead_rounds):
                order = ("mlgate", "mlgate-open") if round_ % 2 == 0 else ("mlgate-open", "mlgate")
                for name in order:
                    row = measure(servers[name], scenario, contexts[name], args.duration, args.connections)
                    cpu[name].append(row.cpu_ms_per_req)
            on, off = statistics.median(cpu["mlgate"]), statistics.median(cpu["mlgate-open"])
            out[scenario] = {"rounds": args.overhead_rounds, "on_cpu_ms": cpu["mlgate"],
                             "off_cpu_ms": cpu["mlgate-open"], "on_median": round(on, 3), "off_median": round(off, 3),
                             "extra": round(on / off - 1, 4)}
            print(f"  overhead {scenario:<14} on {on:.2f} ms, off {off:.2f} ms (medians of {args.overhead_rounds}): "
                  f"{100 * (on / off - 1):+.0f}%", flush=True)
        return out
    finally:
        for server in servers.values():
            server.stop()


def main() -> int:
    """Parse options, run every server x scenario, print and save the results."""
    if "--scale" in sys.argv[1:]:
        # The at-scale tables (100,000 runs, millions of metric points, SQLite and PostgreSQL): bench/scale.py.
        from bench import scale

        sys.argv = [sys.argv[0], *(a for a in sys.argv[1:] if a != "--scale")]
        return scale.main()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true",
                        help="the issue's figures: --big-runs 100000 --experiments 10000 --footprint")
    parser.add_argument("--servers", default=",".join(SERVER_NAMES))
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--duration", type=int, default=15, help="seconds per scenario (plus a warm-up)")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--big-runs", type=int, default=0, help="runs in bench-100k (search-runs-100k)")
    parser.add_argument("--experiments", type=int, default=0, help="extra experiments (search-experiments)")
    parser.add_argument("--footprint", action="store_true", help="also measure default servers' idle RSS")
    parser.add_argument("--port", type=int, default=5901)
    parser.add_argument("--mlgate-workers", type=int, default=1, help="mlgate server processes (--workers)")
    parser.add_argument("--overhead-rounds", type=int, default=0,
                        help="security on vs off: both mlgate servers up at once, get-run/log-batch/search-runs "
                             "measured in N alternating rounds (medians); steadier than one window each")
    args = parser.parse_args()
    global MLGATE_WORKERS
    MLGATE_WORKERS = args.mlgate_workers
    if args.full:
        args.big_runs, args.experiments, args.footprint = 100_000, 10_000, True
    if not wrk_available():
        print("wrk is required: apt-get install -y wrk", file=sys.stderr)
        return 2
    spec = SeedSpec(args.runs, args.big_runs, args.experiments)
    load_at_start = os.getloadavg()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    root = RESULTS / stamp
    rows: list[Row] = []
    startup: dict[str, float] = {}
    ready_rss: dict[str, float] = {}
    cp_rate = None
    chosen = args.scenarios.split(",")
    for index, name in enumerate(args.servers.split(",")):
        # A port per server, so a slow shutdown of one never answers for the next.
        port = args.port + index
        data = seeded(name, spec, root, port + 50)
        server, ready = start(name, root / name, port)
        startup[name] = round(ready, 2)
        ready_rss[name] = round(procstat.rss_bytes(server.process.pid) / 2**20, 1)
        try:
            print(f"{name}: ready in {ready:.2f}s, RSS {ready_rss[name]:.0f} MiB",
                  flush=True)
            ctx = setup_server(server, data, root / name)
            if cp_rate is None and any("100mib" in s for s in chosen):
                cp_rate = round(scenarios.copy_throughput(ctx.big_file, root / name), 1)
                print(f"  cp of the 100 MiB file on this disk: {cp_rate:.0f} MiB/s", flush=True)
            for scenario in chosen:
                if scenario in scenarios.MLGATE_ONLY and not name.startswith("mlgate"):
                    continue
                if name == "floor" and scenario not in FLOOR_SCENARIOS:
                    continue
                try:
                    row = measure(server, scenario, ctx, args.duration, args.connections)
                except SkipScenario as exc:
                    print(f"  {scenario:<22} skipped: {exc}", flush=True)
                    continue
                rows.append(row)
                print(f"  {scenario:<22} {row.rps:>8.1f} req/s  cpu {row.cpu_ms_per_req:.2f} ms/req  "
                      f"p50 {row.p50_ms:.1f} ms  errors {row.errors + row.non2xx}"
                      + (f"  FAILED: {row.error_rate:.1%} of attempts failed" if row.failed else ""), flush=True)
        finally:
            server.stop()
    overhead = interleaved_overhead(spec, root, args) if args.overhead_rounds else {}
    footprint = {}
    if args.footprint:
        for i, name in enumerate(("mlgate", "mlflow")):
            if name == "mlflow" and not any(s.startswith("mlflow") for s in args.servers.split(",")):
                continue  # MLflow is not part of this run (its virtualenv may not even exist yet)
            footprint[name] = idle_footprint(name, root / f"default-{name}", args.port + 80 + i)
            print(f"default {name} server: {footprint[name]}", flush=True)
    print()
    print_table(rows)
    met = targets(rows, footprint, cp_rate, overhead, ready_rss)
    print("\ntargets:")
    for t in met:
        print(f"  [{'met' if t['met'] else 'MISSED'}] {t['target']}: {t['measured']} (goal {t['goal']})")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{stamp}.json"
    out.write_text(json.dumps({
        "machine": {"cpus": os.cpu_count(), "load_average_at_start": load_at_start,
                    "load_average_at_end": os.getloadavg()},
        "options": vars(args), "startup_seconds": startup, "ready_rss_mib": ready_rss, "footprint": footprint,
        "cp_mib_per_s": cp_rate,
        "rows": [asdict(r) for r in rows], "ratios": ratios(rows), "overhead": overhead, "targets": met,
    }, indent=2))
    png = out.with_suffix(".png")
    plot(out, png)
    print(f"\nwrote {out}" + (f" and {png}" if png.exists() else ""))
    failed = [f"{r.server} {r.scenario} ({r.error_rate:.1%})" for r in rows if r.failed]
    if failed:
        print(f"FAILED: more than {MAX_ERROR_RATE:.0%} of attempts failed in: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
