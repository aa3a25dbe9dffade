#!/usr/bin/env python3
"""The floor: the same FastAPI + uvicorn stack as mlgate with no mlgate code, over the same SQLite file.

    python3 bench/floor.py --db bench/results/<stamp>/floor/db.sqlite --port 5990

Three endpoints at mlgate's paths, each the least work that can answer it from mlgate's schema: no
authentication, authorization, rate limiting, validation, middleware or audit, and no SQLAlchemy.

- ``GET runs/get``: one query; SQLite builds the run's JSON (info, metrics, params, tags) itself.
- ``POST runs/log-batch``: one ``INSERT`` of the batch's metrics and a commit (no latest-metric upkeep,
  no validation: less than MLflow's semantics ask, which is what makes it a floor).
- ``POST runs/search``: one query, the page of runs filtered and ordered by a metric with their metrics,
  params and tags as JSON built by SQLite, handed to the client as it comes out of the database.

bench/run.py starts it as the server ``floor`` beside mlgate and reports each mlgate scenario as a
multiple of it (server CPU per request), so what mlgate's own code costs is visible at a glance.
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import sys

import orjson
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response

A = "/api/2.0/mlflow"

# One run's JSON in MLflow's shape, built by SQLite (json_object / json_group_array, SQLite >= 3.38).
RUN_JSON = """
json_object(
  'info', json_object('run_uuid', r.run_uuid, 'run_id', r.run_uuid, 'experiment_id', CAST(r.experiment_id AS TEXT),
                      'run_name', r.name, 'user_id', r.user_id, 'status', r.status, 'start_time', r.start_time,
                      'end_time', r.end_time, 'artifact_uri', r.artifact_uri, 'lifecycle_stage', r.lifecycle_stage),
  'data', json_object(
    'metrics', (SELECT json_group_array(json_object('key', m.key, 'value', m.value, 'timestamp', m.timestamp,
                                                    'step', m.step))
                FROM latest_metrics m WHERE m.run_uuid = r.run_uuid),
    'params', (SELECT json_group_array(json_object('key', p.key, 'value', p.value))
               FROM params p WHERE p.run_uuid = r.run_uuid),
    'tags', (SELECT json_group_array(json_object('key', t.key, 'value', t.value))
             FROM tags t WHERE t.run_uuid = r.run_uuid)))
"""
GET_RUN = f"SELECT {RUN_JSON} FROM runs r WHERE r.run_uuid = ?"
# bench/scenarios.py's search: "metrics.<a> > x" ordered by "metrics.<b> DESC", one page.
SEARCH = f"""
SELECT {RUN_JSON} FROM runs r
JOIN latest_metrics o ON o.run_uuid = r.run_uuid AND o.key = ?
WHERE r.experiment_id = ? AND r.lifecycle_stage = 'active'
  AND EXISTS (SELECT 1 FROM latest_metrics f WHERE f.run_uuid = r.run_uuid AND f.key = ? AND f.value > ?)
ORDER BY o.value DESC, r.start_time DESC, r.run_uuid
LIMIT ?
"""
INSERT_METRICS = ("INSERT OR IGNORE INTO metrics (run_uuid, key, value, is_nan, timestamp, step) "
                  "VALUES (?, ?, ?, 0, ?, ?)")
FILTER = re.compile(r"metrics\.(\w+) > ([0-9.]+)$")
ORDER = re.compile(r"metrics\.(\w+) DESC$")


def create_app(db: str) -> FastAPI:
    """The floor app over the SQLite file ``db`` (one connection, used on the event loop)."""
    conn = sqlite3.connect(db, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=5000")
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    def json_response(body: bytes, status: int = 200) -> Response:
        return Response(body, status_code=status, media_type="application/json")

    @app.get("/health")
    async def health() -> Response:
        return Response(b"OK", media_type="text/plain")

    @app.get(f"{A}/runs/get")
    async def get_run(run_id: str) -> Response:
        row = conn.execute(GET_RUN, (run_id,)).fetchone()
        if row is None:
            return json_response(b'{"error_code":"RESOURCE_DOES_NOT_EXIST"}', 404)
        return json_response(b'{"run":' + row[0].encode() + b"}")

    @app.post(f"{A}/runs/log-batch")
    async def log_batch(request: Request) -> Response:
        body = orjson.loads(await request.body())
        run_id = body["run_id"]
        rows = [(run_id, m["key"], float(m["value"]), int(m["timestamp"]), int(m.get("step", 0)))
                for m in body.get("metrics", ())]
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(INSERT_METRICS, rows)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return json_response(b"{}")

    @app.post(f"{A}/runs/search")
    async def search_runs(request: Request) -> Response:
        body = orjson.loads(await request.body())
        filter_key, threshold = FILTER.match(body["filter"]).groups()
        order_key = ORDER.match(body["order_by"][0]).group(1)
        rows = conn.execute(SEARCH, (order_key, int(body["experiment_ids"][0]), filter_key, float(threshold),
                                     int(body.get("max_results", 1000)))).fetchall()
        return json_response(b'{"runs":[' + ",".join(r[0] for r in rows).encode() + b"]}")

    return app


def main() -> int:
    """Serve the floor app with uvicorn, as mlgate serves itself (no access log, no server header)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5990)
    args = parser.parse_args()
    uvicorn.run(create_app(args.db), host=args.host, port=args.port, access_log=False, server_header=False,
                proxy_headers=False, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
