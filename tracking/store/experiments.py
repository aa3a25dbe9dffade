"""Experiments: create, read, rename, soft delete/restore, tags, and bulk JSON loading."""

from __future__ import annotations

import posixpath
import re
import time
from collections import defaultdict
from collections.abc import Iterable
from urllib.parse import urlsplit

from sqlalchemy import Connection, Row, bindparam, delete, insert, select, update

from tracking.artifacts.paths import WORKSPACES_SEGMENT
from tracking.db.tables import experiment_tags, experiments, runs
from tracking.errors import MlflowError, invalid_parameter, not_found
from tracking.scope import DEFAULT_WORKSPACE
from tracking.store.upsert import dialect_insert
from tracking.store.validation import (
    MAX_ARTIFACT_LOCATION_LENGTH,
    validate_experiment_name,
    validate_experiment_tag,
)

ACTIVE = "active"
DELETED = "deleted"
ARTIFACT_SCHEME = "mlflow-artifacts"
# Bound the number of bound parameters per IN (...) list; SQLite and drivers have limits.
CHUNK = 500
_SAFE_SEGMENT = re.compile(r"^[A-Za-z0-9_.\-]+\Z")
_EXPERIMENT_ID = re.compile(r"^[0-9]{1,18}\Z")


def now_ms() -> int:
    """The current time in milliseconds since the epoch, as MLflow stores times."""
    return int(time.time() * 1000)


def parse_experiment_id(value: object, path: str = "experiment_id") -> int:
    """An experiment id as the integer the table stores; anything else is a 400."""
    text = value if isinstance(value, str) else None
    # ASCII digits only: str.isdigit() also accepts characters such as "²" that int() refuses.
    if text is None or not _EXPERIMENT_ID.match(text):
        shown = str(value)[:100]
        raise invalid_parameter(
            f"Invalid experiment ID '{shown}' for parameter '{path}'. Experiment ID must be a valid integer.")
    return int(text)


def default_artifact_location(experiment_id: int, workspace: str = DEFAULT_WORKSPACE) -> str:
    """Where an experiment's artifacts live unless the client chose a location: ``<id>`` in 'default' (where
    they always were), ``workspaces/<workspace>/<id>`` in any other workspace."""
    if workspace == DEFAULT_WORKSPACE:
        return f"{ARTIFACT_SCHEME}:/{experiment_id}"
    return f"{ARTIFACT_SCHEME}:/{WORKSPACES_SEGMENT}/{workspace}/{experiment_id}"


def served_root(row: Row) -> str:
    """Where the server keeps an experiment's run artifacts: its workspace's prefixed default location when
    it has that one, else ``<id>`` (as before workspaces, whatever location a client chose)."""
    prefixed = default_artifact_location(row.experiment_id, row.workspace)
    return prefixed if row.artifact_location == prefixed else default_artifact_location(row.experiment_id)


def check_artifact_location(location: str) -> str:
    """Accept only ``mlflow-artifacts:`` URIs with a safe relative path under the served artifact root.

    A client must never make the server read or write an arbitrary local directory or another
    store, so file paths, other schemes, hosts, ``..`` segments and escapes are refused. A first
    segment made only of digits is reserved for the default locations of experiments (``<id>``),
    so one experiment cannot claim another one's artifact directory.
    """
    def refuse(reason: str) -> MlflowError:
        return invalid_parameter(f"Invalid artifact_location '{location[:200]}': {reason}")

    if len(location) > MAX_ARTIFACT_LOCATION_LENGTH:
        raise invalid_parameter(
            f"'artifact_location' exceeds the maximum length of {MAX_ARTIFACT_LOCATION_LENGTH} characters")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F or ch in "\\%?#" for ch in location):
        raise refuse("control characters, backslashes, '%', '?' and '#' are not allowed.")
    parts = urlsplit(location)
    if parts.scheme != ARTIFACT_SCHEME:
        raise refuse(f"only '{ARTIFACT_SCHEME}:' URIs served by this server are accepted.")
    if parts.netloc:
        raise refuse("a host is not allowed; use 'mlflow-artifacts:/<relative path>'.")
    segments = [s for s in parts.path.split("/") if s]
    if not segments:
        raise refuse("the path is empty.")
    for segment in segments:
        if segment in (".", "..") or not _SAFE_SEGMENT.match(segment):
            raise refuse("path segments may only contain letters, digits, '_', '-' and '.', "
                         "and must not be '.' or '..'.")
    if segments[0].isdigit() or segments[0] == WORKSPACES_SEGMENT:
        raise refuse(f"paths starting with a number or '{WORKSPACES_SEGMENT}' are reserved for experiments' "
                     "default locations.")
    return f"{ARTIFACT_SCHEME}:/{posixpath.join(*segments)}"


