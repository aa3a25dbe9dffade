"""Migrations build exactly the schema the code declares, on SQLite and PostgreSQL, and keep data."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from auth.schema import metadata as auth_metadata
from gateway.db import current_revision, head_revision, upgrade_database
from tests.services import fresh_postgres_database
from tracking.db.engine import make_engine
from tracking.db.schema import metadata as tracking_metadata
from tracking.db.tables import experiment_tags, experiments
from tracking.db.workspace_tables import workspaces


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request, tmp_path):
    """A database with no tables at all, on each backend."""
    if request.param == "postgresql":
        with fresh_postgres_database(migrated=False) as uri:
            yield uri
    else:
        yield f"sqlite:///{tmp_path / 'empty.db'}"


def test_migrated_schema_matches_the_declared_tables(empty_database):
    engine = make_engine(empty_database)
    assert current_revision(engine) is None
    try:
        upgrade_database(engine)
        assert current_revision(engine) == head_revision()
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, [tracking_metadata, auth_metadata])
            default = conn.execute(select(experiments.c.name).where(experiments.c.experiment_id == 0)).scalar()
        assert diff == []
        assert default == "Default"
    finally:
        engine.dispose()


def test_a_database_from_the_first_release_upgrades_and_keeps_its_data(empty_database):
    engine = make_engine(empty_database)
    try:
        upgrade_database(engine, "0001")
        assert current_revision(engine) == "0001"
        with engine.begin() as conn:
            conn.execute(experiments.insert().values(name="kept", artifact_location="mlflow-artifacts:/9",
                                                     lifecycle_stage="active", creation_time=1, last_update_time=1))
        upgrade_database(engine)
        upgrade_database(engine)  # a second start changes nothing
        assert current_revision(engine) == head_revision() != "0001"
        with engine.connect() as conn:
            names = set(conn.execute(select(experiments.c.name)).scalars())
            # 0006: everything that existed before workspaces is in 'default'.
            in_workspaces = set(conn.execute(select(experiments.c.workspace)).scalars())
        assert names == {"Default", "kept"}
        assert in_workspaces == {"default"}
    finally:
        engine.dispose()


# Each process imports mlgate, then waits for the same instant, so the upgrades start together.
_CONCURRENT_UPGRADE = """
import sys, time
from gateway.db import upgrade_database
from tracking.db.engine import make_engine
engine = make_engine(sys.argv[1])
start = float(sys.argv[2])
while time.time() < start:
    time.sleep(0.005)
