"""The benchmark's data, created identically on every server through its REST API, and cached.

Seeding 100,000 runs takes minutes, so each server family (MLflow, mlgate) is seeded once through its
plain variant (``mlflow`` without auth, ``mlgate-open``) with the same deterministic values, and the
database file is kept under ``bench/.seed-cache/`` (gitignored). Every benchmarked server then starts over a
copy, and only the per-server setup (users, grants, a registered model, a 1 MiB artifact) runs each time.
"""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

A = "/api/2.0/mlflow"
CACHE = Path(__file__).resolve().parent / ".seed-cache"
BASE_TIME = 1_700_000_000_000
# bench-100k: 1/REPLICAS of its runs go through the REST API, the rest are copies made in SQL (replicate_runs).
REPLICAS = 100


@dataclass(frozen=True)
class SeedSpec:
    """How much data: runs in ``bench``, runs in ``bench-100k``, extra experiments ``bench-exp-NNNNN``."""

    runs: int = 1000
    big_runs: int = 0
    experiments: int = 0

    def key(self) -> str:
        """The cache directory name for this amount of data."""
        return f"r{self.runs}-b{self.big_runs}-e{self.experiments}"


@dataclass
class SeededData:
    """Ids created by seeding (the same names on every server)."""

    experiment_id: str
    run_ids: list[str]
    big_experiment_id: str | None
    visible_experiment_ids: list[str]  # bench-exp-00000 .. 00099: the non-admin user may READ these


class Api:
    """A small thread-safe JSON client for one server (as the admin)."""

    def __init__(self, url: str, headers: dict[str, str]):
        self.client = httpx.Client(base_url=url, headers=headers, timeout=120,
                                   limits=httpx.Limits(max_connections=32, max_keepalive_connections=32))

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        """One call; raises with the body on an error."""
        for attempt in range(8):
            try:
                response = self.client.request(method, path, json=body)
                if response.status_code == 503 and attempt < 7:
                    # MLflow answers "database is locked" when SQLite writers collide: nothing was stored.
                    time.sleep(0.2 * (attempt + 1))
                    continue
                break
            except (httpx.RemoteProtocolError, httpx.ConnectError, httpx.ReadError):
                # A keep-alive connection closed as this request went out, or (MLflow) a worker restarted by
                # its supervisor on a loaded machine: try again. A create that did commit leaves at most an
                # extra empty run, which no benchmark request reads.
                if attempt == 7:
                    raise
                time.sleep(0.5 * (attempt + 1))
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path} -> {response.status_code}: {response.text[:500]}")
        return response.json() if response.content else {}


def _create_run(api: Api, experiment_id: str, index: int, metrics: int, params: int) -> str:
    rng = random.Random(index * 7919 + metrics)  # the same values on every server
    run = api.call("POST", f"{A}/runs/create",
                   {"experiment_id": experiment_id, "start_time": BASE_TIME + index, "run_name": f"r{index}"})
    rid = run["run"]["info"]["run_id"]
    api.call("POST", f"{A}/runs/log-batch", {
        "run_id": rid,
        "metrics": [{"key": f"m{k}", "value": rng.random(), "timestamp": BASE_TIME, "step": 0} for k in range(metrics)],
        "params": [{"key": f"p{k}", "value": str(index % (k + 2))} for k in range(params)],
    })
    return rid


def _parallel(fn, items, workers: int = 12, label: str = "") -> list:
    results = [None] * len(items)
    done = [0]
    lock = threading.Lock()

    def one(i_item):
        i, item = i_item
        results[i] = fn(item)
        with lock:
            done[0] += 1
            if label and done[0] % 10_000 == 0:
                print(f"    {label}: {done[0]}/{len(items)}", flush=True)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, enumerate(items)))
    return results


