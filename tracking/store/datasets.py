"""Run inputs and outputs: datasets (with input tags), logged-model inputs and logged-model outputs.

Links live in the ``inputs`` table as MLflow stores them: a dataset input is DATASET -> RUN, a model
input is RUN_INPUT(run) -> MODEL_INPUT(model), a model output is RUN_OUTPUT(run) -> MODEL_OUTPUT(model).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, insert, or_, select

from tracking.db.by_ids import by_ids
from tracking.db.tables import datasets, input_tags, inputs
from tracking.errors import invalid_parameter
from tracking.store.upsert import dialect_insert, insert_ignoring_conflicts
from tracking.store.validation import (
    MAX_DATASET_DIGEST_SIZE,
    MAX_DATASET_NAME_SIZE,
    MAX_DATASET_PROFILE_SIZE,
    MAX_DATASET_SCHEMA_SIZE,
    MAX_DATASET_SOURCE_SIZE,
    MAX_DATASET_SOURCE_TYPE_SIZE,
    MAX_DATASETS_PER_BATCH,
    MAX_INPUT_TAG_KEY_SIZE,
    MAX_INPUT_TAG_VALUE_SIZE,
    MAX_MODEL_ID_LENGTH,
    check_length,
)

CHUNK = 500


@dataclass(frozen=True)
class DatasetInput:
    """One dataset logged as a run input, with its input tags (e.g. ``mlflow.data.context``)."""

    name: str
    digest: str
    source_type: str
    source: str
    schema: str | None
    profile: str | None
    tags: tuple[tuple[str, str], ...]


def _string(obj: dict[str, Any], field: str, path: str, *, required: bool, limit: int) -> str | None:
    value = obj.get(field)
    if value is None:
        if required:
            raise invalid_parameter(f"Missing value for required parameter '{path}.{field}'.")
        return None
    if not isinstance(value, str):
        raise invalid_parameter(f"Invalid value for parameter '{path}.{field}' supplied: expected a string.")
    check_length(f"{path}.{field}", value, limit)
    return value


def parse_dataset_inputs(raw: list[dict[str, Any]]) -> list[DatasetInput]:
    """Validate the ``datasets`` field of log-inputs with MLflow's size limits."""
    if len(raw) > MAX_DATASETS_PER_BATCH:
        raise invalid_parameter(f"A log-inputs request can contain at most {MAX_DATASETS_PER_BATCH} datasets.")
    parsed = []
    for i, item in enumerate(raw):
        path = f"datasets[{i}]"
        dataset = item.get("dataset")
        if not isinstance(dataset, dict):
            raise invalid_parameter(f"Missing value for required parameter '{path}.dataset'.")
        dpath = f"{path}.dataset"
        tags_raw = item.get("tags") or []
        if not isinstance(tags_raw, list) or not all(isinstance(t, dict) for t in tags_raw):
            raise invalid_parameter(f"Invalid value for parameter '{path}.tags' supplied: expected a list of objects.")
        tags = []
        for j, tag in enumerate(tags_raw):
            key = _string(tag, "key", f"{path}.tags[{j}]", required=True, limit=MAX_INPUT_TAG_KEY_SIZE)
            value = _string(tag, "value", f"{path}.tags[{j}]", required=True, limit=MAX_INPUT_TAG_VALUE_SIZE)
            tags.append((key, value))
        parsed.append(DatasetInput(
            name=_string(dataset, "name", dpath, required=True, limit=MAX_DATASET_NAME_SIZE),
            digest=_string(dataset, "digest", dpath, required=True, limit=MAX_DATASET_DIGEST_SIZE),
            source_type=_string(dataset, "source_type", dpath, required=True, limit=MAX_DATASET_SOURCE_TYPE_SIZE),
            source=_string(dataset, "source", dpath, required=True, limit=MAX_DATASET_SOURCE_SIZE),
            schema=_string(dataset, "schema", dpath, required=False, limit=MAX_DATASET_SCHEMA_SIZE),
            profile=_string(dataset, "profile", dpath, required=False, limit=MAX_DATASET_PROFILE_SIZE),
            tags=tuple(dict(tags).items()),
        ))
    return parsed


def parse_model_ids(raw: list[dict[str, Any]], path: str) -> list[str]:
    """The ``model_id`` of each entry of a ``models`` list."""
    ids = []
    for i, item in enumerate(raw):
        model_id = _string(item, "model_id", f"{path}[{i}]", required=True, limit=MAX_MODEL_ID_LENGTH)
        if not model_id:
            raise invalid_parameter(f"Missing value for required parameter '{path}[{i}].model_id'.")
        ids.append(model_id)
    return ids


