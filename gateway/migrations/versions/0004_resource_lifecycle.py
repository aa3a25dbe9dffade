"""Resource lifecycle: a stable id for every registered model (prompts included), and stored grants on one
model refer to that id instead of the model's name.

A name changes on rename and comes back when a model is deleted and another created under it; the id does
neither (a uuid4 hex, never reused). Grants stored by name whose model no longer exists are exactly the
grants that would have reached a later model of that name, so they are removed here.

SQLite cannot add a NOT NULL column without a default or alter it afterwards without rebuilding the table,
and rebuilding ``registered_models`` with foreign keys on would cascade into its versions; there the column
is added with an empty default, filled, and made unique by an index (as on PostgreSQL).

Revision ID: 0004_resource_lifecycle
Revises: 0003_sso_refresh
Create Date: 2026-12-07
"""
import uuid

import sqlalchemy as sa
from alembic import op

revision = '0004_resource_lifecycle'
down_revision = '0003_sso_refresh'
branch_labels = None
depends_on = None

_models = sa.table('registered_models', sa.column('name', sa.String), sa.column('model_id', sa.String))
_grants = sa.table('auth_grants', sa.column('id', sa.Integer), sa.column('resource_kind', sa.String),
                   sa.column('resource_id', sa.String))


def upgrade() -> None:
    conn = op.get_bind()
    sqlite = conn.dialect.name == 'sqlite'
    op.add_column('registered_models', sa.Column('model_id', sa.String(length=32), nullable=not sqlite,
                                                 server_default='' if sqlite else None))
    for (name,) in conn.execute(sa.select(_models.c.name)).all():
        conn.execute(_models.update().where(_models.c.name == name).values(model_id=uuid.uuid4().hex))
    if not sqlite:
        op.alter_column('registered_models', 'model_id', nullable=False)
    op.create_index('ix_registered_models_model_id', 'registered_models', ['model_id'], unique=True)

    by_name = {name: model_id for name, model_id in conn.execute(sa.select(_models.c.name, _models.c.model_id))}
    model_grants = conn.execute(sa.select(_grants.c.id, _grants.c.resource_id).where(
        _grants.c.resource_kind == 'registered_model', _grants.c.resource_id.is_not(None))).all()
    for grant_id, name in model_grants:
        if name in by_name:
            conn.execute(_grants.update().where(_grants.c.id == grant_id).values(resource_id=by_name[name]))
        else:
            conn.execute(_grants.delete().where(_grants.c.id == grant_id))


def downgrade() -> None:
    conn = op.get_bind()
    by_id = {model_id: name for name, model_id in conn.execute(sa.select(_models.c.name, _models.c.model_id))}
    for grant_id, model_id in conn.execute(sa.select(_grants.c.id, _grants.c.resource_id).where(
            _grants.c.resource_kind == 'registered_model', _grants.c.resource_id.is_not(None))).all():
        if model_id in by_id:
            conn.execute(_grants.update().where(_grants.c.id == grant_id).values(resource_id=by_id[model_id]))
    op.drop_index('ix_registered_models_model_id', table_name='registered_models')
    op.drop_column('registered_models', 'model_id')  # natively (SQLite 3.35+): no rebuild, no cascade
