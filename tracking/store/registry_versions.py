"""Model versions: create (with source checks), read, update, delete, tags, stages, download URI."""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, select, update

from tracking.db.mlflow3_tables import logged_model_tags, logged_models
from tracking.db.registry_tables import model_version_tags, model_versions, registered_model_aliases
from tracking.db.tables import runs
from tracking.errors import MlflowError, invalid_parameter
from tracking.store.logged_models import set_logged_model_tags
from tracking.store.registry import (
    is_prompt_model,
    now_ms,
    of_model,
    require_model,
    require_version_row,
    touch_model,
    version_by_alias_row,
)
from tracking.store.registry_json import versions_json
from tracking.store.registry_source import SourceKind, parse_source, proxied_parts, refuse, within
from tracking.store.registry_validation import (
    ACTIVE_STAGES,
    MAX_DESCRIPTION_LENGTH,
    MAX_RUN_LINK_LENGTH,
    MAX_SOURCE_LENGTH,
    PROMPT_SOURCE_PLACEHOLDERS,
    STAGE_ARCHIVED,
    STAGE_DELETED,
    STAGE_NONE,
    canonical_stage,
    is_prompt_tags,
    validate_model_name,
    validate_tag_key,
    validate_tag_value,
    validate_text,
    validate_version,
)
from tracking.store.upsert import dialect_insert

MODEL_VERSIONS_TAG = "mlflow.modelVersions"
_RUN_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


@dataclass(frozen=True)
class NewVersion:
    """The fields of a CreateModelVersion request."""

    name: str
    source: str
    run_id: str | None = None
    tags: dict[str, str] | None = None
    run_link: str | None = None
    description: str | None = None
    model_id: str | None = None


def version_json(conn: Connection, row: Any) -> dict[str, Any]:
    """One version row as MLflow's JSON (with tags and aliases)."""
    return versions_json(conn, [row])[0]


def get_model_version(conn: Connection, name: str, version: str, *, workspace: str) -> dict[str, Any]:
    """A live version, or 404."""
    return version_json(conn, require_version_row(conn, name, validate_version(version), workspace=workspace))


def get_version_by_alias(conn: Connection, name: str, alias: str, *, workspace: str) -> dict[str, Any]:
    """The version an alias points to."""
    return version_json(conn, version_by_alias_row(conn, name, alias, workspace=workspace))


def _run_artifact_uri(conn: Connection, run_id: str, source: str) -> str:
    if not run_id or not set(run_id) <= _RUN_ID_CHARS or len(run_id) > 32:
        raise refuse(source, "The run_id request parameter must identify the resource that contains the source.")
    artifact_uri = conn.execute(select(runs.c.artifact_uri).where(runs.c.run_uuid == run_id)).scalar()
    if not artifact_uri:
        raise refuse(source, "The run_id request parameter must identify the resource that contains the source.")
    return artifact_uri


def _inside(source: str, kind: SourceKind, root_uri: str | None) -> bool:
    # Same scheme and host as the owner's artifact location, and a path inside it (MLflow's rule).
    root_parts = proxied_parts(root_uri) if root_uri else None
    if root_parts is None:
        return False
    src, root = urllib.parse.urlsplit(source), urllib.parse.urlsplit(root_uri)
    return (src.scheme.lower(), src.netloc.lower()) == (root.scheme.lower(), root.netloc.lower()) and within(
        kind.parts, root_parts)


def _logged_model(conn: Connection, model_id: str, source: str) -> Any:
    row = conn.execute(select(logged_models.c.artifact_location, logged_models.c.source_run_id)
                       .where(logged_models.c.model_id == model_id,
                              logged_models.c.lifecycle_stage != "deleted")).first()
    if row is None:
        raise refuse(source, "The model_id request parameter must identify the resource that contains the source.")
    return row


@dataclass(frozen=True)
class ResolvedSource:
    """Where a new version's artifacts are, and the lineage stored with it."""

    source: str
    storage_location: str | None
    run_id: str | None
    model_id: str | None


def _resolve_models_name(conn: Connection, kind: SourceKind, new: NewVersion, workspace: str) -> ResolvedSource:
    # models:/<name>/<version|stage|latest> and models:/<name>@<alias> copy another version's lineage: a
    # model of the request's workspace (the name of another workspace's model names nothing here).
    ref = kind.model_ref or ""
    name = kind.model_name or ""
    if is_prompt_model(conn, name, workspace=workspace):
        raise refuse(new.source, "Prompt versions cannot be used as model version sources.")
    if ref.startswith("@"):
        row = version_by_alias_row(conn, name, ref[1:], workspace=workspace)
    elif ref.isdigit():
        row = require_version_row(conn, name, validate_version(ref), workspace=workspace)
    else:
        require_model(conn, name, workspace=workspace)
        query = select(model_versions).where(of_model(model_versions, workspace, name),
                                             model_versions.c.current_stage != STAGE_DELETED)
        if ref.lower() != "latest":
            query = query.where(model_versions.c.current_stage == canonical_stage(ref))
        row = conn.execute(query.order_by(model_versions.c.version.desc()).limit(1)).first()
        if row is None:
            raise refuse(new.source, "No model version matches it.")
    if (new.run_id is not None and (new.run_id or "") != (row.run_id or "")) or (
        new.model_id is not None and (new.model_id or "") != (row.model_id or "")
    ):
        raise refuse(new.source, "The run_id and model_id request parameters must match the referenced "
                                 "model version.")
    return ResolvedSource(
        f"models:/{row.name}/{row.version}",
        row.storage_location or row.source,
        new.run_id if new.run_id is not None else row.run_id,
        new.model_id if new.model_id is not None else row.model_id,
    )


