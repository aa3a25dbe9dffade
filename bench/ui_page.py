"""Web UI benchmark: the first page of an experiment's runs table with 10,000 runs, as a non-admin.

Seeds one experiment with 10,000 runs (3 params, 2 metrics each) in bulk through tracking's store, starts a
real ``mlgate server``, and requests ``/experiments/<id>`` (first page: default sort and columns, sorted by
a metric, filtered by a param, chosen columns; each page also reads the experiment's param and metric keys
for the column chooser) N times with a READ user's personal access token. Prints p50/p99 per page; the target is < 1 s.

    python -m bench.ui_page [--runs 10000] [--requests 50]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import insert

from tracking.db.engine import make_engine
from tracking.db.tables import latest_metrics, metrics, params
from tracking.store.runs import create_run

ADMIN_USER, ADMIN_PASSWORD = "admin", "Bench-Operator-pw-4c1d9e"
VIEWER_PASSWORD = "Unguessable-Pw-bench-2b8"
TARGET_SECONDS = 1.0


def free_port() -> int:
    """An unused loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(workdir: Path, db_uri: str, port: int) -> subprocess.Popen:
    """A real server process; returns once /health answers."""
    env = {**os.environ, "MLGATE_ADMIN_USERNAME": ADMIN_USER, "MLGATE_ADMIN_PASSWORD": ADMIN_PASSWORD}
    with open(workdir / "server.log", "ab") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "server", "--host", "127.0.0.1",
                                 "--port", str(port), "--backend-store-uri", db_uri,
                                 "--artifacts-destination", str(workdir / "artifacts")],
                                cwd=workdir, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {(workdir / 'server.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("server did not become healthy")


def seed_runs(db_uri: str, experiment_id: int, count: int) -> float:
    """``count`` runs with params and metrics, inserted in one transaction through the store; seconds taken."""
    started = time.perf_counter()
    engine = make_engine(db_uri)
    try:
        with engine.begin() as conn:
            param_rows, metric_rows = [], []
            for i in range(count):
                run_id = create_run(conn, experiment_id, "bench", 1_764_000_000_000 + i * 1000, [],
                                    f"run-{i:05d}")["info"]["run_id"]
                param_rows += [{"run_uuid": run_id, "key": k, "value": v}
                               for k, v in (("lr", str(0.001 * (i % 10))), ("model", f"m{i % 7}"), ("seed", str(i)))]
                for key, value in (("loss", 1.0 / (i + 1)), ("accuracy", (i % 1000) / 1000)):
                    metric_rows.append({"run_uuid": run_id, "key": key, "value": value, "is_nan": False,
                                        "timestamp": 1_764_000_000_000 + i, "step": 0})
            conn.execute(insert(params), param_rows)
            conn.execute(insert(metrics), metric_rows)
            conn.execute(insert(latest_metrics), metric_rows)
    finally:
        engine.dispose()
    return time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def measure(client: httpx.Client, path: str, n: int) -> dict:
    """Time ``n`` GETs of ``path`` after two warm-ups; every answer must be a 200 page with 50 runs."""
    for _ in range(2):
        client.get(path)
    times = []
    for _ in range(n):
        started = time.perf_counter()
        response = client.get(path)
        times.append(time.perf_counter() - started)
        if response.status_code != 200 or response.text.count('name="runs" value=') != 50:
            raise RuntimeError(f"{path}: unexpected answer {response.status_code}")
    return {"p50": percentile(times, 50), "p99": percentile(times, 99), "mean": statistics.mean(times),
            "bytes": len(response.content)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="mlgate-ui-bench-"))
    db_uri = f"sqlite:///{workdir / 'mlgate.db'}"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(workdir, db_uri, port)
    try:
        admin = httpx.Client(base_url=url, auth=(ADMIN_USER, ADMIN_PASSWORD), timeout=60)

        def call(path: str, body: dict) -> dict:
            response = admin.post(f"/api/2.0/mlflow/{path}", json=body)
            response.raise_for_status()
            return response.json()

        experiment_id = call("experiments/create", {"name": "ui-bench"})["experiment_id"]
        call("users/create", {"username": "viewer", "password": VIEWER_PASSWORD})
        call("experiments/permissions/create", {"experiment_id": experiment_id, "username": "viewer",
                                                "permission": "READ"})
        token = call("users/tokens/create", {"name": "bench", "expires_in_days": 1, "username": "viewer"})["token"]
        seconds = seed_runs(db_uri, int(experiment_id), args.runs)
        print(f"seeded {args.runs} runs in {seconds:.1f}s", flush=True)
        viewer = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        pages = {
            "runs table, first page (start time)": f"/experiments/{experiment_id}",
            "runs table, sorted by a metric": f"/experiments/{experiment_id}?order_by=metrics.%60loss%60+ASC",
            "runs table, filtered by a param": f"/experiments/{experiment_id}?filter=params.model+%3D+%27m3%27",
            "runs table, chosen columns": f"/experiments/{experiment_id}?cols=1&param=seed&metric=loss",
        }
        rows = [(name, measure(viewer, path, args.requests)) for name, path in pages.items()]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n{args.runs} runs, {args.requests} requests each, non-admin (READ grant, bearer token)")
    print(f"{'page':<40} {'p50 ms':>8} {'p99 ms':>8} {'KiB':>7}")
    worst = 0.0
    for name, r in rows:
        print(f"{name:<40} {r['p50'] * 1000:>8.1f} {r['p99'] * 1000:>8.1f} {r['bytes'] / 1024:>7.1f}")
        worst = max(worst, r["p99"])
    verdict = "OK" if worst < TARGET_SECONDS else "TOO SLOW"
    print(f"\ntarget: first page under {TARGET_SECONDS:.0f} s -> worst p99 {worst * 1000:.0f} ms: {verdict}")
    return 0 if worst < TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