def _experiment_json(row: Row, tags: list[dict]) -> dict:
    return {
        "experiment_id": str(row.experiment_id),
        "name": row.name,
        "artifact_location": row.artifact_location,
        "lifecycle_stage": row.lifecycle_stage,
        "last_update_time": row.last_update_time,
        "creation_time": row.creation_time,
        "tags": tags,
    }


_IDS = bindparam("ids", expanding=True)
_EXPERIMENTS_BY_ID = select(experiments).where(experiments.c.experiment_id.in_(_IDS))
_TAGS_BY_EXPERIMENT = (select(experiment_tags.c.experiment_id, experiment_tags.c.key, experiment_tags.c.value)
                       .where(experiment_tags.c.experiment_id.in_(_IDS))
                       .order_by(experiment_tags.c.experiment_id, experiment_tags.c.key))


def experiments_to_json(conn: Connection, experiment_ids: Iterable[str | int]) -> list[dict]:
    """MLflow's Experiment JSON for each existing id, in the given order (two queries per 500 ids)."""
    ids: list[int] = []
    for value in experiment_ids:
        ids.append(value if isinstance(value, int) else parse_experiment_id(str(value)))
    unique = list(dict.fromkeys(ids))
    rows: dict[int, Row] = {}
    tags: dict[int, list[dict]] = defaultdict(list)
    for start in range(0, len(unique), CHUNK):
        bind = {"ids": unique[start:start + CHUNK]}
        for row in conn.execute(_EXPERIMENTS_BY_ID, bind).all():
            rows[row.experiment_id] = row
        for experiment_id, key, value in conn.execute(_TAGS_BY_EXPERIMENT, bind).all():
            tags[experiment_id].append({"key": key, "value": value})
    return [_experiment_json(rows[i], tags[i]) for i in ids if i in rows]


def get_experiment_row(conn: Connection, experiment_id: int) -> Row:
    """The experiment's row (active or deleted), or 404."""
    row = conn.execute(select(experiments).where(experiments.c.experiment_id == experiment_id)).first()
    if row is None:
        raise not_found(f"No Experiment with id={experiment_id} exists")
    return row


def get_experiment(conn: Connection, experiment_id: int) -> dict:
    """The experiment's JSON, or 404."""
    get_experiment_row(conn, experiment_id)
    return experiments_to_json(conn, [experiment_id])[0]


def experiment_workspace(conn: Connection, experiment_id: str | int) -> str | None:
    """The workspace of experiment ``experiment_id`` (None when there is no such experiment)."""
    text = str(experiment_id)
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        return None
    return conn.execute(select(experiments.c.workspace).where(experiments.c.experiment_id == int(text))).scalar()


def get_experiment_by_name(conn: Connection, name: str, workspace: str = DEFAULT_WORKSPACE) -> dict:
    """The experiment (active or deleted) of ``workspace`` with this exact name, or 404."""
    row = conn.execute(select(experiments.c.experiment_id)
                       .where(experiments.c.name == name, experiments.c.workspace == workspace)).first()
    if row is None:
        raise not_found(f"Could not find experiment with name '{name}'")
    return experiments_to_json(conn, [row.experiment_id])[0]


def check_experiment_active(row: Row) -> None:
    """Refuse changes inside a deleted experiment, with MLflow's code and message."""
    if row.lifecycle_stage != ACTIVE:
        raise invalid_parameter(
            f"The experiment {row.experiment_id} must be in the 'active' state. "
            f"Current state is {row.lifecycle_stage}.")


def _name_taken(conn: Connection, name: str, workspace: str) -> bool:
    return conn.execute(select(experiments.c.experiment_id)
                        .where(experiments.c.name == name, experiments.c.workspace == workspace)).first() is not None


def already_exists_error(name: str) -> MlflowError:
    """MLflow's error for a name held by another experiment (deleted ones keep their names)."""
    return MlflowError(f"Experiment(name={name}) already exists.", "RESOURCE_ALREADY_EXISTS")


