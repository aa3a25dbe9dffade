"""Alembic environment: one schema made of the tracking and identity tables."""

from alembic import context

from auth.schema import metadata as auth_metadata
from tracking.db.schema import metadata as tracking_metadata

config = context.config
target_metadata = [tracking_metadata, auth_metadata]


def run_migrations() -> None:
    """Run migrations on the connection handed in by :func:`gateway.db.upgrade_database`."""
    connection = config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite needs table rebuilds for ALTER
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
