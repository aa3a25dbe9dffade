#!/usr/bin/env python3
"""Side-by-side benchmark of mlgate against MLflow's own server, in one run on one machine.

    python3 bench/run.py                 # all servers, default scenarios, 15 s each
    python3 bench/run.py --duration 5 --servers mlflow,mlgate --scenarios get-run,log-batch

Each server is started alone (so it has both cores), seeded with the same data, loaded by wrk with
8 concurrent keep-alive connections (and, for get-run, new connections too), then stopped. Server CPU
per request is read from /proc for the server's whole process tree. Results: a table on stdout, and
bench/results/<stamp>.json plus a PNG chart beside it.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import procstat
from bench.servers import USER_PASSWORD, Server, basic, start_mlflow, start_mlgate
from bench.wrk import run_wrk, wrk_available

A = "/api/2.0/mlflow"
RESULTS = Path(__file__).resolve().parent / "results"
SERVER_NAMES = ["mlflow", "mlflow-auth", "mlflow-auth-cache", "mlgate", "mlgate-open"]
SCENARIOS = ["log-batch", "log-metric", "get-run", "get-run-newconn", "search-runs", "search-experiments",
             "artifact-put-1mib", "artifact-get-1mib", "model-version-create"]


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


@dataclass
class Seed:
    """Ids created by seeding, used to build requests."""

    experiment_id: str
    run_ids: list[str]
    write_run_ids: list[str]
    model_name: str
    artifact_path: str


def api(server: Server, method: str, path: str, *, admin: bool = True, **kwargs) -> dict:
    """One JSON API call, raising with the body on an error."""
    headers = server.admin_headers if admin else server.user_headers
    response = httpx.request(method, server.url + path, headers=headers, timeout=60, **kwargs)
    if response.status_code >= 400:
        raise RuntimeError(f"{method} {path} -> {response.status_code}: {response.text[:500]}")
    return response.json() if response.content else {}


def seed(server: Server, runs: int, experiments: int, visible_experiments: int) -> Seed:
    """Create the same data on every server through its REST API (as the mlflow client would)."""
    exp = api(server, "POST", f"{A}/experiments/create", json={"name": "bench"})["experiment_id"]
    run_ids = []
    for i in range(runs):
        run = api(server, "POST", f"{A}/runs/create",
                  json={"experiment_id": exp, "start_time": 1_700_000_000_000 + i, "run_name": f"r{i}"})
        rid = run["run"]["info"]["run_id"]
        run_ids.append(rid)
        metrics = [{"key": f"m{k}", "value": random.random(), "timestamp": 1_700_000_000_000, "step": 0}
                   for k in range(10)]
        params = [{"key": f"p{k}", "value": str(i % (k + 2))} for k in range(5)]
        api(server, "POST", f"{A}/runs/log-batch", json={"run_id": rid, "metrics": metrics, "params": params})
    write_run_ids = run_ids[:8]
    for i in range(experiments):
        api(server, "POST", f"{A}/experiments/create", json={"name": f"bench-exp-{i:05d}"})
    model = f"bench-model-{uuid.uuid4().hex[:6]}"
    api(server, "POST", f"{A}/registered-models/create", json={"name": model})
    artifact = f"{exp}/{run_ids[0]}/artifacts/blob-1mib.bin"
    blob = random.randbytes(1 << 20)
    response = httpx.put(f"{server.url}/api/2.0/mlflow-artifacts/artifacts/{artifact}", content=blob,
                         headers=server.admin_headers, timeout=60)
    response.raise_for_status()
    return Seed(exp, run_ids, write_run_ids, model, artifact)


def scenario_requests(name: str, s: Seed) -> tuple[str, list[str], list[str]]:
    """(method, paths, bodies) for a scenario; bodies may use __N__ for a request counter."""
    ts = "1700000000000"
    if name == "log-batch":
        bodies = [json.dumps({"run_id": r, "metrics": [
            {"key": f"load{k}", "value": 0.5, "timestamp": ts, "step": "__N__"} for k in range(10)]})
            for r in s.write_run_ids]
        return "POST", [f"{A}/runs/log-batch"], bodies
    if name == "log-metric":
        bodies = [json.dumps({"run_id": r, "key": "single", "value": 1.5, "timestamp": ts, "step": "__N__"})
                  for r in s.write_run_ids]
        return "POST", [f"{A}/runs/log-metric"], bodies
    if name in ("get-run", "get-run-newconn"):
        return "GET", [f"{A}/runs/get?run_id={r}" for r in s.run_ids], []
    if name == "search-runs":
        body = json.dumps({"experiment_ids": [s.experiment_id], "filter": "metrics.m0 > 0.1",
                           "order_by": ["metrics.m1 DESC"], "max_results": 100})
        return "POST", [f"{A}/runs/search"], [body]
    if name == "search-experiments":
        return "POST", [f"{A}/experiments/search"], [json.dumps({"max_results": 100})]
    if name == "artifact-put-1mib":
        blob = "x" * (1 << 20)
        paths = [f"/api/2.0/mlflow-artifacts/artifacts/{s.experiment_id}/{r}/artifacts/put-__N__.bin"
                 for r in s.write_run_ids]
        return "PUT", paths, [blob]
    if name == "artifact-get-1mib":
        return "GET", [f"/api/2.0/mlflow-artifacts/artifacts/{s.artifact_path}"], []
    if name == "model-version-create":
        body = json.dumps({"name": s.model_name, "run_id": s.run_ids[0],
                           "source": f"mlflow-artifacts:/{s.experiment_id}/{s.run_ids[0]}/artifacts/model"})
        return "POST", [f"{A}/model-versions/create"], [body]
    raise ValueError(name)


def measure(server: Server, name: str, seed_ids: Seed, duration: int, connections: int) -> Row:
    """Load one scenario and read CPU and memory of the server's process tree meanwhile."""
    method, paths, bodies = scenario_requests(name, seed_ids)
    # wrk's Lua replaces __N__ inside bodies; in paths the counter is spliced by the per-request path list.
    if any("__N__" in p for p in paths):
        paths = [p.replace("__N__", str(i)) for i in range(2000) for p in paths]
    headers = {"Content-Type": "application/json", **server.user_headers}
    # Warm up (caches, worker imports, connection pools) before anything is measured.
    run_wrk(server.url, method, paths, bodies, headers, duration=2, connections=connections)
    peak = [procstat.rss_bytes(server.process.pid)]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.25):
            peak.append(procstat.rss_bytes(server.process.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    cpu_before = procstat.cpu_seconds(server.process.pid)
    sampler.start()
    result = run_wrk(server.url, method, paths, bodies, headers, duration=duration, connections=connections,
                     new_connections=name.endswith("newconn"))
    stop.set()
    sampler.join()
    cpu = procstat.cpu_seconds(server.process.pid) - cpu_before
    return Row(server.name, name, round(result.rps, 1), round(result.p50_ms, 2), round(result.p99_ms, 2),
               round(cpu * 1000 / max(result.requests, 1), 2), round(max(peak) / 2**20, 1),
               result.errors, result.non2xx)


def grant_user(server: Server, seed_ids: Seed) -> None:
    """Create the non-admin benchmark user with EDIT on the benchmark experiment and model."""
    if server.name.startswith("mlflow-auth"):
        api(server, "POST", f"{A}/users/create", json={"username": "bench", "password": USER_PASSWORD})
        # MLflow 3.17 grants through its 3.0 users/permissions API (the 2.x permission routes are gone).
        grant = "/api/3.0/mlflow/users/permissions/grant"
        api(server, "POST", grant, json={"username": "bench", "resource_type": "experiment",
                                         "resource_id": seed_ids.experiment_id, "permission": "EDIT"})
        api(server, "POST", grant, json={"username": "bench", "resource_type": "registered_model",
                                         "resource_id": seed_ids.model_name, "permission": "EDIT"})
        server.user_headers = {"Authorization": basic("bench", USER_PASSWORD)}
    elif server.name == "mlgate":
        api(server, "POST", f"{A}/users/create", json={"username": "bench", "password": USER_PASSWORD})
        # The grant comes through a group, declared in the policy file (see mlgate_policy()).
        server.user_headers = {"Authorization": basic("bench", USER_PASSWORD)}


def mlgate_policy(path: Path, open_mode: bool) -> Path:
    """The policy for mlgate: a group `bench-team` with EDIT on `bench`; rate limits above the load."""
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
access:
  default_permission: NO_PERMISSIONS
  groups:
    bench-team: [bench]
  grants:
    - principal: "group:bench-team"
      resource: "experiment-name:bench"
      permission: EDIT
    - principal: "group:bench-team"
      resource: "model-name:bench-model-*"
      permission: EDIT
"""
    path.write_text(text)
    return path


def start(name: str, workdir: Path, port: int) -> tuple[Server, float]:
    """Start one named server over a fresh database."""
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "db.sqlite"
    if name == "mlflow":
        return start_mlflow(workdir, port, db, auth=False)
    if name == "mlflow-auth":
        return start_mlflow(workdir, port, db, auth=True, cache_ttl=0)
    if name == "mlflow-auth-cache":
        return start_mlflow(workdir, port, db, auth=True, cache_ttl=60)
    if name == "mlgate":
        return start_mlgate(workdir, port, db, policy_file=mlgate_policy(workdir / "policy.yaml", False))
    if name == "mlgate-open":
        return start_mlgate(workdir, port, db, policy_file=mlgate_policy(workdir / "policy.yaml", True),
                            name="mlgate-open")
    raise ValueError(name)


def print_table(rows: list[Row]) -> None:
    """A fixed-width table, then mlgate/MLflow ratios per scenario."""
    header = f"{'server':<18}{'scenario':<22}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'cpu ms/req':>12}" \
             f"{'peak MiB':>10}{'errors':>8}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r.server:<18}{r.scenario:<22}{r.rps:>9.1f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}"
              f"{r.cpu_ms_per_req:>12.2f}{r.peak_rss_mib:>10.1f}{r.errors + r.non2xx:>8}")
    by = {(r.server, r.scenario): r for r in rows}
    print("\nratios (req/s): mlgate / other")
    for scenario in dict.fromkeys(r.scenario for r in rows):
        mine = by.get(("mlgate", scenario))
        if not mine:
            continue
        parts = [f"{other}: {mine.rps / by[(other, scenario)].rps:.1f}x"
                 for other in SERVER_NAMES if other != "mlgate" and (other, scenario) in by
                 and by[(other, scenario)].rps]
        print(f"  {scenario:<22}" + "  ".join(parts))


def plot(rows: list[Row], png: Path) -> None:
    """A grouped bar chart of req/s, drawn with the benchmark virtualenv's matplotlib."""
    from bench.servers import MLFLOW_VENV

    script = """
import json, sys
import matplotlib; matplotlib.use("Agg")
import matplotlib.pyplot as plt
rows = json.load(open(sys.argv[1]))["rows"]
scen = list(dict.fromkeys(r["scenario"] for r in rows)); servers = list(dict.fromkeys(r["server"] for r in rows))
fig, ax = plt.subplots(figsize=(max(8, len(scen) * 1.6), 5)); w = 0.8 / max(len(servers), 1)
for i, s in enumerate(servers):
    vals = [next((r["rps"] for r in rows if r["server"] == s and r["scenario"] == c), 0) for c in scen]
    ax.bar([x + i * w for x in range(len(scen))], vals, w, label=s)
ax.set_xticks([x + w * (len(servers) - 1) / 2 for x in range(len(scen))]); ax.set_xticklabels(scen, rotation=20)
ax.set_ylabel("requests/s (higher is better)"); ax.set_yscale("log"); ax.legend(); fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
"""
    subprocess.run([str(MLFLOW_VENV / "bin" / "python"), "-c", script, str(png.with_suffix(".json")), str(png)],
                   check=False)


def main() -> int:
    """Parse options, run every server x scenario, print and save the results."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", default=",".join(SERVER_NAMES))
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--experiments", type=int, default=0,
                        help="extra experiments to create for search-experiments (the issue's figure: 10000)")
    parser.add_argument("--port", type=int, default=5901)
    args = parser.parse_args()
    if not wrk_available():
        print("wrk is required: apt-get install -y wrk", file=sys.stderr)
        return 2
    stamp = time.strftime("%Y%m%d-%H%M%S")
    root = RESULTS / stamp
    rows: list[Row] = []
    startup: dict[str, float] = {}
    for index, name in enumerate(args.servers.split(",")):
        # A port per server, so a slow shutdown of one never answers for the next.
        server, ready = start(name, root / name, args.port + index)
        startup[name] = round(ready, 2)
        try:
            idle = procstat.rss_bytes(server.process.pid) / 2**20
            print(f"{name}: ready in {ready:.2f}s, idle RSS {idle:.0f} MiB; seeding ...", flush=True)
            seed_ids = seed(server, args.runs, args.experiments, 100)
            grant_user(server, seed_ids)
            for scenario in args.scenarios.split(","):
                row = measure(server, scenario, seed_ids, args.duration, args.connections)
                rows.append(row)
                print(f"  {scenario:<22} {row.rps:>8.1f} req/s  cpu {row.cpu_ms_per_req:.2f} ms/req", flush=True)
        finally:
            server.stop()
    print()
    print_table(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{stamp}.json"
    out.write_text(json.dumps({"startup_seconds": startup, "rows": [asdict(r) for r in rows]}, indent=2))
    plot(rows, out.with_suffix(".png"))
    print(f"\nwrote {out} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