def resolve_source(conn: Connection, new: NewVersion, *, workspace: str) -> ResolvedSource:
    """Check a non-prompt source against MLflow's lineage rules (see :mod:`registry_source`)."""
    kind = parse_source(new.source)
    run_id, model_id = new.run_id or None, new.model_id or None
    if kind.kind == "models_name":
        return _resolve_models_name(conn, kind, new, workspace)
    if model_id:
        model = _logged_model(conn, model_id, new.source)
        if kind.kind == "models_id" and kind.model_id == model_id:
            return ResolvedSource(new.source, model.artifact_location, run_id or model.source_run_id, model_id)
        if kind.kind == "proxied" and _inside(new.source, kind, model.artifact_location):
            return ResolvedSource(new.source, None, run_id or model.source_run_id, model_id)
        if kind.kind != "remote":
            raise refuse(new.source, "The model_id request parameter must identify the resource that contains "
                                     "the source.")
        return ResolvedSource(new.source, None, run_id or model.source_run_id, model_id)
    if kind.kind == "models_id":
        raise refuse(new.source, "The model_id request parameter must identify the resource that contains "
                                 "the source.")
    if kind.kind == "runs":
        if run_id and kind.run_id == run_id:
            artifact_uri = _run_artifact_uri(conn, run_id, new.source)
            location = "/".join([artifact_uri.rstrip("/"), *kind.parts])
            return ResolvedSource(new.source, location, run_id, None)
        raise refuse(new.source, "The run_id request parameter must identify the resource that contains "
                                 "the source.")
    if kind.kind == "proxied":
        if run_id and _inside(new.source, kind, _run_artifact_uri(conn, run_id, new.source)):
            return ResolvedSource(new.source, None, run_id, None)
        raise refuse(new.source, "The run_id request parameter must identify the resource that contains "
                                 "the source.")
    return ResolvedSource(new.source, None, run_id, None)


def create_model_version(conn: Connection, new: NewVersion, *, workspace: str) -> dict[str, Any]:
    """Register a new version (numbered per model) of an existing registered model of ``workspace``."""
    validate_model_name(new.name)
    tags = dict(new.tags or {})
    for key, value in tags.items():
        validate_tag_key(key)
        validate_tag_value(value)
    validate_text(new.description, "description", MAX_DESCRIPTION_LENGTH)
    validate_text(new.run_link, "run_link", MAX_RUN_LINK_LENGTH)
    validate_text(new.source, "source", MAX_SOURCE_LENGTH)
    if new.run_id and (not set(new.run_id) <= _RUN_ID_CHARS or len(new.run_id) > 32):
        raise invalid_parameter(f"Invalid run_id {new.run_id[:64]!r}.")
    when = now_ms()
    # Write first: the UPDATE takes the model's row lock on PostgreSQL (concurrent creations number in
    # turn) and SQLite's write lock before anything is read, so no reader snapshot goes stale.
    touch_model(conn, new.name, when, workspace=workspace)
    prompt_model = is_prompt_model(conn, new.name, workspace=workspace)
    if is_prompt_tags(tags):
        if not prompt_model:
            raise invalid_parameter(f"Registered model {new.name!r} is not a prompt; prompt versions can only "
                                    "be added to prompts.")
        if new.source not in PROMPT_SOURCE_PLACEHOLDERS:
            raise invalid_parameter(f"Invalid prompt source: {new.source[:200]!r}. Prompt sources must use an "
                                    "MLflow placeholder.")
        resolved = ResolvedSource(new.source, None, new.run_id or None, new.model_id or None)
    else:
        if prompt_model:
            raise invalid_parameter(f"{new.name!r} is a prompt; model versions cannot be added to it.")
        resolved = resolve_source(conn, new, workspace=workspace)
    highest = conn.execute(select(func.max(model_versions.c.version))
                           .where(of_model(model_versions, workspace, new.name))).scalar()
    number = (highest or 0) + 1
    conn.execute(model_versions.insert().values(
        workspace=workspace, name=new.name, version=number, creation_time=when, last_updated_time=when,
        description=new.description, current_stage=STAGE_NONE, source=resolved.source,
        storage_location=resolved.storage_location, run_id=resolved.run_id, run_link=new.run_link,
        status="READY", model_id=resolved.model_id,
    ))
    if tags:
        conn.execute(model_version_tags.insert(),
                     [{"workspace": workspace, "name": new.name, "version": number, "key": k, "value": v}
                      for k, v in tags.items()])
    if resolved.model_id and not prompt_model:
        _record_on_logged_model(conn, resolved.model_id, new.name, number)
    return version_json(conn, require_version_row(conn, new.name, number, workspace=workspace))


