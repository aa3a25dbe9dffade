#!/usr/bin/env python3
"""At scale: one experiment with 100,000 runs and millions of metric points, on SQLite and PostgreSQL.

    python3 bench/scale.py                                   # 100,000 runs, 100 runs x 10,000 steps x 10 keys
    python3 bench/scale.py --keys 1 --backends sqlite        # 1 M points: minutes to seed, not tens of minutes
    python3 bench/scale.py --servers mlgate,mlflow --timeout 60

For each backend and server (mlgate with its benchmark policy; MLflow 3.17.2 without auth, its best case) a
fresh database is seeded the same way: ``--templates`` runs (two metrics, one param) through the server's
REST API, copied in SQL inside that server's own schema up to ``--runs`` (every table keyed by run_uuid,
start times and metric values shifted per copy), then ``--long-runs`` of them get a history of ``--steps``
points of ``--keys`` metrics each in one INSERT ... SELECT over a generated series. Then, from one client
at a time (p50 is one request's latency, not a queue), as the benchmark's non-admin READ user for mlgate:

- search-runs: ``metrics.m0 > 0.5`` ordered by ``metrics.m1 DESC``, one page of 100;
- get-history-bulk-interval: ``loss0`` of the 100 long runs (10,000 steps each), MLflow's sampled view;
- ui-runs-table: the runs table's first page (mlgate: its server-rendered ``/experiments/<id>``; MLflow:
  the ``ajax-api`` runs/search its React page sends for the first page, 100 runs by start time).

Requests that do not answer within ``--timeout`` seconds are reported as "did not finish in N s". Results go
to bench/results/scale-<stamp>.json, with the load average at start and end (bench/report.py reads it).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import create_engine, inspect, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import procstat
from bench.run import mlgate_policy
from bench.seeding import BASE_TIME, A
from bench.servers import MLFLOW_VENV, USER_PASSWORD, Server, basic, start_mlflow, start_mlgate

RESULTS = Path(__file__).resolve().parent / "results"
PG_ADMIN_URI = "postgresql://postgres@127.0.0.1:5432/test"
EXPERIMENT = "bench-100k"  # the benchmark policy gives the non-admin user READ on it (bench/run.py)


def fresh_backend(backend: str, name: str, workdir: Path) -> str:
    """A new empty database for one server; its URI."""
    if backend == "sqlite":
        workdir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{workdir / 'db.sqlite'}"
    database = f"bench_scale_{name.replace('-', '_')}"
    engine = create_engine(PG_ADMIN_URI.replace("postgresql://", "postgresql+psycopg://"),
                           isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{database}"'))
    engine.dispose()
    return PG_ADMIN_URI.rsplit("/", 1)[0] + f"/{database}"


def sql_engine(uri: str):
    """An engine for seeding (psycopg 3 for PostgreSQL, as mlgate uses)."""
    return create_engine(uri.replace("postgresql://", "postgresql+psycopg://"))


def seed_templates(client: httpx.Client, experiment_id: str, count: int, long_runs: int) -> list[str]:
    """``count`` runs through the REST API (the same values on every server); the ids of the first ``long_runs``."""
    ids = []
    for i in range(count):
        rng = random.Random(i)
        run = client.post(f"{A}/runs/create", json={"experiment_id": experiment_id, "start_time": BASE_TIME + i,
                                                    "run_name": f"t{i}"})
        run.raise_for_status()
        rid = run.json()["run"]["info"]["run_id"]
        client.post(f"{A}/runs/log-batch", json={
            "run_id": rid, "params": [{"key": "p0", "value": str(i % 7)}],
            "metrics": [{"key": f"m{k}", "value": rng.random(), "timestamp": BASE_TIME, "step": 0} for k in range(2)],
        }).raise_for_status()
        ids.append(rid)
    return ids[:long_runs]


def replicate(uri: str, experiment_id: str, copies: int) -> int:
    """Copy every run of the experiment ``copies`` times in every table keyed by run_uuid; the run count."""
    engine = sql_engine(uri)
    pg = engine.dialect.name == "postgresql"
    try:
        with engine.begin() as conn:
            inspector = inspect(conn)
            keyed = {}
            for table in inspector.get_table_names():
                columns = inspector.get_columns(table)
                pk = inspector.get_pk_constraint(table).get("constrained_columns") or []
                if any(c["name"] == "run_uuid" for c in columns):
                    # A single integer primary key numbers itself (SQLite rowid, PostgreSQL identity/serial).
                    keyed[table] = [c["name"] for c in columns
                                    if not (pk == [c["name"]] and "INT" in str(c["type"]).upper())]
            conn.execute(text("CREATE TEMP TABLE template AS SELECT run_uuid FROM runs WHERE experiment_id = :e"),
                         {"e": int(experiment_id)})
            series = ("(SELECT generate_series(1, :n) AS k) AS copies" if pg else
                      "(WITH RECURSIVE s(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM s WHERE k < :n) "
                      "SELECT k FROM s) AS copies")
            hex4 = "lpad(to_hex(copies.k), 4, '0')" if pg else "printf('%04x', copies.k)"
            new_id = f"substr(t.run_uuid, 1, 12) || 'c' || substr(t.run_uuid, 14, 15) || {hex4}"
            for table, columns in keyed.items():
                exprs = []
                for name in columns:
                    if name == "run_uuid":
                        exprs.append(new_id)
                    elif table == "runs" and name == "artifact_uri":
                        exprs.append(f"replace(t.artifact_uri, t.run_uuid, {new_id})")
                    elif table == "runs" and name == "start_time":
                        exprs.append("t.start_time + copies.k * 1000")
                    elif table in ("metrics", "latest_metrics") and name == "value":
                        exprs.append("t.value + copies.k * 1e-7")
                    else:
                        exprs.append(f't."{name}"')
                cols = ", ".join(f'"{c}"' for c in columns)
                conn.execute(text(f'INSERT INTO "{table}" ({cols}) SELECT {", ".join(exprs)} FROM "{table}" t '
                                  f"CROSS JOIN {series} WHERE t.run_uuid IN (SELECT run_uuid FROM template)"),
                             {"n": copies})
            return conn.execute(text("SELECT count(*) FROM runs WHERE experiment_id = :e"),
                                {"e": int(experiment_id)}).scalar_one()
    finally:
        engine.dispose()


def seed_history(uri: str, run_ids: list[str], steps: int, keys: int) -> int:
    """``steps`` points of metrics ``loss0..`` for each run, and their latest values; the points written."""
    engine = sql_engine(uri)
    pg = engine.dialect.name == "postgresql"
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TEMP TABLE long_runs (run_uuid VARCHAR(32))"))
            conn.execute(text("INSERT INTO long_runs VALUES (:r)"), [{"r": r} for r in run_ids])
            series = ("(SELECT generate_series(0, :n - 1) AS step) AS s" if pg else
                      "(WITH RECURSIVE q(step) AS (SELECT 0 UNION ALL SELECT step + 1 FROM q WHERE step < :n - 1) "
                      "SELECT step FROM q) AS s")
            false = "false" if pg else "0"
            for k in range(keys):
                conn.execute(text(
                    "INSERT INTO metrics (run_uuid, key, value, timestamp, step, is_nan) "
                    f"SELECT l.run_uuid, 'loss{k}', 1.0 / (s.step + 1), {BASE_TIME} + s.step, s.step, {false} "
                    f"FROM long_runs l CROSS JOIN {series}"), {"n": steps})
                conn.execute(text(
                    "INSERT INTO latest_metrics (run_uuid, key, value, timestamp, step, is_nan) "
                    f"SELECT run_uuid, 'loss{k}', 1.0 / :n, {BASE_TIME} + :n - 1, :n - 1, {false} FROM long_runs"),
                    {"n": steps})
        if pg:
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("ANALYZE"))
        else:
            with engine.begin() as conn:
                conn.execute(text("ANALYZE"))
        return len(run_ids) * steps * keys
    finally:
        engine.dispose()


def timed(client: httpx.Client, method: str, path: str, n: int, timeout: float, server: Server,
          check) -> dict:
    """``n`` sequential requests after one warm-up: p50/p99 latency and server CPU per request."""
    try:
        check(client.request(method, path[0], timeout=timeout, **path[1]))
    except httpx.TimeoutException:
        return {"did_not_finish_seconds": timeout}
    latencies = []
    cpu_before = procstat.cpu_seconds(server.process.pid)
    for _ in range(n):
        started = time.perf_counter()
        try:
            response = client.request(method, path[0], timeout=timeout, **path[1])
        except httpx.TimeoutException:
            return {"did_not_finish_seconds": timeout}
        latencies.append(time.perf_counter() - started)
        check(response)
    cpu = procstat.cpu_seconds(server.process.pid) - cpu_before
    latencies.sort()
    return {"requests": n, "p50_ms": round(statistics.median(latencies) * 1000, 2),
            "p99_ms": round(latencies[min(n - 1, int(n * 0.99))] * 1000, 2),
            "cpu_ms_per_req": round(cpu * 1000 / n, 2)}


def expect(status: int = 200, *, key: str | None = None, count: int | None = None):
    """A response check: the status, and optionally the length of a JSON list."""
    def check(response: httpx.Response) -> None:
        if response.status_code != status:
            raise RuntimeError(f"{response.request.url.path}: {response.status_code} {response.text[:300]}")
        if key is not None and count is not None and len(response.json().get(key, [])) != count:
            raise RuntimeError(f"{response.request.url.path}: {len(response.json().get(key, []))} {key}, "
                               f"expected {count}")
    return check


def measure_server(name: str, backend: str, args, root: Path, port: int) -> dict:
    """Seed one fresh database through one server and measure the three scenarios on it."""
    workdir = root / f"{name}-{backend}"
    workdir.mkdir(parents=True, exist_ok=True)
    uri = fresh_backend(backend, name, workdir)
    if name == "mlgate":
        # A shared database needs the session key given (mlgate refuses to generate one for PostgreSQL).
        server, _ = start_mlgate(workdir, port, None, policy_file=mlgate_policy(workdir / "policy.yaml", False),
                                 backend_uri=uri, env_extra={"MLGATE_SECRET_KEY": "bench-scale-" + "k" * 40})
    else:
        server, _ = start_mlflow(workdir, port, None, auth=False, backend_uri=uri)
    out: dict = {"server": name, "backend": backend}
    try:
        admin = httpx.Client(base_url=server.url, headers=server.admin_headers, timeout=120)
        experiment_id = admin.post(f"{A}/experiments/create", json={"name": EXPERIMENT}).json()["experiment_id"]
        started = time.monotonic()
        long_ids = seed_templates(admin, experiment_id, args.templates, args.long_runs)
        total = replicate(uri, experiment_id, args.runs // args.templates - 1)
        points = seed_history(uri, long_ids, args.steps, args.keys)
        out["seed_seconds"] = round(time.monotonic() - started, 1)
        out["runs"], out["history_points"] = total, points
        print(f"{name}/{backend}: {total} runs, {points} history points seeded in {out['seed_seconds']} s",
              flush=True)
        headers = {}
        if name == "mlgate":
            admin.post(f"{A}/users/create", json={"username": "bench", "password": USER_PASSWORD}).raise_for_status()
            headers = {"Authorization": basic("bench", USER_PASSWORD)}
        client = httpx.Client(base_url=server.url, headers=headers)
        search = {"experiment_ids": [experiment_id], "filter": "metrics.m0 > 0.5", "order_by": ["metrics.m1 DESC"],
                  "max_results": 100}
        bulk = f"{A}/metrics/get-history-bulk-interval?" + "&".join(f"run_ids={r}" for r in long_ids) \
            + "&metric_key=loss0"
        if name == "mlgate":
            ui = (f"/experiments/{experiment_id}", {})
            ui_check = expect()
        else:
            ui = ("/ajax-api/2.0/mlflow/runs/search", {"json": {
                "experiment_ids": [experiment_id], "max_results": 100, "order_by": ["attributes.start_time DESC"],
                "run_view_type": "ACTIVE_ONLY"}})
            ui_check = expect(key="runs", count=100)
        scenarios = {
            "search-runs": ("POST", (f"{A}/runs/search", {"json": search}), expect(key="runs", count=100)),
            "get-history-bulk-interval": ("GET", (bulk, {}), expect()),
            "ui-runs-table": ("GET" if name == "mlgate" else "POST", ui, ui_check),
        }
        for scenario, (method, path, check) in scenarios.items():
            out[scenario] = timed(client, method, path, args.requests, args.timeout, server, check)
            print(f"  {scenario:<28} {out[scenario]}", flush=True)
    finally:
        server.stop()
    return out


def mlflow_has_postgresql_driver() -> bool:
    """Whether MLflow's virtualenv can open a postgresql:// store (its default driver is psycopg2)."""
    return any((site / "psycopg2").exists() for site in (MLFLOW_VENV / "lib").glob("python3*/site-packages"))


