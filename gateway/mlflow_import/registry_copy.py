"""Copy MLflow's registered models with their tags, versions (stage, source, tags) and aliases.

A model is matched by name and a version by (name, version number), so numbers never shift. A
version's source is kept as MLflow stored it, except that a location inside an imported run's MLflow
artifact directory is rewritten to the run's mlgate location (which differs when the experiment id
changed, or when MLflow stored a local path), so downloads work through mlgate.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlalchemy import Connection, Engine, Table, insert, select

from gateway.mlflow_import.logged_model_copy import ImportedModel
from gateway.mlflow_import.source import in_default_workspace
from gateway.mlflow_import.tally import Tally
from gateway.mlflow_import.tracking_copy import OTHER_WORKSPACE, ImportedRun, merge_rows
from tracking.db.registry_tables import (
    model_version_tags,
    model_versions,
    registered_model_aliases,
    registered_model_tags,
    registered_models,
)
from tracking.scope import DEFAULT_WORKSPACE
from tracking.store.experiments import now_ms
from tracking.store.transaction import write_transaction
from tracking.store.upsert import insert_ignoring_conflicts

# A logged model's artifact location: <experiment location>/models/<model id>/artifacts.
_LOGGED_MODEL_PATH = re.compile(r"/models/([^/]+)/artifacts(?:/|$)")


class SourceTranslator:
    """Maps version sources that point into an imported run's or logged model's MLflow artifacts to their
    mlgate locations.
    """

    def __init__(self, imported_runs: list[ImportedRun], imported_models: dict[str, ImportedModel]):
        self.runs = {run.run_id: run for run in imported_runs}
        self.models = imported_models

    def translate(self, source: str | None, run_id: str | None) -> tuple[str | None, str | None, str | None]:
        """``(source, storage_location, model_id)`` for mlgate."""
        model = self.models.get((source or "").removeprefix("models:/"))
        if model is not None:
            # models:/<id> names a logged model: mlgate downloads it from the model's artifact location.
            return source, model.target_uri, model.model_id
        inside = _LOGGED_MODEL_PATH.search(source or "")
        model = self.models.get(inside.group(1)) if inside else None
        old = model.source_uri.rstrip("/") if model is not None else ""
        if model is not None and source and (source == old or source.startswith(old + "/")):
            return model.target_uri.rstrip("/") + source[len(old):], None, model.model_id
        return (*self._from_run(source, run_id), None)

    def _from_run(self, source: str | None, run_id: str | None) -> tuple[str | None, str | None]:
        run = self.runs.get(run_id or "")
        if source is None or run is None:
            return source, None
        if source.startswith(f"runs:/{run.run_id}/") or source == f"runs:/{run.run_id}":
            inner = source[len(f"runs:/{run.run_id}"):].strip("/")
            return source, "/".join(p for p in (run.target_uri.rstrip("/"), inner) if p)
        old = (run.source_uri or "").rstrip("/")
        if old and (source == old or source.startswith(old + "/")):
            return run.target_uri.rstrip("/") + source[len(old):], None
        return source, None


def _copy_versions(conn: Connection, name: str, versions: list, version_tags: dict, translator: SourceTranslator,
                   tally: Tally) -> None:
    existing = {r[0] for r in conn.execute(select(model_versions.c.version).where(
        model_versions.c.workspace == DEFAULT_WORKSPACE, model_versions.c.name == name))}
    for v in versions:
        if v.version in existing:
            tally.present("model versions")
        else:
            source, storage, model_id = translator.translate(v.source, v.run_id)
            conn.execute(insert(model_versions).values(
                workspace=DEFAULT_WORKSPACE, name=name, version=v.version, creation_time=v.creation_time or now_ms(),
                last_updated_time=v.last_updated_time or v.creation_time or now_ms(), description=v.description,
                user_id=v.user_id, current_stage=v.current_stage or "None", source=source,
                storage_location=storage, run_id=v.run_id, run_link=v.run_link, status=v.status or "READY",
                status_message=v.status_message, model_id=getattr(v, "model_id", None) or model_id))
            tally.imported("model versions")
        merge_rows(conn, model_version_tags, {"workspace": DEFAULT_WORKSPACE, "name": name, "version": v.version},
                   "key", version_tags.get(v.version, []), tally, "version tags")


def _of_default_model(table: Table, name: str) -> list:
    # MLflow 3 with workspaces keys its registry by (workspace, name): the default workspace's model only.
    where = [table.c.name == name]
    if "workspace" in table.c:
        where.append(table.c.workspace == DEFAULT_WORKSPACE)
    return where


def _read_model(conn: Connection, src: dict[str, Table], name: str) -> tuple[list, list, dict, list]:
    mv, mt = src["model_versions"], src.get("registered_model_tags")
    vt, al = src.get("model_version_tags"), src.get("registered_model_aliases")
    versions = conn.execute(select(mv).where(*_of_default_model(mv, name)).order_by(mv.c.version)).all()
    model_tags = [{"key": r.key, "value": r.value}
                  for r in conn.execute(select(mt).where(*_of_default_model(mt, name)))] if mt is not None else []
    version_tags: dict[int, list[dict]] = {}
    if vt is not None:
        for r in conn.execute(select(vt).where(*_of_default_model(vt, name))):
            version_tags.setdefault(r.version, []).append({"key": r.key, "value": r.value})
    aliases = [{"alias": r.alias, "version": r.version}
               for r in conn.execute(select(al).where(*_of_default_model(al, name)))] if al is not None else []
    return versions, model_tags, version_tags, aliases


def copy_registry(src: dict[str, Table], source: Engine, target: Engine, imported_runs: list[ImportedRun],
                  imported_models: dict[str, ImportedModel], tally: Tally, advance: Callable[[int], None]) -> None:
    """Copy every registered model of MLflow's default workspace, one transaction per model."""
    if "registered_models" not in src or "model_versions" not in src:
        return
    table = src["registered_models"]
    translator = SourceTranslator(imported_runs, imported_models)
    with source.connect() as conn:
        models = conn.execute(select(table).order_by(table.c.name)).all()
    for model in models:
        advance(1)
        if not in_default_workspace(table, model):
            tally.skipped("registered models", OTHER_WORKSPACE)
            continue
        with source.connect() as conn:
            versions, model_tags, version_tags, aliases = _read_model(conn, src, model.name)
        with write_transaction(target) as conn:
            found = conn.execute(select(registered_models.c.name)
                                 .where(registered_models.c.workspace == DEFAULT_WORKSPACE,
                                        registered_models.c.name == model.name)).first()
            if found is None:
                created = model.creation_time or now_ms()
                conn.execute(insert(registered_models).values(
                    workspace=DEFAULT_WORKSPACE, name=model.name, creation_time=created,
                    last_updated_time=model.last_updated_time or created,
                    description=model.description))
                tally.imported("registered models")
            else:
                tally.present("registered models")
            owner = {"workspace": DEFAULT_WORKSPACE, "name": model.name}
            merge_rows(conn, registered_model_tags, owner, "key", model_tags, tally, "model tags")
            _copy_versions(conn, model.name, versions, version_tags, translator, tally)
            held = {r[0] for r in conn.execute(select(registered_model_aliases.c.alias)
                                               .where(registered_model_aliases.c.workspace == DEFAULT_WORKSPACE,
                                                      registered_model_aliases.c.name == model.name))}
            new = [{**owner, **a} for a in aliases if a["alias"] not in held]
            insert_ignoring_conflicts(conn, registered_model_aliases, new, ["workspace", "name", "alias"])
            tally.imported("aliases", len(new))
            tally.present("aliases", len(aliases) - len(new))
