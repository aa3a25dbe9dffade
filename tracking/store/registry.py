"""Registered models: create, read, rename, update, delete, tags and aliases (SQLAlchemy Core)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, delete, select, update
from sqlalchemy.exc import IntegrityError

from tracking.db.registry_tables import (
    model_version_tags,
    model_versions,
    new_model_id,
    registered_model_aliases,
    registered_model_tags,
    registered_models,
)
from tracking.errors import MlflowError, already_exists, not_found
from tracking.store.registry_json import (
    latest_version_rows,
    registered_model_row,
    registered_models_json,
    versions_json,
)
from tracking.store.registry_validation import (
    ALL_STAGES,
    IS_PROMPT_TAG_KEY,
    MAX_DESCRIPTION_LENGTH,
    STAGE_DELETED,
    canonical_stage,
    validate_alias,
    validate_model_name,
    validate_tag_key,
    validate_tag_value,
    validate_text,
    validate_version,
)
from tracking.store.upsert import dialect_insert


def now_ms() -> int:
    """The current time in milliseconds, as MLflow stores timestamps."""
    return int(time.time() * 1000)


def model_missing(name: str) -> MlflowError:
    """404 for a registered model that does not exist."""
    return not_found(f"Registered Model with name={name} not found")


def of_model(table: Any, workspace: str, name: str) -> ColumnElement[bool]:
    """The rows of ``table`` (the models, or one of their children) that belong to the model ``name`` of
    ``workspace``: names are unique per workspace only, so a name never stands alone in a query."""
    return and_(table.c.workspace == workspace, table.c.name == name)


def require_model(conn: Connection, name: str, *, workspace: str, for_update: bool = False) -> Any:
    """The registered model row of ``workspace``, or 404 (a model of another workspace is just as missing)."""
    row = registered_model_row(conn, validate_model_name(name), workspace=workspace, for_update=for_update)
    if row is None:
        raise model_missing(name)
    return row


def touch_model(conn: Connection, name: str, when: int, *, workspace: str) -> None:
    """Set a model's last-updated time; the UPDATE also serialises writers of one model on PostgreSQL."""
    result = conn.execute(update(registered_models).where(of_model(registered_models, workspace, name))
                          .values(last_updated_time=when))
    if result.rowcount == 0:
        raise model_missing(name)


def is_prompt_model(conn: Connection, name: str, *, workspace: str) -> bool:
    """Whether the registered model carries the prompt marker tag (``mlflow.prompt.is_prompt=true``)."""
    value = conn.execute(
        select(registered_model_tags.c.value).where(of_model(registered_model_tags, workspace, name),
                                                    registered_model_tags.c.key == IS_PROMPT_TAG_KEY)
    ).scalar()
    return value is not None and value.lower() == "true"


def model_json(conn: Connection, name: str, *, workspace: str) -> dict[str, Any]:
    """One registered model as MLflow's JSON."""
    return registered_models_json(conn, [require_model(conn, name, workspace=workspace)])[0]


def create_registered_model(conn: Connection, name: str, tags: dict[str, str],
                            description: str | None, *, workspace: str) -> dict[str, Any]:
    """Create a model in ``workspace``; a name that workspace already holds is RESOURCE_ALREADY_EXISTS
    (worded for prompts as MLflow does). Another workspace's models are not looked at: names are per workspace."""
    validate_model_name(name)
    validate_text(description, "description", MAX_DESCRIPTION_LENGTH)
    existing = registered_model_row(conn, name, workspace=workspace)
    if existing is not None:
        raise _duplicate(conn, name, tags, workspace)
    when = now_ms()
    try:
        conn.execute(registered_models.insert().values(
            name=name, creation_time=when, last_updated_time=when, description=description,
            model_id=new_model_id(), workspace=workspace))
    except IntegrityError:
        # A concurrent request created the same name between the check and the insert; the
        # transaction is now unusable (PostgreSQL), so answer without further queries.
        raise already_exists(f"Registered Model (name={name}) already exists.") from None
    if tags:
        conn.execute(registered_model_tags.insert(),
                     [{"workspace": workspace, "name": name, "key": k, "value": v} for k, v in tags.items()])
    return model_json(conn, name, workspace=workspace)


