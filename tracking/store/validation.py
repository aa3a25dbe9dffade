"""MLflow's limits and naming rules for tracking entities (facts from ``mlflow/utils/validation.py``).

Each check raises a 400 ``INVALID_PARAMETER_VALUE`` naming the field and the rule, before anything is
written, so a refused request changes nothing.
"""

from __future__ import annotations

import json
import posixpath
import re

from tracking.errors import invalid_parameter

MAX_ENTITY_KEY_LENGTH = 250
MAX_PARAM_VAL_LENGTH = 6000
MAX_TAG_VAL_LENGTH = 8000
MAX_EXPERIMENT_NAME_LENGTH = 500
MAX_EXPERIMENT_TAG_KEY_LENGTH = 250
MAX_EXPERIMENT_TAG_VAL_LENGTH = 20000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
MAX_ENTITIES_PER_BATCH = 1000
MAX_DATASETS_PER_BATCH = 1000
MAX_DATASET_NAME_SIZE = 500
MAX_DATASET_DIGEST_SIZE = 36
MAX_DATASET_SOURCE_SIZE = 65535
MAX_DATASET_SCHEMA_SIZE = 1048575
MAX_DATASET_PROFILE_SIZE = 16777215
MAX_DATASET_SOURCE_TYPE_SIZE = 36
MAX_INPUT_TAG_KEY_SIZE = 255
MAX_INPUT_TAG_VALUE_SIZE = 500
# Column widths of tables.py: MLflow's database would fail on longer values; mlgate refuses them.
MAX_RUN_NAME_LENGTH = 250
MAX_USER_ID_LENGTH = 256
MAX_ARTIFACT_LOCATION_LENGTH = 1000
MAX_MODEL_ID_LENGTH = 36

# Keys are used as file names by some stores, so MLflow allows only this alphabet (POSIX servers
# also accept ":"), and the name must not normalise to a different path.
# \Z, not $: "$" also matches before a trailing newline.
_KEY_PATTERN = re.compile(r"^[/\w.\- :]*\Z")
_RUN_ID_PATTERN = re.compile(r"^[a-zA-Z0-9][\w\-]{0,255}\Z")


def _shown(value: object) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return text if len(text) <= 200 else text[:200] + "..."


def invalid_value(path: str, value: object, reason: str) -> str:
    """MLflow's wording for a refused field value."""
    return f"Invalid value {_shown(value)} for parameter '{path}' supplied: {reason}"


def validate_key(key: str | None, path: str = "key", length_name: str | None = None) -> str:
    """A metric, param or tag key: MLflow's alphabet, no path tricks, at most 250 characters."""
    if key is None or key == "":
        raise invalid_parameter(f"Missing value for required parameter '{path}'. A key name must be provided.")
    if not isinstance(key, str):
        raise invalid_parameter(invalid_value(path, str(key), "expected a string."))
    if not _KEY_PATTERN.match(key):
        raise invalid_parameter(invalid_value(
            path, key,
            "Names may only contain alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ), "
            "colon(:) and slashes (/)."))
    norm = posixpath.normpath(key)
    if norm != key or norm == "." or norm.startswith("..") or norm.startswith("/"):
        raise invalid_parameter(invalid_value(
            path, key,
            "Names may be treated as files in certain cases, and must not resolve to other names when "
            f"treated as such. This name would resolve to {norm!r}"))
    check_length(length_name or path, key, MAX_ENTITY_KEY_LENGTH)
    return key


def check_length(name: str, value: str | None, limit: int) -> str | None:
    """Refuse a value longer than ``limit`` characters with MLflow's message."""
    if value is not None and len(value) > limit:
        raise invalid_parameter(f"'{name}' exceeds the maximum length of {limit} characters")
    return value


def validate_param(key: str | None, value: str | None, path: str = "") -> tuple[str, str]:
    """A run param: key rules and a value of at most 6000 characters."""
    validate_key(key, _join(path, "key"), None if path else "Param key")
    value = "" if value is None else value
    check_length(_join(path, "value") if path else "Param value", value, MAX_PARAM_VAL_LENGTH)
    return key, value


def validate_run_tag(key: str | None, value: str | None, path: str = "") -> tuple[str, str]:
    """A run tag: key rules and a value of at most 8000 characters."""
    validate_key(key, _join(path, "key"))
    value = "" if value is None else value
    check_length(_join(path, "value"), value, MAX_TAG_VAL_LENGTH)
    return key, value


def validate_experiment_tag(key: str | None, value: str | None) -> tuple[str, str]:
    """An experiment tag: key rules, key at most 250 and value at most 20000 characters."""
    validate_key(key, "key")
    value = "" if value is None else value
    check_length("value", value, MAX_EXPERIMENT_TAG_VAL_LENGTH)
    return key, value


def validate_experiment_name(name: str | None, path: str = "name") -> str:
    """A non-empty experiment name of at most 500 characters."""
    if name is None or name == "":
        raise invalid_parameter(f"Invalid experiment name: '{'' if name is None else name}'")
    check_length(path, name, MAX_EXPERIMENT_NAME_LENGTH)
    return name


def validate_run_id(run_id: str | None, path: str = "run_id") -> str:
    """A run id in MLflow's alphabet (anything else cannot name a run)."""
    if not run_id:
        raise invalid_parameter(f"Missing value for required parameter '{path}'.")
    if not _RUN_ID_PATTERN.match(run_id):
        raise invalid_parameter(f"Invalid value {_shown(run_id)} for parameter '{path}' supplied.")
    return run_id


def validate_batch_limits(n_metrics: int, n_params: int, n_tags: int) -> None:
    """MLflow's per-request limits for log-batch."""
    for name, limit, count in (("metrics", MAX_METRICS_PER_BATCH, n_metrics),
                               ("params", MAX_PARAMS_TAGS_PER_BATCH, n_params),
                               ("tags", MAX_PARAMS_TAGS_PER_BATCH, n_tags),
                               ("metrics, params, and tags", MAX_ENTITIES_PER_BATCH,
                                n_metrics + n_params + n_tags)):
        if count > limit:
            raise invalid_parameter(
                f"A batch logging request can contain at most {limit} {name}. Got {count} {name}. "
                f"Please split up {name} across multiple requests and try again.")


def _join(path: str, field: str) -> str:
    return f"{path}.{field}" if path else field