def _record_on_logged_model(conn: Connection, model_id: str, name: str, version: int) -> None:
    # MLflow lists a logged model's registered versions in its ``mlflow.modelVersions`` tag (JSON);
    # the UI reads it to link a logged model to its registry entries.
    current = conn.execute(select(logged_model_tags.c.tag_value).where(
        logged_model_tags.c.model_id == model_id, logged_model_tags.c.tag_key == MODEL_VERSIONS_TAG)).scalar()
    try:
        entries = json.loads(current) if current else []
    except ValueError:
        entries = []
    if not isinstance(entries, list):
        entries = []
    entry = {"name": name, "version": str(version)}
    if entry not in entries:
        entries.append(entry)
    set_logged_model_tags(conn, model_id, [{"key": MODEL_VERSIONS_TAG, "value": json.dumps(entries)}])


def update_model_version(conn: Connection, name: str, version: str, description: str | None, *,
                         workspace: str) -> dict[str, Any]:
    """Replace a version's description."""
    validate_text(description, "description", MAX_DESCRIPTION_LENGTH)
    number = validate_version(version)
    require_version_row(conn, name, number, workspace=workspace)
    conn.execute(update(model_versions).where(of_model(model_versions, workspace, name),
                                              model_versions.c.version == number)
                 .values(description=description, last_updated_time=now_ms()))
    return version_json(conn, require_version_row(conn, name, number, workspace=workspace))


def delete_model_version(conn: Connection, name: str, version: str, *, workspace: str) -> None:
    """Delete a version: its aliases and tags go, a redacted row keeps the number from being reused."""
    number = validate_version(version)
    require_version_row(conn, name, number, workspace=workspace)
    when = now_ms()
    touch_model(conn, name, when, workspace=workspace)
    conn.execute(delete(registered_model_aliases).where(of_model(registered_model_aliases, workspace, name),
                                                         registered_model_aliases.c.version == number))
    conn.execute(delete(model_version_tags).where(of_model(model_version_tags, workspace, name),
                                                   model_version_tags.c.version == number))
    conn.execute(update(model_versions).where(of_model(model_versions, workspace, name),
                                              model_versions.c.version == number)
                 .values(current_stage=STAGE_DELETED, last_updated_time=when, description=None, user_id=None,
                         source="REDACTED-SOURCE-PATH", storage_location=None, run_id="REDACTED-RUN-ID",
                         run_link="REDACTED-RUN-LINK", status_message=None, model_id=None))


def set_model_version_tag(conn: Connection, name: str, version: str, key: str, value: str | None, *,
                          workspace: str) -> None:
    """Create or replace one tag of a version."""
    validate_model_name(name)
    number = validate_version(version)
    validate_tag_key(key)
    value = validate_tag_value(value)
    require_version_row(conn, name, number, workspace=workspace)
    stmt = dialect_insert(conn, model_version_tags).values(workspace=workspace, name=name, version=number, key=key,
                                                           value=value)
    conn.execute(stmt.on_conflict_do_update(index_elements=["workspace", "name", "version", "key"],
                                            set_={"value": value}))


def delete_model_version_tag(conn: Connection, name: str, version: str, key: str, *, workspace: str) -> None:
    """Delete one tag of a version (absent tags are fine, as in MLflow)."""
    validate_model_name(name)
    number = validate_version(version)
    validate_tag_key(key)
    require_version_row(conn, name, number, workspace=workspace)
    conn.execute(delete(model_version_tags).where(of_model(model_version_tags, workspace, name),
                                                   model_version_tags.c.version == number,
                                                   model_version_tags.c.key == key))


def transition_stage(conn: Connection, name: str, version: str, stage: str,
                     archive_existing_versions: bool, *, workspace: str) -> dict[str, Any]:
    """Move a version to a stage, optionally archiving the other versions in that stage."""
    number = validate_version(version)
    target = canonical_stage(stage)
    if archive_existing_versions and target not in ACTIVE_STAGES:
        raise MlflowError(
            "Model version transition cannot archive existing model versions because "
            f"'{stage}' is not an Active stage. Valid stages are {list(ACTIVE_STAGES)}"
        )
    require_version_row(conn, name, number, workspace=workspace)
    when = now_ms()
    touch_model(conn, name, when, workspace=workspace)
    if archive_existing_versions:
        conn.execute(update(model_versions).where(
            of_model(model_versions, workspace, name), model_versions.c.version != number,
            model_versions.c.current_stage == target).values(current_stage=STAGE_ARCHIVED, last_updated_time=when))
    conn.execute(update(model_versions).where(of_model(model_versions, workspace, name),
                                              model_versions.c.version == number)
                 .values(current_stage=target, last_updated_time=when))
    return version_json(conn, require_version_row(conn, name, number, workspace=workspace))


def download_uri(conn: Connection, name: str, version: str, *, workspace: str) -> str:
    """Where a version's artifacts can be downloaded from (its storage location, else its source)."""
    row = require_version_row(conn, name, validate_version(version), workspace=workspace)
    return row.storage_location or row.source
