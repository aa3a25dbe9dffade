#!/usr/bin/env python3
"""CPU per request of the mlgate app alone: requests handed straight to the ASGI app, no network.

    python3 bench/inproc.py                          # get-run and log-batch, security on and off
    python3 bench/inproc.py --op get-run --profile   # cProfile of one operation, hottest functions

No HTTP server, no load generator: the figure is the application's own CPU per request (middleware,
authentication, authorization, handler, database), steadier than bench/run.py's on a busy machine
and quick enough to run after every change. bench/run.py stays the benchmark of record.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/profile.py would shadow the standard library's profile module that cProfile imports.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import base64  # noqa: E402
import cProfile  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import pstats  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ADMIN_PASSWORD = "inproc-Chief-secret-71"
USER_PASSWORD = "inproc-Member-secret-72"


def basic(user: str, password: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


class Driver:
    """Sends requests to an ASGI app in this process and returns (status, body)."""

    def __init__(self, app):
        self.app = app

    async def request(self, method: str, path: str, body: dict | None, auth: bytes) -> tuple[int, bytes]:
        raw = json.dumps(body).encode() if body is not None else b""
        path, _, query = path.partition("?")
        headers = [(b"host", b"127.0.0.1:5000"), (b"authorization", auth), (b"user-agent", b"inproc")]
        if body is not None:
            headers += [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
                 "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query.encode(),
                 "headers": headers, "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 5000),
                 "root_path": ""}
        sent = False
        out = {"status": 0, "body": b""}

        async def receive():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": raw, "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message):
            if message["type"] == "http.response.start":
                out["status"] = message["status"]
            elif message["type"] == "http.response.body":
                out["body"] += message.get("body", b"")

        await self.app(scope, receive, send)
        return out["status"], out["body"]


async def lifespan(app):
    """Run the app's startup; return a coroutine function that runs its shutdown."""
    queue: asyncio.Queue = asyncio.Queue()
    done: asyncio.Queue = asyncio.Queue()
    await queue.put({"type": "lifespan.startup"})

    async def receive():
        return await queue.get()

    async def send(message):
        await done.put(message)

    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send))
    await done.get()

    async def shutdown():
        await queue.put({"type": "lifespan.shutdown"})
        await done.get()
        await task
    return shutdown


def _run_worker_threads_inline() -> None:
    """cProfile sees one thread: run what would go to anyio's worker threads (searches) on the loop."""
    import anyio.to_thread

    async def inline(func, *args, limiter=None, **kwargs):
        return func(*args)

    anyio.to_thread.run_sync = inline