upgrade_database(engine)
engine.dispose()
"""


def test_servers_starting_together_on_an_empty_postgresql_database_all_migrate_it():
    # Several instances (replicaCount: 3) start at once: each runs the migrations on start. On an empty
    # database they raced to create the same tables and types, and all but one could crash.
    import subprocess
    import sys
    import time

    for _ in range(3):  # the race did not lose every time: a few rounds make it fail reliably without the lock
        with fresh_postgres_database(migrated=False) as uri:
            start = time.time() + 4
            procs = [subprocess.Popen([sys.executable, "-c", _CONCURRENT_UPGRADE, uri, str(start)],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(3)]
            outputs = [p.communicate(timeout=120)[0].decode(errors="replace") for p in procs]
            assert [p.returncode for p in procs] == [0, 0, 0], "\n".join(outputs)
            engine = make_engine(uri)
            try:
                assert current_revision(engine) == head_revision()
                with engine.connect() as conn:
                    context = MigrationContext.configure(conn, opts={"compare_type": True})
                    assert compare_metadata(context, [tracking_metadata, auth_metadata]) == []
                    assert conn.execute(select(experiments.c.name)).scalars().all() == ["Default"]
            finally:
                engine.dispose()


def test_0004_gives_every_registered_model_a_stable_id_and_moves_its_grants_onto_it(empty_database):
    from sqlalchemy import insert, text

    from auth.tables import grants
    from tracking.db.registry_tables import registered_models

    engine = make_engine(empty_database)
    try:
        upgrade_database(engine, "0003_sso_refresh")
        with engine.begin() as conn:
            for name in ("kept", "other"):
                conn.execute(text("INSERT INTO registered_models (name, creation_time, last_updated_time) "
                                  "VALUES (:name, 1, 1)"), {"name": name})
            # Grants stored by name before 0004; the one on a model deleted since would reach a new "gone".
            for subject, model in (("user:dana", "kept"), ("user:erin", "gone"), ("group:g", "other")):
                conn.execute(insert(grants).values(subject=subject, resource_kind="registered_model",
                                                   resource_id=model, permission="MANAGE", source="owner",
                                                   created_at=1))
            conn.execute(insert(grants).values(subject="user:dana", resource_kind="registered_model",
                                               name_pattern="k*", permission="READ", source="api", created_at=1))
        # Up to 0004 only: 0005 then drops grants naming accounts that do not exist (dana and erin here).
        upgrade_database(engine, "0004_resource_lifecycle")
        with engine.connect() as conn:
            ids = dict(conn.execute(select(registered_models.c.name, registered_models.c.model_id)).all())
            rows = conn.execute(select(grants.c.subject, grants.c.resource_id, grants.c.name_pattern)
                                .order_by(grants.c.id)).all()
        assert sorted(ids) == ["kept", "other"]
        assert len(set(ids.values())) == 2
        assert all(len(v) == 32 for v in ids.values())
        assert [tuple(r) for r in rows] == [("user:dana", ids["kept"], None), ("group:g", ids["other"], None),
                                            ("user:dana", None, "k*")]
    finally:
        engine.dispose()


def test_0011_makes_experiment_names_unique_per_workspace_and_keeps_every_row_and_id(empty_database):
    engine = make_engine(empty_database)
    try:
        upgrade_database(engine, "0006_workspaces")
        with engine.begin() as conn:
            for name in ("kept", "gone-later", "last"):
                conn.execute(experiments.insert().values(name=name, artifact_location="mlflow-artifacts:/9",
                                                         lifecycle_stage="active", creation_time=1,
                                                         last_update_time=1))
            conn.execute(experiment_tags.insert().values(experiment_id=1, key="k", value="v"))
            # The highest id removed before the upgrade must never be given again (ids key grants and paths).
            conn.execute(experiments.delete().where(experiments.c.name == "last"))
            before = conn.execute(select(experiments.c.experiment_id, experiments.c.name)
                                  .order_by(experiments.c.experiment_id)).all()
        upgrade_database(engine)
        assert current_revision(engine) == head_revision()
        with engine.begin() as conn:
            after = conn.execute(select(experiments.c.experiment_id, experiments.c.name)
                                 .order_by(experiments.c.experiment_id)).all()
            tags = conn.execute(select(experiment_tags.c.key).where(experiment_tags.c.experiment_id == 1)).all()
            conn.execute(workspaces.insert().values(name="team-a", creation_time=1, last_update_time=1))
            # The same name in another workspace is another experiment; in the same one, still refused.
            new_id = conn.execute(experiments.insert().values(
                name="kept", workspace="team-a", artifact_location="x", lifecycle_stage="active", creation_time=1,
                last_update_time=1).returning(experiments.c.experiment_id)).scalar_one()
        assert after == before
        assert [t.key for t in tags] == ["k"]
        assert new_id == 4
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(experiments.insert().values(name="kept", workspace="team-a", artifact_location="x",
                                                     lifecycle_stage="active", creation_time=1, last_update_time=1))
    finally:
        engine.dispose()


def test_0013_keys_the_registry_by_workspace_and_name_and_keeps_every_row(empty_database):
    """Every model, tag, version, version tag and alias survives with its model's workspace; afterwards a name
    is unique per workspace only, children follow their own model (not its namesake) on rename and delete, and
    the stable ids that grants name are untouched."""
    from sqlalchemy import func, insert, inspect, text, update

    from tracking.db.registry_tables import (
        model_version_tags,
        model_versions,
        registered_model_aliases,
        registered_model_tags,
        registered_models,
    )

    engine = make_engine(empty_database)
    try:
        upgrade_database(engine, "0011_names_per_workspace")
        with engine.begin() as conn:
            conn.execute(workspaces.insert().values(name="team-a", creation_time=1, last_update_time=1))
            for name, workspace, model_id in (("churn", "default", "a" * 32), ("fraud", "team-a", "b" * 32)):
                conn.execute(text("INSERT INTO registered_models (name, creation_time, last_updated_time, model_id, "
                                  "workspace) VALUES (:n, 1, 1, :i, :w)"), {"n": name, "i": model_id, "w": workspace})
                conn.execute(text("INSERT INTO registered_model_tags (name, key, value) VALUES (:n, 'k', :v)"),
                             {"n": name, "v": name})
                for version in (1, 2):
                    conn.execute(text("INSERT INTO model_versions (name, version, creation_time, last_updated_time, "
                                      "current_stage, status, source) VALUES (:n, :v, 1, 1, 'None', 'READY', 's')"),
                                 {"n": name, "v": version})
                    conn.execute(text("INSERT INTO model_version_tags (name, version, key, value) "
                                      "VALUES (:n, :v, 'vk', 'x')"), {"n": name, "v": version})
                conn.execute(text("INSERT INTO registered_model_aliases (name, alias, version) "
                                  "VALUES (:n, 'champion', 2)"), {"n": name})
        upgrade_database(engine)
        assert current_revision(engine) == head_revision()

        def rows(conn, table):
            return sorted(tuple(r) for r in conn.execute(select(table.c.workspace, table.c.name)))

        with engine.begin() as conn:
            ids = dict(conn.execute(select(registered_models.c.name, registered_models.c.model_id)).all())
            assert ids == {"churn": "a" * 32, "fraud": "b" * 32}
            assert rows(conn, registered_models) == [("default", "churn"), ("team-a", "fraud")]
            assert rows(conn, registered_model_tags) == [("default", "churn"), ("team-a", "fraud")]
            assert rows(conn, model_versions) == [("default", "churn")] * 2 + [("team-a", "fraud")] * 2
            assert rows(conn, model_version_tags) == [("default", "churn")] * 2 + [("team-a", "fraud")] * 2
            assert rows(conn, registered_model_aliases) == [("default", "churn"), ("team-a", "fraud")]
            # The same name in another workspace is another model, with its own versions numbered from 1.
            conn.execute(insert(registered_models).values(workspace="team-a", name="churn", creation_time=2,
                                                          last_updated_time=2, model_id="c" * 32))
            conn.execute(insert(model_versions).values(workspace="team-a", name="churn", version=1, creation_time=2,
                                                       last_updated_time=2, current_stage="None", status="READY"))
            # A rename moves only its own model's children (ON UPDATE CASCADE on (workspace, name)).
            conn.execute(update(registered_models).where(registered_models.c.workspace == "team-a",
                                                         registered_models.c.name == "churn").values(name="churn-b"))
            assert rows(conn, model_versions).count(("team-a", "churn-b")) == 1
            assert rows(conn, model_versions).count(("default", "churn")) == 2
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(insert(registered_models).values(workspace="default", name="churn", creation_time=3,
                                                          last_updated_time=3, model_id="d" * 32))
        with pytest.raises(IntegrityError), engine.begin() as conn:
            # A child must name its model's workspace: no model 'fraud' in 'default'.
            conn.execute(insert(model_versions).values(workspace="default", name="fraud", version=9, creation_time=3,
                                                       last_updated_time=3, current_stage="None", status="READY"))
        with engine.begin() as conn:
            conn.execute(registered_models.delete().where(registered_models.c.workspace == "team-a",
                                                          registered_models.c.name == "churn-b"))
            assert conn.execute(select(func.count()).select_from(model_versions)).scalar_one() == 4
        with engine.connect() as conn:
            keys = {t: inspect(conn).get_pk_constraint(t)["constrained_columns"]
                    for t in ("registered_models", "registered_model_tags", "model_versions", "model_version_tags",
                              "registered_model_aliases")}
        assert keys == {"registered_models": ["workspace", "name"],
                        "registered_model_tags": ["workspace", "name", "key"],
                        "model_versions": ["workspace", "name", "version"],
                        "model_version_tags": ["workspace", "name", "version", "key"],
                        "registered_model_aliases": ["workspace", "name", "alias"]}
        # Downgrading is refused while two workspaces share a name, and works (keeping the data) otherwise.
        with engine.begin() as conn:
            conn.execute(insert(registered_models).values(workspace="team-a", name="churn", creation_time=4,
                                                          last_updated_time=4, model_id="e" * 32))
        with pytest.raises(RuntimeError, match="used in several workspaces"):
            _downgrade(engine, "0012_gov_audit_checkpoints")
        with engine.begin() as conn:
            conn.execute(registered_models.delete().where(registered_models.c.model_id == "e" * 32))
        _downgrade(engine, "0012_gov_audit_checkpoints")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM model_versions")).scalar_one() == 4
            assert inspect(conn).get_pk_constraint("registered_models")["constrained_columns"] == ["name"]
    finally:
        engine.dispose()


def _downgrade(engine, revision: str) -> None:
    from alembic import command

    from gateway.db import _config

    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        try:
            with connection.begin():
                command.downgrade(_config(connection), revision)
        finally:
            if engine.dialect.name == "sqlite":
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()