def main() -> int:
    """Parse options, seed and measure every backend x server, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--servers", default="mlgate,mlflow")
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--templates", type=int, default=100, help="runs created through the REST API")
    parser.add_argument("--long-runs", type=int, default=100, help="runs with a long metric history")
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--keys", type=int, default=10, help="metrics per long run (10: 10 M points)")
    parser.add_argument("--requests", type=int, default=20, help="per scenario, one at a time")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before a request 'did not finish'")
    parser.add_argument("--port", type=int, default=5951)
    args = parser.parse_args()
    if args.long_runs > args.templates or args.runs % args.templates:
        parser.error("--long-runs must be at most --templates, and --runs a multiple of --templates")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    root = RESULTS / f"scale-{stamp}"
    load_at_start = os.getloadavg()
    rows = []
    for backend in args.backends.split(","):
        for offset, name in enumerate(args.servers.split(",")):
            if name == "mlflow" and backend == "postgresql" and not mlflow_has_postgresql_driver():
                rows.append({"server": name, "backend": backend,
                             "not_run": "bench/.venv-mlflow has no PostgreSQL driver (psycopg2)"})
                print(f"{name}/{backend}: not run (no psycopg2 in bench/.venv-mlflow)", flush=True)
                continue
            rows.append(measure_server(name, backend, args, root, args.port + offset))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"scale-{stamp}.json"
    out.write_text(json.dumps({
        "kind": "scale",
        "machine": {"cpus": os.cpu_count(), "load_average_at_start": load_at_start,
                    "load_average_at_end": os.getloadavg()},
        "options": vars(args), "rows": rows,
    }, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
