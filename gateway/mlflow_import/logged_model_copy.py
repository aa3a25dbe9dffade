"""Copy MLflow 3 logged models (their rows, params, tags and artifacts), keeping their ids.

A logged model is matched by its id. Its artifacts move to mlgate's place for it in the (possibly
renumbered) experiment. Its metrics are not copied: mlgate keeps a model's metrics on the run's metric
rows, which the run import already brought over.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, Table, insert, select

from gateway.mlflow_import.tally import Tally
from gateway.mlflow_import.tracking_copy import merge_rows
from tracking.db.mlflow3_tables import logged_model_params, logged_model_tags, logged_models
from tracking.store.transaction import write_transaction

LOGGED_MODEL_TABLES = ("logged_models", "logged_model_params", "logged_model_tags", "logged_model_metrics")


@dataclass(frozen=True)
class ImportedModel:
    """Where a logged model's artifacts were in MLflow and are in mlgate."""

    model_id: str
    experiment_id: int
    source_uri: str
    target_uri: str


def copy_logged_models(src: dict[str, Table], source: Engine, target: Engine, experiment_ids: dict[int, int],
                       tally: Tally, advance: Callable[[int], None],
                       on_model: Callable[[ImportedModel], None]) -> dict[str, ImportedModel]:
    """Copy every logged model of an imported experiment, one transaction each; ``on_model`` copies artifacts."""
    if "logged_models" not in src:
        return {}
    table, params, tags = src["logged_models"], src.get("logged_model_params"), src.get("logged_model_tags")
    with source.connect() as conn:
        rows = conn.execute(select(table).order_by(table.c.creation_timestamp_ms, table.c.model_id)).all()
        metric_table = src.get("logged_model_metrics")
        if metric_table is not None:
            count = len(conn.execute(select(metric_table.c.model_id)).all())
            if count:
                tally.skipped("metrics", "logged-model metric rows (the run's metric rows are imported)", count)
    done: dict[str, ImportedModel] = {}
    for row in rows:
        advance(1)
        experiment_id = experiment_ids.get(row.experiment_id)
        if experiment_id is None:
            tally.skipped("logged models", "its experiment was not imported")
            continue
        with source.connect() as conn:
            model_params = [{"param_key": r.param_key, "param_value": r.param_value} for r in conn.execute(
                select(params).where(params.c.model_id == row.model_id))] if params is not None else []
            model_tags = [{"tag_key": r.tag_key, "tag_value": r.tag_value} for r in conn.execute(
                select(tags).where(tags.c.model_id == row.model_id))] if tags is not None else []
        target_uri = f"mlflow-artifacts:/{experiment_id}/models/{row.model_id}/artifacts"
        with write_transaction(target) as conn:
            found = conn.execute(select(logged_models.c.experiment_id, logged_models.c.artifact_location)
                                 .where(logged_models.c.model_id == row.model_id)).first()
            if found is not None and found.experiment_id != experiment_id:
                tally.skipped("logged models", "its id is used by a logged model of another mlgate experiment")
                continue
            if found is None:
                conn.execute(insert(logged_models).values(
                    model_id=row.model_id, experiment_id=experiment_id, name=row.name, artifact_location=target_uri,
                    creation_timestamp_ms=row.creation_timestamp_ms,
                    last_updated_timestamp_ms=row.last_updated_timestamp_ms, status=row.status,
                    lifecycle_stage=row.lifecycle_stage or "active", model_type=row.model_type,
                    source_run_id=row.source_run_id, status_message=row.status_message))
                tally.imported("logged models")
            else:
                target_uri = found.artifact_location
                tally.present("logged models")
            owner = {"model_id": row.model_id, "experiment_id": experiment_id}
            merge_rows(conn, logged_model_params, owner, "param_key", model_params, tally, "logged model params",
                       ["model_id", "param_key"])
            merge_rows(conn, logged_model_tags, owner, "tag_key", model_tags, tally, "logged model tags",
                       ["model_id", "tag_key"])
        imported = ImportedModel(row.model_id, experiment_id, row.artifact_location, target_uri)
        on_model(imported)
        done[row.model_id] = imported
    return done
