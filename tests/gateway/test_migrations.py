"""Migrations build exactly the schema the code declares, on SQLite and PostgreSQL, and keep data."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select

from auth.schema import metadata as auth_metadata
from gateway.db import current_revision, head_revision, upgrade_database
from tests.services import fresh_postgres_database
from tracking.db.engine import make_engine
from tracking.db.schema import metadata as tracking_metadata
from tracking.db.tables import experiments


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


def test_a_database_from_the_first_release_upgrades_and_keeps_its_data(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
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
        assert names == {"Default", "kept"}
    finally:
        engine.dispose()
