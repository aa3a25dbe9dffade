"""Registered models and model versions as MLflow's JSON, loaded in bulk (one query per related table)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, and_, func, select, tuple_

from tracking.db.registry_tables import (
    model_version_tags,
    model_versions,
    registered_model_aliases,
    registered_model_tags,
    registered_models,
)
from tracking.store.registry_validation import STAGE_DELETED

_IN_CHUNK = 500  # bound the size of IN lists


def _chunks(items: Sequence, size: int = _IN_CHUNK):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _tags_json(pairs: list[tuple[str, str | None]]) -> list[dict[str, str]]:
    return [{"key": k, "value": v if v is not None else ""} for k, v in pairs]


# A model is (workspace, name): names are unique per workspace only, so rows are always matched on both.
ModelKey = tuple[str, str]


def _model_keys(table) -> Any:
    return tuple_(table.c.workspace, table.c.name)


def aliases_by_version(conn: Connection, models: Sequence[ModelKey]) -> dict[tuple[str, str, int], list[str]]:
    """Alias names per (workspace, model name, version) for the given models."""
    out: dict[tuple[str, str, int], list[str]] = defaultdict(list)
    for chunk in _chunks(sorted(set(models))):
        rows = conn.execute(
            select(registered_model_aliases.c.workspace, registered_model_aliases.c.name,
                   registered_model_aliases.c.alias, registered_model_aliases.c.version)
            .where(_model_keys(registered_model_aliases).in_(chunk))
            .order_by(registered_model_aliases.c.name, registered_model_aliases.c.alias)
        )
        for workspace, name, alias, version in rows:
            out[(workspace, name, version)].append(alias)
    return out


def version_json(row: Any, tags: list[tuple[str, str | None]], aliases: list[str]) -> dict[str, Any]:
    """One model version in MLflow's JSON shape (empty fields omitted as protobuf JSON does)."""
    out: dict[str, Any] = {
        "name": row.name,
        "version": str(row.version),
        "creation_timestamp": row.creation_time,
        "last_updated_timestamp": row.last_updated_time,
        "current_stage": row.current_stage,
    }
    # MLflow's server stores the request's description and run_link as sent, "" when absent, and answers them
    # even when empty, so its clients read "" (never None) for a version created through the API.
    out["description"] = row.description or ""
    for field in ("user_id", "source", "run_id", "status_message", "model_id"):
        value = getattr(row, field)
        if value not in (None, ""):
            out[field] = value
    out["run_link"] = row.run_link or ""
    out["status"] = row.status
    if tags:
        out["tags"] = _tags_json(tags)
    if aliases:
        out["aliases"] = aliases
    return out


def versions_json(conn: Connection, rows: Sequence[Any],
                  aliases: dict[tuple[str, str, int], list[str]] | None = None) -> list[dict[str, Any]]:
    """Model version rows as JSON, with their tags and aliases loaded in two queries (one if given aliases)."""
    if not rows:
        return []
    keys = [(r.workspace, r.name, r.version) for r in rows]
    tags: dict[tuple[str, str, int], list[tuple[str, str | None]]] = defaultdict(list)
    for chunk in _chunks(keys):
        result = conn.execute(
            select(model_version_tags.c.workspace, model_version_tags.c.name, model_version_tags.c.version,
                   model_version_tags.c.key, model_version_tags.c.value)
            .where(tuple_(model_version_tags.c.workspace, model_version_tags.c.name,
                          model_version_tags.c.version).in_(chunk))
            .order_by(model_version_tags.c.key)
        )
        for workspace, name, version, key, value in result:
            tags[(workspace, name, version)].append((key, value))
    if aliases is None:
        aliases = aliases_by_version(conn, [(r.workspace, r.name) for r in rows])
    return [version_json(r, tags[(r.workspace, r.name, r.version)], aliases[(r.workspace, r.name, r.version)])
            for r in rows]


def latest_version_rows(conn: Connection, models: Sequence[ModelKey],
                        stages: Sequence[str] | None = None) -> list[Any]:
    """The highest non-deleted version per (model, stage) for the given models, in one query per chunk."""
    rows: list[Any] = []
    for chunk in _chunks(sorted(set(models))):
        conditions = [_model_keys(model_versions).in_(chunk), model_versions.c.current_stage != STAGE_DELETED]
        if stages is not None:
            conditions.append(model_versions.c.current_stage.in_(list(stages)))
        latest = (
            select(model_versions.c.workspace, model_versions.c.name, model_versions.c.current_stage,
                   func.max(model_versions.c.version).label("version"))
            .where(*conditions)
            .group_by(model_versions.c.workspace, model_versions.c.name, model_versions.c.current_stage)
            .subquery()
        )
        rows.extend(conn.execute(
            select(model_versions)
            .join(latest, and_(model_versions.c.workspace == latest.c.workspace,
                               model_versions.c.name == latest.c.name,
                               model_versions.c.version == latest.c.version))
            .order_by(model_versions.c.name, model_versions.c.version)
        ).all())
    return rows


def registered_models_json(conn: Connection, rows: Sequence[Any]) -> list[dict[str, Any]]:
    """Registered model rows as JSON with tags, aliases and latest versions, loaded in bulk."""
    if not rows:
        return []
    models = [(r.workspace, r.name) for r in rows]
    tags: dict[ModelKey, list[tuple[str, str | None]]] = defaultdict(list)
    for chunk in _chunks(sorted(set(models))):
        result = conn.execute(
            select(registered_model_tags.c.workspace, registered_model_tags.c.name, registered_model_tags.c.key,
                   registered_model_tags.c.value)
            .where(_model_keys(registered_model_tags).in_(chunk))
            .order_by(registered_model_tags.c.key)
        )
        for workspace, name, key, value in result:
            tags[(workspace, name)].append((key, value))
    alias_rows: dict[ModelKey, list[dict[str, str]]] = defaultdict(list)
    aliases = aliases_by_version(conn, models)
    for (workspace, name, version), alias_names in aliases.items():
        alias_rows[(workspace, name)].extend({"alias": a, "version": str(version)} for a in alias_names)
    latest: dict[ModelKey, list[dict[str, Any]]] = defaultdict(list)
    latest_rows = latest_version_rows(conn, models)
    for row, version in zip(latest_rows, versions_json(conn, latest_rows, aliases), strict=True):
        latest[(row.workspace, row.name)].append(version)
    out = []
    for r in rows:
        key = (r.workspace, r.name)
        item: dict[str, Any] = {
            "name": r.name,
            "creation_timestamp": r.creation_time,
            "last_updated_timestamp": r.last_updated_time,
            "description": r.description or "",  # as MLflow's server answers (see version_json)
        }
        if latest[key]:
            item["latest_versions"] = latest[key]
        if tags[key]:
            item["tags"] = _tags_json(tags[key])
        if alias_rows[key]:
            item["aliases"] = sorted(alias_rows[key], key=lambda a: a["alias"])
        out.append(item)
    return out


def registered_model_row(conn: Connection, name: str, *, workspace: str, for_update: bool = False) -> Any | None:
    """The registered model row with this name in ``workspace`` (row-locked on PostgreSQL when ``for_update``)."""
    query = select(registered_models).where(registered_models.c.workspace == workspace,
                                            registered_models.c.name == name)
    if for_update:
        query = query.with_for_update()
    return conn.execute(query).first()
