"""Who owns a tracking object: the one lookup authorization needs, as one indexed read per question.

A run, trace or logged model belongs to an experiment; a registered model owns itself. The gateway's
resource resolver asks here instead of reading tracking's tables itself, so the tables' layout stays
tracking's business. Knows nothing of identities or permissions.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Connection, and_, select

from tracking.artifacts.paths import ArtifactPath
from tracking.db.mlflow3_tables import logged_models, trace_info
from tracking.db.registry_tables import registered_model_tags, registered_models
from tracking.db.tables import experiment_tags, experiments, runs
from tracking.scope import DEFAULT_WORKSPACE
from tracking.store.experiments import default_artifact_location
from tracking.store.registry_validation import IS_PROMPT_TAG_KEY

# Experiment ids are server-made integers; longer text cannot name one (and would overflow the column).
_MAX_EXPERIMENT_ID_DIGITS = 18


class OwnedBy(StrEnum):
    """What the looked-up value names."""

    EXPERIMENT_ID = "experiment_id"
    EXPERIMENT_NAME = "experiment_name"
    RUN = "run"  # run id -> its experiment
    TRACE = "trace"  # trace (request) id -> its experiment
    LOGGED_MODEL = "logged_model"  # logged model id -> its experiment
    MODEL_NAME = "model_name"  # a registered model's current name -> the model itself


@dataclass(frozen=True)
class Owner:
    """The experiment or registered model that owns a looked-up object.

    ``id`` never changes (an experiment's id, a registered model's stable id); ``name`` is the current one.
    """

    kind: str  # "experiment" or "registered_model"
    id: str
    name: str
    workspace: str
    is_prompt: bool = False  # a registered model that holds a prompt (MLflow's is-prompt tag)


def _experiment_owner(row) -> Owner:
    return Owner("experiment", str(row.experiment_id), row.name, row.workspace)


def owner_of(conn: Connection, owned_by: OwnedBy, value: str, *, workspace: str | None = None) -> Owner | None:
    """The owner of the object ``value`` names (deleted objects included), or None when nothing has that name.

    Experiment and registered model names are unique per workspace: a name is looked up in ``workspace``
    (None: 'default'); a name that only another workspace holds names nothing.
    """
    if not isinstance(value, str) or not value:
        return None
    owner_columns = (experiments.c.experiment_id, experiments.c.name, experiments.c.workspace)
    if owned_by is OwnedBy.EXPERIMENT_ID:
        if not (value.isascii() and value.isdigit()) or len(value) > _MAX_EXPERIMENT_ID_DIGITS:
            return None
        query = select(*owner_columns).where(experiments.c.experiment_id == int(value))
    elif owned_by is OwnedBy.EXPERIMENT_NAME:
        query = select(*owner_columns).where(experiments.c.name == value,
                                             experiments.c.workspace == (workspace or DEFAULT_WORKSPACE))
    elif owned_by is OwnedBy.RUN:
        query = (select(*owner_columns)
                 .select_from(runs.join(experiments, experiments.c.experiment_id == runs.c.experiment_id))
                 .where(runs.c.run_uuid == value))
    elif owned_by is OwnedBy.TRACE:
        query = (select(*owner_columns)
                 .select_from(trace_info.join(experiments, experiments.c.experiment_id == trace_info.c.experiment_id))
                 .where(trace_info.c.request_id == value))
    elif owned_by is OwnedBy.LOGGED_MODEL:
        query = (select(*owner_columns)
                 .select_from(logged_models.join(experiments,
                                                 experiments.c.experiment_id == logged_models.c.experiment_id))
                 .where(logged_models.c.model_id == value))
    elif owned_by is OwnedBy.MODEL_NAME:
        # Whether it is a prompt rides along (one outer join): a token scoped to prompts covers prompts only.
        prompt_tag = registered_model_tags.alias("prompt_tag")
        row = conn.execute(select(registered_models.c.model_id, registered_models.c.workspace,
                                  prompt_tag.c.value.label("prompt"))
                           .select_from(registered_models.outerjoin(
                               prompt_tag, (prompt_tag.c.workspace == registered_models.c.workspace)
                               & (prompt_tag.c.name == registered_models.c.name)
                               & (prompt_tag.c.key == IS_PROMPT_TAG_KEY)))
                           .where(registered_models.c.workspace == (workspace or DEFAULT_WORKSPACE),
                                  registered_models.c.name == value)).first()
        if row is None:
            return None
        return Owner("registered_model", row.model_id, value, row.workspace,
                     is_prompt=(row.prompt or "").lower() == "true")
    else:  # pragma: no cover - every member is handled above
        raise ValueError(f"unknown owner lookup {owned_by!r}")
    row = conn.execute(query).first()
    return None if row is None else _experiment_owner(row)


def tags_of(conn: Connection, kind: str, key: str) -> frozenset[tuple[str, str]]:
    """An experiment's (``kind`` "experiment", ``key`` its id) or registered model's (``key`` its stable id) tags."""
    if kind == "experiment":
        if not (key.isascii() and key.isdigit()) or len(key) > _MAX_EXPERIMENT_ID_DIGITS:
            return frozenset()
        rows = conn.execute(select(experiment_tags.c.key, experiment_tags.c.value)
                            .where(experiment_tags.c.experiment_id == int(key)))
    elif kind == "registered_model":
        rows = conn.execute(select(registered_model_tags.c.key, registered_model_tags.c.value)
                            .select_from(registered_model_tags.join(registered_models, and_(
                                registered_models.c.workspace == registered_model_tags.c.workspace,
                                registered_models.c.name == registered_model_tags.c.name)))
                            .where(registered_models.c.model_id == key))
    else:
        raise ValueError(f"no tags for {kind!r}")
    return frozenset((row.key, row.value or "") for row in rows)


def artifact_path_in_place(conn: Connection, located: ArtifactPath) -> bool:
    """Whether a path names its experiment's artifacts where they live: under ``workspaces/<name>/`` for an
    experiment given that location (the default outside 'default'), unprefixed otherwise. So one experiment's
    files are never written to, or read from, a second place (another workspace's prefix)."""
    experiment_id = located.owner.experiment_id
    if not (experiment_id.isascii() and experiment_id.isdigit()) or len(experiment_id) > _MAX_EXPERIMENT_ID_DIGITS:
        return False
    row = conn.execute(select(experiments.c.workspace, experiments.c.artifact_location)
                       .where(experiments.c.experiment_id == int(experiment_id))).first()
    if row is None:
        return False
    prefixed = row.workspace != DEFAULT_WORKSPACE and row.artifact_location == default_artifact_location(
        int(experiment_id), row.workspace)
    if located.workspace is None:
        return not prefixed
    return prefixed and located.workspace == row.workspace