def parse_model_outputs(raw: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """``(model_id, step)`` for each entry of log-outputs' ``models``."""
    ids = parse_model_ids(raw, "models")
    out = []
    for i, (model_id, item) in enumerate(zip(ids, raw, strict=True)):
        step = item.get("step", 0)
        if isinstance(step, str) and step.isascii() and step.lstrip("-").isdigit():
            step = int(step)
        if isinstance(step, bool) or not isinstance(step, int) or not -(2**63) <= step < 2**63:
            raise invalid_parameter(f"Invalid value for parameter 'models[{i}].step' supplied: expected an integer.")
        out.append((model_id, step))
    return out


def log_inputs(conn: Connection, run: Row, dataset_inputs: list[DatasetInput], model_ids: list[str]) -> None:
    """Link datasets (created once per experiment, name and digest) and logged models to a run."""
    run_id = run.run_uuid
    unique: dict[tuple[str, str], DatasetInput] = {}
    for item in dataset_inputs:
        unique.setdefault((item.name, item.digest), item)
    if unique:
        existing = conn.execute(
            select(datasets.c.dataset_uuid, datasets.c.name, datasets.c.digest)
            .where(datasets.c.experiment_id == run.experiment_id,
                   datasets.c.name.in_({k[0] for k in unique}),
                   datasets.c.digest.in_({k[1] for k in unique})))
        uuids = {(r.name, r.digest): r.dataset_uuid for r in existing}
        new_datasets = []
        for key, item in unique.items():
            if key not in uuids:
                uuids[key] = uuid.uuid4().hex
                new_datasets.append({
                    "dataset_uuid": uuids[key], "experiment_id": run.experiment_id, "name": item.name,
                    "digest": item.digest, "source_type": item.source_type, "source": item.source,
                    "schema": item.schema, "profile": item.profile})
        if new_datasets:
            conn.execute(insert(datasets), new_datasets)
        linked = {r.source_id for r in conn.execute(
            select(inputs.c.source_id).where(inputs.c.source_type == "DATASET",
                                             inputs.c.source_id.in_(list(uuids.values())),
                                             inputs.c.destination_type == "RUN",
                                             inputs.c.destination_id == run_id))}
        new_links, new_tags = [], []
        for key, item in unique.items():
            if uuids[key] in linked:
                continue
            input_uuid = uuid.uuid4().hex
            new_links.append({"input_uuid": input_uuid, "source_type": "DATASET", "source_id": uuids[key],
                              "destination_type": "RUN", "destination_id": run_id, "step": None})
            new_tags.extend({"input_uuid": input_uuid, "name": k, "value": v} for k, v in item.tags)
        if new_links:
            conn.execute(insert(inputs), new_links)
        if new_tags:
            conn.execute(insert(input_tags), new_tags)
    insert_ignoring_conflicts(conn, inputs, [
        {"input_uuid": uuid.uuid4().hex, "source_type": "RUN_INPUT", "source_id": run_id,
         "destination_type": "MODEL_INPUT", "destination_id": model_id, "step": None}
        for model_id in dict.fromkeys(model_ids)
    ], ["source_type", "source_id", "destination_type", "destination_id"])


def log_outputs(conn: Connection, run: Row, models: list[tuple[str, int]]) -> None:
    """Record logged models as outputs of a run (logging one again updates its step)."""
    rows = [{"input_uuid": uuid.uuid4().hex, "source_type": "RUN_OUTPUT", "source_id": run.run_uuid,
             "destination_type": "MODEL_OUTPUT", "destination_id": model_id, "step": step}
            for model_id, step in dict(models).items()]
    if rows:
        stmt = dialect_insert(conn, inputs)
        conn.execute(stmt.on_conflict_do_update(
            index_elements=["source_type", "source_id", "destination_type", "destination_id"],
            set_={"step": stmt.excluded.step}), rows)


_DATASET_INPUTS = by_ids(lambda where: (
    select(inputs.c.input_uuid, inputs.c.destination_id, datasets.c.name, datasets.c.digest, datasets.c.source_type,
           datasets.c.source, datasets.c.schema, datasets.c.profile, input_tags.c.name, input_tags.c.value)
    .select_from(inputs)
    .join(datasets, datasets.c.dataset_uuid == inputs.c.source_id)
    .outerjoin(input_tags, input_tags.c.input_uuid == inputs.c.input_uuid)
    .where(inputs.c.source_type == "DATASET", inputs.c.destination_type == "RUN", where(inputs.c.destination_id))
    .order_by(inputs.c.destination_id, datasets.c.name, datasets.c.digest, input_tags.c.name)))
_MODEL_LINKS = by_ids(lambda where: (
    select(inputs.c.source_type, inputs.c.source_id, inputs.c.destination_id, inputs.c.step)
    .where(or_(inputs.c.source_type == "RUN_INPUT", inputs.c.source_type == "RUN_OUTPUT"), where(inputs.c.source_id))
    .order_by(inputs.c.source_id, inputs.c.destination_id)))


def load_run_io(conn: Connection, run_ids: list[str]) -> tuple[dict, dict, dict]:
    """Per run id: dataset inputs, model inputs and model outputs as MLflow JSON (two queries per chunk)."""
    dataset_inputs: dict[str, dict[str, dict]] = defaultdict(dict)
    model_inputs: dict[str, list[dict]] = defaultdict(list)
    model_outputs: dict[str, list[dict]] = defaultdict(list)
    for start in range(0, len(run_ids), CHUNK):
        ids = run_ids[start:start + CHUNK]
        for input_uuid, run_id, name, digest, source_type, source, schema, profile, tag_key, tag_value in (
                _DATASET_INPUTS.execute(conn, ids)):
            entry = dataset_inputs[run_id].get(input_uuid)
            if entry is None:
                dataset = {"name": name, "digest": digest, "source_type": source_type, "source": source}
                if schema is not None:
                    dataset["schema"] = schema
                if profile is not None:
                    dataset["profile"] = profile
                entry = {"tags": [], "dataset": dataset}
                dataset_inputs[run_id][input_uuid] = entry
            if tag_key is not None:
                entry["tags"].append({"key": tag_key, "value": tag_value})
        for source_type, run_id, model_id, step in _MODEL_LINKS.execute(conn, ids):
            if source_type == "RUN_INPUT":
                model_inputs[run_id].append({"model_id": model_id})
            else:
                model_outputs[run_id].append({"model_id": model_id, "step": step or 0})
    return ({k: list(v.values()) for k, v in dataset_inputs.items()}, model_inputs, model_outputs)