def _duplicate(conn: Connection, name: str, tags: dict[str, str], workspace: str) -> MlflowError:
    existing_is_prompt = is_prompt_model(conn, name, workspace=workspace)
    new_is_prompt = tags.get(IS_PROMPT_TAG_KEY, "false").lower() == "true"
    if existing_is_prompt and new_is_prompt:
        return already_exists(f"Prompt (name={name}) already exists.")
    if existing_is_prompt != new_is_prompt:
        existing = "prompt" if existing_is_prompt else "registered model"
        return already_exists(
            f"Tried to create a {'prompt' if new_is_prompt else 'model'} with name {name!r}, but the name is "
            f"already taken by a {existing}. MLflow does not allow creating a model and a prompt with the "
            "same name."
        )
    return already_exists(f"Registered Model (name={name}) already exists.")


def rename_registered_model(conn: Connection, name: str, new_name: str | None, *, workspace: str) -> dict[str, Any]:
    """Rename a model within its workspace; versions, tags and aliases follow through ON UPDATE CASCADE."""
    if new_name is None or new_name.strip() == "":
        raise MlflowError("Missing value for required parameter 'new_name'.")
    validate_model_name(new_name, "new_name")
    require_model(conn, name, workspace=workspace, for_update=True)
    if new_name != name and registered_model_row(conn, new_name, workspace=workspace) is not None:
        raise already_exists(f"Registered Model (name={new_name}) already exists.")
    when = now_ms()
    try:
        conn.execute(update(registered_models).where(of_model(registered_models, workspace, name))
                     .values(name=new_name, last_updated_time=when))
    except IntegrityError:
        raise already_exists(f"Registered Model (name={new_name}) already exists.") from None
    conn.execute(update(model_versions).where(of_model(model_versions, workspace, new_name))
                 .values(last_updated_time=when))
    return model_json(conn, new_name, workspace=workspace)


def update_registered_model(conn: Connection, name: str, description: str | None, *,
                            workspace: str) -> dict[str, Any]:
    """Replace a model's description."""
    validate_text(description, "description", MAX_DESCRIPTION_LENGTH)
    require_model(conn, name, workspace=workspace)
    conn.execute(update(registered_models).where(of_model(registered_models, workspace, name))
                 .values(description=description, last_updated_time=now_ms()))
    return model_json(conn, name, workspace=workspace)


def stable_model_id(conn: Connection, name: str, *, workspace: str) -> str:
    """The stable id of the model named ``name`` in ``workspace`` (404 when there is none)."""
    model_id = conn.execute(select(registered_models.c.model_id)
                            .where(of_model(registered_models, workspace, name))).scalar()
    if model_id is None:
        raise model_missing(name)
    return model_id


def delete_registered_model(conn: Connection, name: str, *, workspace: str) -> str:
    """Delete a model with its versions, tags and aliases; returns the deleted model's stable id."""
    model_id = require_model(conn, name, workspace=workspace, for_update=True).model_id
    # Children are deleted explicitly so correctness never depends on the FK pragma being on.
    for table in (model_version_tags, registered_model_aliases, model_versions, registered_model_tags,
                  registered_models):
        conn.execute(delete(table).where(of_model(table, workspace, name)))
    return model_id


def set_registered_model_tag(conn: Connection, name: str, key: str, value: str | None, *, workspace: str) -> None:
    """Create or replace one tag of a model."""
    validate_model_name(name)
    validate_tag_key(key)
    value = validate_tag_value(value)
    require_model(conn, name, workspace=workspace)
    stmt = dialect_insert(conn, registered_model_tags).values(workspace=workspace, name=name, key=key, value=value)
    conn.execute(stmt.on_conflict_do_update(index_elements=["workspace", "name", "key"], set_={"value": value}))


