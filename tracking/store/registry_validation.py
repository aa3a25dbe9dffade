"""Input rules of the model registry (names, versions, tags, aliases, stages), as MLflow enforces them."""

from __future__ import annotations

import json
import posixpath
import re

from tracking.errors import invalid_parameter

MAX_NAME_LENGTH = 256
MAX_TAG_KEY_LENGTH = 250
MAX_TAG_VALUE_LENGTH = 100_000
MAX_ALIAS_LENGTH = 255
MAX_DESCRIPTION_LENGTH = 100_000
MAX_SOURCE_LENGTH = 5_000
MAX_RUN_LINK_LENGTH = 5_000
MAX_TAGS_PER_REQUEST = 1_000

IS_PROMPT_TAG_KEY = "mlflow.prompt.is_prompt"
# The CreateModelVersion API requires a source; prompt versions carry one of these placeholders.
PROMPT_SOURCE_PLACEHOLDERS = frozenset({"dummy-source", "prompt-template"})

STAGE_NONE = "None"
STAGE_STAGING = "Staging"
STAGE_PRODUCTION = "Production"
STAGE_ARCHIVED = "Archived"
STAGE_DELETED = "Deleted_Internal"
ALL_STAGES = (STAGE_NONE, STAGE_STAGING, STAGE_PRODUCTION, STAGE_ARCHIVED)
ACTIVE_STAGES = (STAGE_STAGING, STAGE_PRODUCTION)
_CANONICAL_STAGE = {stage.lower(): stage for stage in ALL_STAGES}

_TAG_KEY = re.compile(r"^[/\w.\- :]*$")
_ALIAS = re.compile(r"^[\w\-]*$")
_VERSION_ALIAS = re.compile(r"^[vV]\d+$")
_MAX_VERSION = 2**31 - 1


def _shown(value: str) -> str:
    return json.dumps(value if len(value) <= 100 else value[:100] + "...")


def _resolves_elsewhere(name: str) -> bool:
    # MLflow treats names as file paths in places; a name must not normalise to a different one.
    norm = posixpath.normpath(name)
    return norm != name or norm == "." or norm.startswith("..") or norm.startswith("/")


def _has_control_character(value: str) -> bool:
    return any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value)


def validate_model_name(name: str | None, field: str = "name") -> str:
    """A registered model name: non-blank, no '/' or ':', no path tricks, bounded length."""
    if name is None or name.strip() == "":
        raise invalid_parameter(f"Missing value for required parameter '{field}'.")
    if "/" in name or ":" in name:
        raise invalid_parameter(f"Invalid model name {_shown(name)}. Names cannot contain '/' or ':'.")
    if _has_control_character(name):
        raise invalid_parameter(f"Invalid model name {_shown(name)}. Names cannot contain control characters.")
    if _resolves_elsewhere(name):
        raise invalid_parameter(
            f"Invalid value {_shown(name)} for parameter '{field}' supplied: Names may be treated as files "
            f"in certain cases, and must not resolve to other names when treated as such. This name would "
            f"resolve to {posixpath.normpath(name)!r}"
        )
    if len(name) > MAX_NAME_LENGTH:
        raise invalid_parameter(f"'{field}' exceeds the maximum length of {MAX_NAME_LENGTH} characters")
    return name


def validate_version(version: str | int | None) -> int:
    """A model version number given as a string or an integer."""
    if version is None or (isinstance(version, str) and version.strip() == ""):
        raise invalid_parameter("Missing value for required parameter 'version'.")
    try:
        number = int(str(version).strip())
    except ValueError:
        raise invalid_parameter(f"Parameter 'version' must be an integer, got {_shown(str(version))}.") from None
    if not 0 < number <= _MAX_VERSION:
        raise invalid_parameter(f"Parameter 'version' must be a positive integer, got {number}.")
    return number


def validate_tag_key(key: str | None) -> str:
    """A tag key: MLflow's character set, no path tricks, at most 250 characters."""
    if key is None or key == "":
        raise invalid_parameter("Missing value for required parameter 'key'.")
    if not _TAG_KEY.match(key):
        raise invalid_parameter(
            f"Invalid value {_shown(key)} for parameter 'key' supplied: Names may only contain "
            "alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ), colon(:) and slashes (/)."
        )
    if _resolves_elsewhere(key):
        raise invalid_parameter(
            f"Invalid value {_shown(key)} for parameter 'key' supplied: Names may be treated as files in "
            f"certain cases, and must not resolve to other names when treated as such. This name would "
            f"resolve to {posixpath.normpath(key)!r}"
        )
    if len(key) > MAX_TAG_KEY_LENGTH:
        raise invalid_parameter(f"'key' exceeds the maximum length of {MAX_TAG_KEY_LENGTH} characters")
    return key


def validate_tag_value(value: str | None) -> str:
    """A tag value: a string of at most 100,000 characters (empty allowed)."""
    if value is None:
        return ""
    if len(value) > MAX_TAG_VALUE_LENGTH:
        raise invalid_parameter(f"'value' exceeds the maximum length of {MAX_TAG_VALUE_LENGTH} characters")
    return value


def validate_tags(raw_tags: list[dict]) -> dict[str, str]:
    """A request's ``tags`` list of ``{key, value}`` objects; a repeated key keeps its last value."""
    if len(raw_tags) > MAX_TAGS_PER_REQUEST:
        raise invalid_parameter(f"A request may set at most {MAX_TAGS_PER_REQUEST} tags.")
    tags: dict[str, str] = {}
    for tag in raw_tags:
        key, value = tag.get("key"), tag.get("value")
        if not isinstance(key, str) or (value is not None and not isinstance(value, str)):
            raise invalid_parameter("Each tag must be an object with a string 'key' and a string 'value'.")
        tags[validate_tag_key(key)] = validate_tag_value(value)
    return tags


def validate_alias(alias: str | None, *, for_write: bool = False) -> str:
    """An alias: alphanumerics, '_' and '-', at most 255 characters; 'latest' and 'v<n>' cannot be set."""
    if alias is None or alias == "":
        raise invalid_parameter("Registered model alias name cannot be empty.")
    if not _ALIAS.match(alias):
        raise invalid_parameter(
            f"Invalid alias name: {_shown(alias)}. Names may only contain alphanumerics, underscores (_), "
            "and dashes (-)."
        )
    if len(alias) > MAX_ALIAS_LENGTH:
        raise invalid_parameter(
            f"'Registered model alias name' exceeds the maximum length of {MAX_ALIAS_LENGTH} characters"
        )
    if for_write and alias.lower() == "latest":
        raise invalid_parameter("'latest' alias name (case insensitive) is reserved.")
    if for_write and _VERSION_ALIAS.match(alias):
        raise invalid_parameter(f"Version alias name '{alias}' is reserved.")
    return alias


def canonical_stage(stage: str) -> str:
    """The canonical spelling of a stage name (case-insensitive), else 400."""
    canonical = _CANONICAL_STAGE.get(stage.lower())
    if canonical is None:
        raise invalid_parameter(
            f"Invalid Model Version stage: {_shown(stage)}. Value must be one of {', '.join(ALL_STAGES)}."
        )
    return canonical


def validate_text(value: str | None, field: str, limit: int) -> str | None:
    """A free-text field bounded in length."""
    if value is not None and len(value) > limit:
        raise invalid_parameter(f"'{field}' exceeds the maximum length of {limit} characters")
    return value


def is_prompt_tags(tags: dict[str, str]) -> bool:
    """Whether a tag set marks a prompt (MLflow compares the tag value case-insensitively to 'true')."""
    return tags.get(IS_PROMPT_TAG_KEY, "false").lower() == "true"