def seed_tracking(url: str, admin_headers: dict[str, str], spec: SeedSpec) -> SeededData:
    """Create the experiments and runs of ``spec`` on a fresh server."""
    api = Api(url, admin_headers)
    exp = api.call("POST", f"{A}/experiments/create", {"name": "bench"})["experiment_id"]
    run_ids = _parallel(lambda i: _create_run(api, exp, i, 10, 5), list(range(spec.runs)))
    big = None
    if spec.big_runs:
        big = api.call("POST", f"{A}/experiments/create", {"name": "bench-100k"})["experiment_id"]
        template = spec.big_runs // REPLICAS
        _parallel(lambda i: _create_run(api, big, i, 2, 1), list(range(template)), label="big runs")
    names = [f"bench-exp-{i:05d}" for i in range(spec.experiments)]
    ids = _parallel(lambda n: api.call("POST", f"{A}/experiments/create", {"name": n})["experiment_id"], names,
                    label="experiments")
    visible = [i for n, i in zip(names, ids, strict=True) if n < "bench-exp-00100"]
    return SeededData(exp, run_ids, big, visible)


def replicate_runs(db: Path, experiment_id: str, replicas: int = REPLICAS) -> int:
    """Copy every run of ``experiment_id`` ``replicas - 1`` times, in every table keyed by run_uuid.

    Creating 100,000 runs through a REST API takes an hour on a loaded 2-core machine, so both server
    families get the same treatment: the template runs are created through their own API, and each is
    then copied inside that server's own schema (whatever its tables), with a new 32-hex run id, a
    shifted start time and slightly shifted metric values, so filters and sorts see distinct rows.
    """
    conn = sqlite3.connect(db)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        keyed = {}
        for table in tables:
            columns = [(r[1], r[2].upper(), r[5]) for r in conn.execute(f'PRAGMA table_info("{table}")')]
            if any(name == "run_uuid" for name, _, _ in columns):
                # An INTEGER PRIMARY KEY is a rowid alias: leave it out so SQLite numbers the copies.
                keyed[table] = [name for name, kind, pk in columns if not (pk and kind == "INTEGER")]
        conn.execute("CREATE TEMP TABLE template AS SELECT run_uuid FROM runs WHERE experiment_id = ?",
                     (int(experiment_id),))
        for k in range(1, replicas):
            # Templates are uuid4 hex (a '4' at index 12); copies carry a 'c' there, so never collide with one.
            new_id = f"substr(run_uuid, 1, 12) || 'c' || substr(run_uuid, 14, 15) || printf('%04x', {k})"
            for table, columns in keyed.items():
                exprs = []
                for name in columns:
                    if name == "run_uuid":
                        exprs.append(new_id)
                    elif table == "runs" and name == "artifact_uri":
                        exprs.append(f"replace(artifact_uri, run_uuid, {new_id})")
                    elif table == "runs" and name == "start_time":
                        exprs.append(f"start_time + {k * 1000}")
                    elif table in ("metrics", "latest_metrics") and name == "value":
                        exprs.append(f"value + {k} * 1e-7")
                    else:
                        exprs.append(f'"{name}"')
                cols = ", ".join(f'"{c}"' for c in columns)
                conn.execute(f'INSERT INTO "{table}" ({cols}) SELECT {", ".join(exprs)} FROM "{table}" '
                             "WHERE run_uuid IN (SELECT run_uuid FROM temp.template)")
        conn.commit()
        return conn.execute(f"SELECT count(*) FROM runs WHERE experiment_id = {int(experiment_id)}").fetchone()[0]
    finally:
        conn.close()


def _schema_key(family: str) -> str:
    """The cache is per server family; mlgate migrates an older cached schema when it starts over it."""
    return family


def cache_dir(family: str, spec: SeedSpec) -> Path:
    """Where the seeded database of ``family`` for ``spec`` is kept."""
    return CACHE / f"{_schema_key(family)}-{spec.key()}"


def cached(family: str, spec: SeedSpec) -> SeededData | None:
    """The ids of a cached seed, if one exists."""
    meta = cache_dir(family, spec) / "seed.json"
    if not meta.exists():
        return None
    return SeededData(**json.loads(meta.read_text()))


def save(family: str, spec: SeedSpec, db: Path, data: SeededData) -> None:
    """Keep a seeded database (the server must be stopped) and its ids."""
    target = cache_dir(family, spec)
    target.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(db) as conn:  # fold a leftover write-ahead log into the file before copying it
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copyfile(db, target / "db.sqlite")
    (target / "seed.json").write_text(json.dumps(asdict(data)))


def restore(family: str, spec: SeedSpec, db: Path) -> None:
    """Copy the cached database of ``family`` to ``db``."""
    db.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cache_dir(family, spec) / "db.sqlite", db)
