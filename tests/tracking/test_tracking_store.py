"""Store functions other parts call: bulk run/experiment JSON (fixed query count) and run ownership."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from gateway.db import upgrade_database
from tests.services import fresh_postgres_database
from tracking.db.engine import make_engine
from tracking.store import experiments, runs
from tracking.store.datasets import DatasetInput, log_inputs, log_outputs
from tracking.store.metrics import Metric, log_metrics
from tracking.store.params import log_params
from tracking.store.run_lookup import require_active_run


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    """A migrated engine on each backend."""
    if request.param == "postgresql":
        with fresh_postgres_database() as uri:
            eng = make_engine(uri)
            upgrade_database(eng)
            yield eng
            eng.dispose()
    else:
        eng = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
        upgrade_database(eng)
        yield eng
        eng.dispose()


class QueryCounter:
    """Counts SQL statements executed on an engine."""

    def __init__(self, engine):
        self.count = 0
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *args, **kwargs):
        self.count += 1


def _populated_run(conn, experiment_id: int, i: int) -> str:
    run_id = runs.create_run(conn, experiment_id, f"user{i}", 1000 + i, [("t", str(i))], f"run-{i}")["info"]["run_id"]
    run = require_active_run(conn, run_id)
    log_metrics(conn, run_id, [Metric("m", float(i), 1, 0), Metric("m", float(i) + 1, 2, 1)])
    log_params(conn, run_id, {"p": str(i)})
    log_inputs(conn, run, [DatasetInput("ds", "d1", "local", "{}", None, None, (("ctx", str(i)),))], [f"m-in-{i}"])
    log_outputs(conn, run, [(f"m-out-{i}", i)])
    return run_id


def test_runs_to_json_uses_a_fixed_number_of_queries(engine):
    with engine.begin() as conn:
        eid = int(experiments.create_experiment(conn, "bulk", None, []))
        ids = [_populated_run(conn, eid, i) for i in range(12)]
    counts = []
    for subset in (ids[:1], ids):
        counter = QueryCounter(engine)
        with engine.connect() as conn:
            loaded = runs.runs_to_json(conn, [*reversed(subset), "f" * 32])
        event.remove(engine, "before_cursor_execute", counter._seen)
        counts.append(counter.count)
        assert [r["info"]["run_id"] for r in loaded] == list(reversed(subset))
    assert counts[0] == counts[1]
    assert counts[1] <= 7
    with engine.connect() as conn:
        run = runs.runs_to_json(conn, [ids[3]])[0]
    assert run["info"]["run_name"] == "run-3"
    assert run["info"]["user_id"] == "user3"
    assert run["data"]["metrics"] == [{"key": "m", "value": 4.0, "timestamp": 2, "step": 1}]
    assert run["data"]["params"] == [{"key": "p", "value": "3"}]
    assert run["data"]["tags"] == [{"key": "mlflow.runName", "value": "run-3"}, {"key": "t", "value": "3"}]
    assert run["inputs"]["dataset_inputs"] == [
        {"tags": [{"key": "ctx", "value": "3"}],
         "dataset": {"name": "ds", "digest": "d1", "source_type": "local", "source": "{}"}}]
    assert run["inputs"]["model_inputs"] == [{"model_id": "m-in-3"}]
    assert run["outputs"]["model_outputs"] == [{"model_id": "m-out-3", "step": 3}]


def test_experiments_to_json_order_and_query_count(engine):
    with engine.begin() as conn:
        ids = [experiments.create_experiment(conn, f"e{i}", None, [("k", str(i))]) for i in range(5)]
    counter = QueryCounter(engine)
    with engine.connect() as conn:
        loaded = experiments.experiments_to_json(conn, [ids[4], "0", ids[1], "99999"])
    assert counter.count == 2
    assert [e["experiment_id"] for e in loaded] == [ids[4], "0", ids[1]]
    assert loaded[0]["tags"] == [{"key": "k", "value": "4"}]
    assert loaded[1]["name"] == "Default"


def test_get_run_experiment_id(engine):
    with engine.begin() as conn:
        eid = experiments.create_experiment(conn, "owner", None, [])
        run_id = runs.create_run(conn, int(eid), "", None, [], None)["info"]["run_id"]
        runs.delete_run(conn, run_id)
    with engine.connect() as conn:
        assert runs.get_run_experiment_id(conn, run_id) == eid
        assert runs.get_run_experiment_id(conn, "0" * 32) is None
        assert runs.get_run_experiment_id(conn, "") is None


def test_a_locked_database_is_a_retryable_503(tmp_path):
    import sqlite3

    from sqlalchemy import create_engine, insert

    from tracking.db.tables import experiment_tags
    from tracking.errors import MlflowError
    from tracking.store.transaction import write_transaction

    path = tmp_path / "locked.db"
    migrated = make_engine(f"sqlite:///{path}")
    upgrade_database(migrated)
    migrated.dispose()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0.1})
    try:
        with pytest.raises(MlflowError) as busy, write_transaction(engine) as conn:
            conn.execute(insert(experiment_tags).values(experiment_id=0, key="k", value="v"))
        assert busy.value.error_code == "TEMPORARILY_UNAVAILABLE"
        assert busy.value.status == 503
        assert "locked" not in busy.value.message
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        engine.dispose()


def test_owner_of_answers_every_lookup_in_one_read(engine):
    from tracking.store.owners import OwnedBy, Owner, owner_of
    from tracking.store.registry import create_registered_model

    with engine.begin() as conn:
        eid = experiments.create_experiment(conn, "owned", None, [])
        run_id = runs.create_run(conn, int(eid), "", None, [], None)["info"]["run_id"]
        runs.delete_run(conn, run_id)  # a deleted run still has its owner
        create_registered_model(conn, "churn", {}, None, workspace="default")
    owner = Owner("experiment", eid, "owned", "default")
    counter = QueryCounter(engine)
    with engine.connect() as conn:
        assert owner_of(conn, OwnedBy.EXPERIMENT_ID, eid) == owner
        assert owner_of(conn, OwnedBy.EXPERIMENT_NAME, "owned") == owner
        assert owner_of(conn, OwnedBy.RUN, run_id) == owner
        found = owner_of(conn, OwnedBy.MODEL_NAME, "churn")
        assert (found.kind, found.name, found.workspace) == ("registered_model", "churn", "default")
        assert found.id
        assert counter.count == 4
        # Names are per workspace: the name in another workspace is no model there.
        assert owner_of(conn, OwnedBy.MODEL_NAME, "churn", workspace="team-a") is None
        for lookup in OwnedBy:
            assert owner_of(conn, lookup, "0" * 32) is None
        # Not an experiment id at all (or too long for the column): no query is needed to say so.
        before = counter.count
        assert owner_of(conn, OwnedBy.EXPERIMENT_ID, "1" * 19) is None
        assert owner_of(conn, OwnedBy.EXPERIMENT_ID, "x") is None
        assert owner_of(conn, OwnedBy.RUN, "") is None
        assert counter.count == before
