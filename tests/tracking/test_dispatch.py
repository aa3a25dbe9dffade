"""Handlers run on the event loop on SQLite (tracking.api.dispatch): a held write lock must never stall it."""

from __future__ import annotations

import sqlite3
import threading

import httpx

from tests.conftest import start_server

A = "/api/2.0/mlflow"


def test_a_held_sqlite_write_lock_never_stalls_the_server_and_the_write_lands_once(tmp_path):
    db = tmp_path / "mlgate.db"
    server = start_server(tmp_path / "server", f"sqlite:///{db}")
    try:
        with httpx.Client(base_url=server.url, auth=server.admin_auth, timeout=60) as http:
            exp = http.post(f"{A}/experiments/create", json={"name": "locked"}).json()["experiment_id"]
            run = http.post(f"{A}/runs/create", json={"experiment_id": exp}).json()["run"]["info"]["run_id"]
            # Another process (here: another connection) holds SQLite's write lock, as a CLI import would.
            holder = sqlite3.connect(db, isolation_level=None, timeout=30)
            holder.execute("BEGIN IMMEDIATE")
            answers: dict[str, httpx.Response] = {}
            batch = {"run_id": run, "metrics": [{"key": f"m{i}", "value": i, "timestamp": 5, "step": 1}
                                                for i in range(10)], "params": [{"key": "p", "value": "v"}]}

            def log_batch() -> None:
                answers["batch"] = http.post(f"{A}/runs/log-batch", json=batch)

            writer = threading.Thread(target=log_batch)
            writer.start()
            writer.join(1.0)
            assert writer.is_alive(), "the write should wait for the lock, not fail"
            # Meanwhile the server keeps answering: reads (also run on the event loop) and probes.
            assert http.get("/health").status_code == 200
            got = http.get(f"{A}/runs/get", params={"run_id": run})
            assert got.status_code == 200
            assert got.json()["run"]["data"].get("metrics", []) == []
            assert writer.is_alive()
            assert "batch" not in answers
            holder.execute("COMMIT")
            holder.close()
            writer.join(60)
            assert answers["batch"].status_code == 200, answers["batch"].text
            # The attempt made on the event loop rolled back; the retry wrote every point exactly once.
            for i in range(10):
                history = http.get(f"{A}/metrics/get-history", params={"run_id": run, "metric_key": f"m{i}"})
                assert [(m["value"], m["step"]) for m in history.json()["metrics"]] == [(i, 1)]
            params = http.get(f"{A}/runs/get", params={"run_id": run}).json()["run"]["data"]["params"]
            assert params == [{"key": "p", "value": "v"}]
    finally:
        server.stop()


def test_searches_run_at_most_search_concurrency_at_once_and_all_answer(client, monkeypatch):
    # Eight searches in eight threads cost about twice the CPU each of the same searches two at a time
    # (one interpreter lock); the rest must queue, not fail.
    import time

    from tracking.api import dispatch
    from tracking.api import search as search_api

    exp = client.post(f"{A}/experiments/create", json={"name": "queued"}).json()["experiment_id"]
    run = client.post(f"{A}/runs/create", json={"experiment_id": exp}).json()["run"]["info"]["run_id"]
    real = search_api.run_ids_page
    lock, active, peak = threading.Lock(), [0], [0]

    def counting(*args, **kwargs):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            time.sleep(0.2)
            return real(*args, **kwargs)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(search_api, "run_ids_page", counting)
    answers: list[httpx.Response] = []

    def one() -> None:
        answers.append(client.post(f"{A}/runs/search", json={"experiment_ids": [exp]}))

    threads = [threading.Thread(target=one) for _ in range(3 * dispatch.SEARCH_CONCURRENCY)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [a.status_code for a in answers] == [200] * len(threads)
    assert all([r["info"]["run_id"] for r in a.json()["runs"]] == [run] for a in answers)
    assert peak[0] == dispatch.SEARCH_CONCURRENCY
