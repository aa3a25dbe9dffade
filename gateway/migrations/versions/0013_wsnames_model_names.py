"""Registered model (and prompt) names are unique per workspace: the registry is keyed by (workspace, name).

As MLflow 3's workspace-aware registry: ``registered_models`` gets the primary key (workspace, name), and its
versions, version tags, tags and aliases carry the workspace and reference (workspace, name). Every child
row takes its model's workspace, so nothing moves. The model's stable id (``model_id``, what grants name)
is untouched and stays unique server-wide.

SQLite rebuilds each table (Alembic's batch mode copies every row; foreign keys are off while migrating,
see ``gateway.db``); PostgreSQL alters the constraints in place, the children's references first.

Revision ID: 0013_wsnames_model_names
Revises: 0011_names_per_workspace
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = '0013_wsnames_model_names'
down_revision = '0012_gov_audit_checkpoints'
branch_labels = None
depends_on = None

_CASCADE = {'ondelete': 'CASCADE', 'onupdate': 'CASCADE'}
# child table -> (its old primary key columns after the name, its reference to the model)
_CHILDREN = {
    'registered_model_tags': (['key'], 'fk_registered_model_tags_name_registered_models',
                              'fk_registered_model_tags_workspace_registered_models'),
    'model_versions': (['version'], 'fk_model_versions_name_registered_models',
                       'fk_model_versions_workspace_registered_models'),
    'registered_model_aliases': (['alias'], 'fk_registered_model_aliases_name_registered_models',
                                 'fk_registered_model_aliases_workspace_registered_models'),
}
_VERSION_TAGS_FK = 'fk_model_version_tags_model_versions'


def _fill_workspace(table: str, parent: str = 'registered_models') -> None:
    # Names were unique server-wide until now: a child's model (or version) is found by its name alone.
    op.execute(f"UPDATE {table} SET workspace = (SELECT {parent}.workspace FROM {parent} "  # noqa: S608 - constants
               f"WHERE {parent}.name = {table}.name) WHERE EXISTS (SELECT 1 FROM {parent} "
               f"WHERE {parent}.name = {table}.name)")


def upgrade() -> None:
    # 1. References to the old key go first (PostgreSQL: they depend on its unique index).
    with op.batch_alter_table('model_version_tags') as batch_op:
        batch_op.drop_constraint(_VERSION_TAGS_FK, type_='foreignkey')
    for table, (_, old_fk, _) in _CHILDREN.items():
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_constraint(old_fk, type_='foreignkey')
    # 2. The model's key becomes (workspace, name).
    with op.batch_alter_table('registered_models') as batch_op:
        batch_op.drop_constraint('pk_registered_models', type_='primary')
        batch_op.create_primary_key('pk_registered_models', ['workspace', 'name'])
    # 3. Every child carries its model's workspace and is keyed (and refers to its model) with it.
    for table in (*_CHILDREN, 'model_version_tags'):
        op.add_column(table, sa.Column('workspace', sa.String(length=63), nullable=False, server_default='default'))
        _fill_workspace(table)
    for table, (rest, _, new_fk) in _CHILDREN.items():
        with op.batch_alter_table(table) as batch_op:
            batch_op.alter_column('workspace', server_default=None, existing_type=sa.String(length=63),
                                  existing_nullable=False)
            batch_op.drop_constraint(f'pk_{table}', type_='primary')
            batch_op.create_primary_key(f'pk_{table}', ['workspace', 'name', *rest])
            batch_op.create_foreign_key(new_fk, 'registered_models', ['workspace', 'name'],
                                        ['workspace', 'name'], **_CASCADE)
    with op.batch_alter_table('model_version_tags') as batch_op:
        batch_op.alter_column('workspace', server_default=None, existing_type=sa.String(length=63),
                              existing_nullable=False)
        batch_op.drop_constraint('pk_model_version_tags', type_='primary')
        batch_op.create_primary_key('pk_model_version_tags', ['workspace', 'name', 'version', 'key'])
        batch_op.create_foreign_key(_VERSION_TAGS_FK, 'model_versions', ['workspace', 'name', 'version'],
                                    ['workspace', 'name', 'version'], **_CASCADE)


def downgrade() -> None:
    # Refused rather than losing data when two workspaces hold the same model name.
    bind = op.get_bind()
    clash = bind.execute(sa.text("SELECT name FROM registered_models GROUP BY name HAVING COUNT(*) > 1")).first()
    if clash is not None:
        raise RuntimeError(f"cannot downgrade: the registered model name {clash[0]!r} is used in several workspaces")
    with op.batch_alter_table('model_version_tags') as batch_op:
        batch_op.drop_constraint(_VERSION_TAGS_FK, type_='foreignkey')
        batch_op.drop_constraint('pk_model_version_tags', type_='primary')
        batch_op.create_primary_key('pk_model_version_tags', ['name', 'version', 'key'])
        batch_op.drop_column('workspace')
    for table, (rest, _, new_fk) in _CHILDREN.items():
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_constraint(new_fk, type_='foreignkey')
            batch_op.drop_constraint(f'pk_{table}', type_='primary')
            batch_op.create_primary_key(f'pk_{table}', ['name', *rest])
            batch_op.drop_column('workspace')
    with op.batch_alter_table('registered_models') as batch_op:
        batch_op.drop_constraint('pk_registered_models', type_='primary')
        batch_op.create_primary_key('pk_registered_models', ['name'])
    for table, (_, old_fk, _) in _CHILDREN.items():
        with op.batch_alter_table(table) as batch_op:
            batch_op.create_foreign_key(old_fk, 'registered_models', ['name'], ['name'], **_CASCADE)
    with op.batch_alter_table('model_version_tags') as batch_op:
        batch_op.create_foreign_key(_VERSION_TAGS_FK, 'model_versions', ['name', 'version'], ['name', 'version'],
                                    **_CASCADE)