def create_experiment(conn: Connection, name: str, artifact_location: str | None,
                      tags: list[tuple[str, str]], workspace: str = DEFAULT_WORKSPACE) -> str:
    """Create an active experiment in ``workspace`` and return its id; the caller's transaction maps races to 400.

    Names are unique per workspace (migration 0011): another workspace's experiment of this name is no
    obstacle and is never mentioned.
    """
    validate_experiment_name(name)
    location = check_artifact_location(artifact_location) if artifact_location else None
    for key, value in tags:
        validate_experiment_tag(key, value)
    if _name_taken(conn, name, workspace):
        raise already_exists_error(name)
    created = now_ms()
    experiment_id = conn.execute(
        insert(experiments).values(name=name, artifact_location=location or "", lifecycle_stage=ACTIVE,
                                   creation_time=created, last_update_time=created, workspace=workspace)
        .returning(experiments.c.experiment_id)).scalar_one()
    if location is None:
        conn.execute(update(experiments).where(experiments.c.experiment_id == experiment_id)
                     .values(artifact_location=default_artifact_location(experiment_id, workspace)))
    # The last value wins for a key given twice, as when MLflow sets tags one by one.
    unique_tags = dict(tags)
    if unique_tags:
        conn.execute(insert(experiment_tags), [
            {"experiment_id": experiment_id, "key": k, "value": v} for k, v in unique_tags.items()])
    return str(experiment_id)


def rename_experiment(conn: Connection, experiment_id: int, new_name: str) -> None:
    """Rename an active experiment; the new name must be free in its workspace."""
    validate_experiment_name(new_name, "new_name")
    row = get_experiment_row(conn, experiment_id)
    if row.lifecycle_stage != ACTIVE:
        raise MlflowError("Cannot rename a non-active experiment.", "INVALID_STATE")
    if new_name == row.name:
        return
    if _name_taken(conn, new_name, row.workspace):
        raise already_exists_error(new_name)
    conn.execute(update(experiments).where(experiments.c.experiment_id == experiment_id)
                 .values(name=new_name, last_update_time=now_ms()))


def delete_experiment(conn: Connection, experiment_id: int) -> None:
    """Soft-delete an active experiment and every run in it, as MLflow does."""
    row = get_experiment_row(conn, experiment_id)
    if row.lifecycle_stage != ACTIVE:
        raise not_found(f"No Experiment with id={experiment_id} exists")
    now = now_ms()
    conn.execute(update(experiments).where(experiments.c.experiment_id == experiment_id)
                 .values(lifecycle_stage=DELETED, last_update_time=now))
    conn.execute(update(runs).where(runs.c.experiment_id == experiment_id)
                 .values(lifecycle_stage=DELETED, deleted_time=now))


def restore_experiment(conn: Connection, experiment_id: int) -> None:
    """Restore a deleted experiment and every run in it, as MLflow does."""
    row = get_experiment_row(conn, experiment_id)
    if row.lifecycle_stage != DELETED:
        raise not_found(f"No deleted Experiment with id={experiment_id} exists")
    conn.execute(update(experiments).where(experiments.c.experiment_id == experiment_id)
                 .values(lifecycle_stage=ACTIVE, last_update_time=now_ms()))
    conn.execute(update(runs).where(runs.c.experiment_id == experiment_id)
                 .values(lifecycle_stage=ACTIVE, deleted_time=None))


def set_experiment_tag(conn: Connection, experiment_id: int, key: str, value: str) -> None:
    """Set (insert or overwrite) a tag on an active experiment."""
    key, value = validate_experiment_tag(key, value)
    check_experiment_active(get_experiment_row(conn, experiment_id))
    stmt = dialect_insert(conn, experiment_tags).values(experiment_id=experiment_id, key=key, value=value)
    conn.execute(stmt.on_conflict_do_update(index_elements=["experiment_id", "key"], set_={"value": value}))


def delete_experiment_tag(conn: Connection, experiment_id: int, key: str) -> None:
    """Remove a tag from an active experiment; 404 when it has no such tag."""
    check_experiment_active(get_experiment_row(conn, experiment_id))
    result = conn.execute(delete(experiment_tags).where(experiment_tags.c.experiment_id == experiment_id,
                                                        experiment_tags.c.key == key))
    if result.rowcount == 0:
        raise not_found(f"No tag with name: {key} in experiment with id {experiment_id}")