async def measure(open_mode: bool, ops: list[str], n: int, profile: bool, workdir: Path, *,
                  rate_limit: bool = True, runs: int = 1) -> dict[str, float]:
    from gateway.app import create_app
    from gateway.db import upgrade_database
    from gateway.identity import bootstrap_admin
    from gateway.settings import Settings
    from tracking.db.engine import make_engine

    workdir.mkdir(parents=True)
    # The benchmark's own policies (bench/run.py): a group EDIT grant on `bench`, limits above the load.
    from bench.run import mlgate_policy

    policy = mlgate_policy(workdir / "policy.yaml", open_mode)
    if not rate_limit:
        text = policy.read_text().replace('per_client: "1000000/minute"', "enabled: false")
        policy.write_text("\n".join(line for line in text.splitlines() if "/minute" not in line) + "\n")
    os.environ.update({"MLGATE_ADMIN_USERNAME": "admin", "MLGATE_ADMIN_PASSWORD": ADMIN_PASSWORD})
    settings = Settings(backend_store_uri=f"sqlite:///{workdir / 'db.sqlite'}",
                        artifacts_destination=str(workdir / "art"), policy_file=str(policy), data_dir=str(workdir))
    engine = make_engine(settings.backend_store_uri)
    upgrade_database(engine)
    engine.dispose()
    app = create_app(settings)
    bootstrap_admin(app.state.identity, settings.data_dir)
    shutdown = await lifespan(app)
    d = Driver(app)
    admin = basic("admin", ADMIN_PASSWORD)
    api = "/api/2.0/mlflow"
    status, body = await d.request("POST", f"{api}/experiments/create", {"name": "bench"}, admin)
    assert status == 200, body
    exp = json.loads(body)["experiment_id"]
    await d.request("POST", f"{api}/users/create", {"username": "bench", "password": USER_PASSWORD}, admin)
    user = basic("bench", USER_PASSWORD)  # as bench/run.py: the same non-admin user, security on or off
    status, body = await d.request("POST", f"{api}/runs/create", {"experiment_id": exp}, user)
    assert status == 200, body
    run_id = json.loads(body)["run"]["info"]["run_id"]
    batch = {"run_id": run_id, "metrics": [{"key": f"m{i}", "value": 0.5, "timestamp": 1, "step": 0}
                                           for i in range(10)],
             "params": [{"key": f"p{i}", "value": "v"} for i in range(5)]}
    status, body = await d.request("POST", f"{api}/runs/log-batch", batch, user)
    assert status == 200, body
    for index in range(1, runs):
        # bench/run.py's seed: 10 metrics and 5 params per run (and its search below).
        status, body = await d.request("POST", f"{api}/runs/create", {"experiment_id": exp, "start_time": index}, user)
        other = json.loads(body)["run"]["info"]["run_id"]
        seeded = {"run_id": other, "metrics": [{"key": f"m{i}", "value": ((index * 7919 + i) % 1000) / 1000,
                                                "timestamp": 1, "step": 0} for i in range(10)],
                  "params": [{"key": f"p{i}", "value": str(index % (i + 2))} for i in range(5)]}
        status, body = await d.request("POST", f"{api}/runs/log-batch", seeded, user)
        assert status == 200, body
    requests = {
        "get-run": ("GET", f"{api}/runs/get?run_id={run_id}", None),
        "log-batch": ("POST", f"{api}/runs/log-batch",
                      {"run_id": run_id, "metrics": [{"key": f"m{i}", "value": 0.5, "timestamp": 2, "step": 1}
                                                     for i in range(10)]}),
        "search-runs": ("POST", f"{api}/runs/search", {"experiment_ids": [exp], "max_results": 100}),
        # bench/run.py's search-runs request (meant with --runs 1000).
        "search-runs-filtered": ("POST", f"{api}/runs/search", {
            "experiment_ids": [exp], "filter": "metrics.m0 > 0.1", "order_by": ["metrics.m1 DESC"],
            "max_results": 100}),
    }
    results = {}
    for op in ops:
        method, path, body = requests[op]
        for _ in range(50):  # warm up: caches, compiled statements, pooled connections
            status, text = await d.request(method, path, body, user)
            assert status == 200, (op, status, text)
        profiler = cProfile.Profile() if profile else None
        if profile:
            _run_worker_threads_inline()
        started = time.process_time()
        if profiler:
            profiler.enable()
        for _ in range(n):
            await d.request(method, path, body, user)
        if profiler:
            profiler.disable()
        results[op] = (time.process_time() - started) * 1000 / n
        if profiler:
            pstats.Stats(profiler).sort_stats("tottime").print_stats(35)
            pstats.Stats(profiler).sort_stats("cumtime").print_stats(60)
            if os.environ.get("INPROC_CALLEES"):
                pstats.Stats(profiler).sort_stats("cumtime").print_callees(os.environ["INPROC_CALLEES"])
    await shutdown()
    return results


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--op", action="append",
                        choices=["get-run", "log-batch", "search-runs", "search-runs-filtered"])
    parser.add_argument("--runs", type=int, default=1, help="runs in the experiment (10 metrics, 5 params each)")
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--open-only", action="store_true")
    parser.add_argument("--on-only", action="store_true")
    parser.add_argument("--no-rate-limit", action="store_true", help="security on, rate limiting off")
    args = parser.parse_args()
    ops = args.op or ["get-run", "log-batch"]
    modes = [m for m in (False, True) if not (args.open_only and not m) and not (args.on_only and m)]
    with tempfile.TemporaryDirectory() as tmp:
        table = {}
        for open_mode in modes:
            name = "mlgate-open" if open_mode else "mlgate"
            table[name] = asyncio.run(measure(open_mode, ops, args.n, args.profile, Path(tmp) / name,
                                              rate_limit=not args.no_rate_limit, runs=args.runs))
    print(f"\n{'op':<14}" + "".join(f"{name:>14}" for name in table) + "   (CPU ms per request, in process)")
    for op in ops:
        print(f"{op:<14}" + "".join(f"{table[name][op]:>14.3f}" for name in table))
    if len(table) == 2:
        for op in ops:
            print(f"security on vs off, {op}: {100 * (table['mlgate'][op] / table['mlgate-open'][op] - 1):+.0f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