def delete_registered_model_tag(conn: Connection, name: str, key: str, *, workspace: str) -> None:
    """Delete one tag of a model (absent tags are fine, as in MLflow)."""
    validate_model_name(name)
    validate_tag_key(key)
    require_model(conn, name, workspace=workspace)
    conn.execute(delete(registered_model_tags).where(of_model(registered_model_tags, workspace, name),
                                                      registered_model_tags.c.key == key))


def get_latest_versions(conn: Connection, name: str, stages: list[str], *, workspace: str) -> list[dict[str, Any]]:
    """The newest version in each requested stage (every stage when none is given)."""
    wanted = [canonical_stage(s) for s in stages] if stages else list(ALL_STAGES)
    require_model(conn, name, workspace=workspace)
    return versions_json(conn, latest_version_rows(conn, [(workspace, name)], wanted))


def set_alias(conn: Connection, name: str, alias: str, version: str, *, workspace: str) -> None:
    """Point an alias at an existing version (moving it if it pointed elsewhere)."""
    validate_model_name(name)
    validate_alias(alias, for_write=True)
    number = validate_version(version)
    require_version_row(conn, name, number, workspace=workspace)
    stmt = dialect_insert(conn, registered_model_aliases).values(workspace=workspace, name=name, alias=alias,
                                                                 version=number)
    conn.execute(stmt.on_conflict_do_update(index_elements=["workspace", "name", "alias"],
                                            set_={"version": number}))


def delete_alias(conn: Connection, name: str, alias: str, *, workspace: str) -> None:
    """Remove an alias (an absent alias is fine, as in MLflow)."""
    validate_model_name(name)
    validate_alias(alias)
    require_model(conn, name, workspace=workspace)
    conn.execute(delete(registered_model_aliases).where(of_model(registered_model_aliases, workspace, name),
                                                         registered_model_aliases.c.alias == alias))


def version_missing(name: str, version: int | str) -> MlflowError:
    """404 for a model version that does not exist."""
    return not_found(f"Model Version (name={name}, version={version}) not found")


def require_version_row(conn: Connection, name: str, version: int, *, workspace: str) -> Any:
    """The non-deleted version row, or 404."""
    validate_model_name(name)
    row = conn.execute(select(model_versions).where(
        of_model(model_versions, workspace, name), model_versions.c.version == version,
        model_versions.c.current_stage != STAGE_DELETED)).first()
    if row is None:
        raise version_missing(name, version)
    return row


def version_by_alias_row(conn: Connection, name: str, alias: str, *, workspace: str) -> Any:
    """The version an alias points to; ``latest`` (any case) is the highest live version."""
    validate_model_name(name)
    validate_alias(alias)
    require_model(conn, name, workspace=workspace)
    if alias.lower() == "latest":
        number = conn.execute(select(model_versions.c.version).where(
            of_model(model_versions, workspace, name), model_versions.c.current_stage != STAGE_DELETED)
            .order_by(model_versions.c.version.desc()).limit(1)).scalar()
        if number is None:
            raise not_found(f"Latest version not found for model {name}.")
        return require_version_row(conn, name, number, workspace=workspace)
    number = conn.execute(select(registered_model_aliases.c.version).where(
        of_model(registered_model_aliases, workspace, name), registered_model_aliases.c.alias == alias)).scalar()
    if number is None:
        # MLflow answers 400 INVALID_PARAMETER_VALUE here, not 404.
        raise MlflowError(f"Registered model alias {alias} not found.")
    return require_version_row(conn, name, number, workspace=workspace)


def get_model_version_run_id(conn: Connection, name: str, version: str | int, *, workspace: str) -> str | None:
    """The run id of a live model version (None when it has none or does not exist); for authorization."""
    try:
        number = validate_version(version)
    except MlflowError:
        return None
    run_id = conn.execute(select(model_versions.c.run_id).where(
        of_model(model_versions, workspace, name), model_versions.c.version == number,
        model_versions.c.current_stage != STAGE_DELETED)).scalar()
    return run_id or None

