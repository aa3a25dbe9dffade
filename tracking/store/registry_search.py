"""Search over registered models and model versions: MLflow's filter grammar compiled to SQL.

The caller's visibility clause is part of the WHERE, so pages stay full and tokens stay valid.
Prompts are registered models carrying ``mlflow.prompt.is_prompt = 'true'``; as in MLflow's server,
a search only returns them when its filter asks for that tag to be true, and never mixes them with
models otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, and_, exists, func, select, true

from tracking.db.registry_tables import (
    model_version_tags,
    model_versions,
    registered_model_tags,
    registered_models,
)
from tracking.errors import invalid_parameter
from tracking.scope import ResourceScope
from tracking.search.filter import KindRule, parse_filter
from tracking.search.order_by import parse_order_by
from tracking.search.page_token import decode_page_token, encode_page_token, fingerprint
from tracking.search.predicates import compare
from tracking.store.registry_json import registered_models_json, versions_json
from tracking.store.registry_validation import IS_PROMPT_TAG_KEY, STAGE_DELETED

REGISTERED_MODELS_DEFAULT_MAX = 100
REGISTERED_MODELS_MAX = 1_000
MODEL_VERSIONS_DEFAULT_MAX = 10_000
MODEL_VERSIONS_MAX = 200_000

_KINDS = {"tag": "tag", "tags": "tag", "attribute": "attribute", "attributes": "attribute"}
_STRING_OPS = frozenset({"=", "!=", "LIKE", "ILIKE"})
_LIST_OPS = frozenset({"IN", "NOT IN"})
_NUMERIC_OPS = frozenset({"=", "!=", "<", "<=", ">", ">="})
# Registry tags compare strings and have no IS NULL; attributes are checked per key below.
_RULES = {"tag": KindRule(_STRING_OPS, "string"), "attribute": KindRule(_STRING_OPS | _LIST_OPS | _NUMERIC_OPS, "any")}


@dataclass(frozen=True)
class Page:
    """One page of results in MLflow's JSON shape and the token for the next page (None at the end)."""

    items: list[dict[str, Any]]
    next_page_token: str | None


def _wants_prompts(comparisons) -> bool:
    # MLflow: the search is "about prompts" when the filter says is_prompt = 'true' (or != 'false').
    for c in comparisons:
        if c.kind == "tag" and c.key == IS_PROMPT_TAG_KEY:
            value = str(c.value).lower()
            return (c.op == "=" and value == "true") or (c.op == "!=" and value == "false")
    return False


def _is_prompt(owner: Table) -> ColumnElement[bool]:
    # Of the same workspace: another workspace's prompt of the same name says nothing about this model.
    tags = registered_model_tags
    return exists().where(tags.c.workspace == owner.c.workspace, tags.c.name == owner.c.name,
                          tags.c.key == IS_PROMPT_TAG_KEY, func.lower(tags.c.value) == "true")


def _string_value(c, key: str) -> None:
    if c.op in _LIST_OPS:
        return
    if not isinstance(c.value, str):
        raise invalid_parameter(f"Invalid filter: attribute {key!r} must be compared with a quoted string, "
                                f"got {c.value!r}.")


def _tag_clause(tag_table: Table, owner: Callable[[Table], ColumnElement[bool]], c) -> ColumnElement[bool]:
    return exists().where(owner(tag_table), tag_table.c.key == c.key, compare(tag_table.c.value, c.op, c.value))


def _model_attribute(c) -> ColumnElement[bool]:
    if c.key != "name":
        raise invalid_parameter(f"Invalid attribute name: {c.key!r}. Registered models can be filtered by "
                                "'name' and 'tags.<key>'.")
    if c.op not in _STRING_OPS | _LIST_OPS:
        raise invalid_parameter(f"Invalid comparator for attribute: {c.op}")
    _string_value(c, "name")
    return compare(registered_models.c.name, c.op, c.value)


_VERSION_STRING_COLUMNS = {"name": "name", "run_id": "run_id", "source_path": "source"}
_VERSION_NUMERIC_COLUMNS = {"version_number": "version", "creation_timestamp": "creation_time",
                            "last_updated_timestamp": "last_updated_time"}


def _version_attribute(c) -> ColumnElement[bool]:
    if c.key in _VERSION_NUMERIC_COLUMNS:
        if c.op not in _NUMERIC_OPS:
            raise invalid_parameter(f"Invalid comparator for attribute {c.key}: {c.op}")
        value = c.value
        if isinstance(value, float | bool):
            raise invalid_parameter(f"Invalid value for numeric attribute '{c.key}': {value!r}")
        try:
            number = int(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError):
            raise invalid_parameter(f"Invalid value for numeric attribute '{c.key}': {value!r}") from None
        if not -(2**63) <= number < 2**63:
            raise invalid_parameter(f"Invalid value for numeric attribute '{c.key}': out of the 64-bit range.")
        return compare(model_versions.c[_VERSION_NUMERIC_COLUMNS[c.key]], c.op, number)
    column = _VERSION_STRING_COLUMNS.get(c.key)
    if column is None:
        valid = ", ".join(sorted([*_VERSION_STRING_COLUMNS, *_VERSION_NUMERIC_COLUMNS]))
        raise invalid_parameter(f"Invalid attribute name: {c.key!r}. Valid attributes are {valid} and tags.<key>.")
    allowed = _STRING_OPS | (_LIST_OPS if c.key in ("name", "run_id") else frozenset())
    if c.op not in allowed:
        raise invalid_parameter(f"Invalid comparator for attribute: {c.op}")
    _string_value(c, c.key)
    return compare(model_versions.c[column], c.op, c.value)


def _scope_parts(scope: ResourceScope) -> list[Any]:
    return [scope.unrestricted, scope.ids, list(scope.name_patterns), scope.denied_ids,
            list(scope.denied_name_patterns), scope.names, scope.hidden_names, scope.denied_names, scope.workspace,
            None if scope.within is None else _scope_parts(scope.within)]


def _bounded(max_results: int | None, default: int, limit: int) -> int:
    if max_results is None:
        return default
    if max_results < 1:
        raise invalid_parameter(f"Invalid value for max_results. It must be a positive integer, but got "
                                f"{max_results}")
    if max_results > limit:
        raise invalid_parameter(f"Invalid value for request parameter max_results. It must be at most {limit}, "
                                f"but got value {max_results}")
    return max_results


def search_registered_models(conn: Connection, *, filter_string: str | None, max_results: int | None,
                             order_by: list[str], page_token: str | None, scope: ResourceScope) -> Page:
    """One page of registered models matching the filter, visible in ``scope``."""
    limit = _bounded(max_results, REGISTERED_MODELS_DEFAULT_MAX, REGISTERED_MODELS_MAX)
    comparisons = parse_filter(filter_string, kinds=_KINDS, rules=_RULES)
    wants_prompts = _wants_prompts(comparisons)
    where: list[ColumnElement[bool]] = [scope.clause(registered_models.c.model_id, registered_models.c.name,
                                                    registered_models.c.workspace)]
    for c in comparisons:
        if c.kind == "attribute":
            where.append(_model_attribute(c))
        elif c.key == IS_PROMPT_TAG_KEY and not wants_prompts:
            continue  # MLflow drops this condition and simply hides prompts (see _wants_prompts)
        else:
            where.append(_tag_clause(registered_model_tags,
                                     lambda t: and_(t.c.workspace == registered_models.c.workspace,
                                                    t.c.name == registered_models.c.name), c))
    if not wants_prompts:
        where.append(~_is_prompt(registered_models))
    ordering = _model_order(order_by)
    fp = fingerprint("registered_models", filter_string or "", list(order_by), _scope_parts(scope))
    offset = decode_page_token(page_token, fp)
    rows = conn.execute(select(registered_models).where(and_(true(), *where)).order_by(*ordering)
                        .limit(limit + 1).offset(offset)).all()
    token = encode_page_token(offset + limit, fp) if len(rows) > limit else None
    return Page(registered_models_json(conn, rows[:limit]), token)


def _model_order(order_by: list[str]) -> list[Any]:
    keys = parse_order_by(order_by, kinds={"attribute": "attribute", "attributes": "attribute"})
    columns = {"name": registered_models.c.name, "last_updated_timestamp": registered_models.c.last_updated_time,
               "timestamp": registered_models.c.last_updated_time,
               "creation_timestamp": registered_models.c.creation_time}
    out, used = [], set()
    for key in keys:
        column = columns.get(key.key)
        if column is None:
            raise invalid_parameter(f"Invalid order by key '{key.key}' specified. Valid keys are "
                                    "'name', 'creation_timestamp', 'last_updated_timestamp'.")
        if column.name in used:
            raise invalid_parameter(f"`order_by` contains duplicate fields: {order_by}")
        used.add(column.name)
        out.append(column.asc() if key.ascending else column.desc())
    if "name" not in used:
        out.append(registered_models.c.name.asc())
    out.append(registered_models.c.workspace.asc())  # a total order when a search spans workspaces
    return out


def _visible_model(scope: ResourceScope) -> ColumnElement[bool]:
    # The scope names models by their stable id: versions carry only (workspace, name), so the model row is
    # consulted.
    if scope.unrestricted and scope.workspace is None and scope.within is None and not (
            scope.denied_ids or scope.denied_name_patterns or scope.hidden_names or scope.denied_names):
        return true()
    return exists().where(registered_models.c.workspace == model_versions.c.workspace,
                          registered_models.c.name == model_versions.c.name,
                          scope.clause(registered_models.c.model_id, registered_models.c.name,
                                       registered_models.c.workspace))


def search_model_versions(conn: Connection, *, filter_string: str | None, max_results: int | None,
                          order_by: list[str], page_token: str | None, scope: ResourceScope) -> Page:
    """One page of live model versions matching the filter, of models visible in ``scope``."""
    limit = _bounded(max_results, MODEL_VERSIONS_DEFAULT_MAX, MODEL_VERSIONS_MAX)
    comparisons = parse_filter(filter_string, kinds=_KINDS, rules=_RULES)
    wants_prompts = _wants_prompts(comparisons)
    where: list[ColumnElement[bool]] = [
        model_versions.c.current_stage != STAGE_DELETED,
        _visible_model(scope),
    ]
    for c in comparisons:
        if c.kind == "attribute":
            where.append(_version_attribute(c))
        elif c.key == IS_PROMPT_TAG_KEY and not wants_prompts:
            continue
        else:
            where.append(_tag_clause(
                model_version_tags,
                lambda t: and_(t.c.workspace == model_versions.c.workspace, t.c.name == model_versions.c.name,
                               t.c.version == model_versions.c.version), c))
    if not wants_prompts:
        where.append(~_is_prompt(model_versions))
    ordering = _version_order(order_by or ["last_updated_timestamp DESC", "name ASC", "version_number DESC"])
    fp = fingerprint("model_versions", filter_string or "", list(order_by), _scope_parts(scope))
    offset = decode_page_token(page_token, fp)
    rows = conn.execute(select(model_versions).where(*where).order_by(*ordering)
                        .limit(limit + 1).offset(offset)).all()
    token = encode_page_token(offset + limit, fp) if len(rows) > limit else None
    return Page(versions_json(conn, rows[:limit]), token)


def _version_order(order_by: list[str]) -> list[Any]:
    keys = parse_order_by(order_by, kinds={"attribute": "attribute", "attributes": "attribute"})
    columns = {"name": model_versions.c.name, "version_number": model_versions.c.version,
               "creation_timestamp": model_versions.c.creation_time,
               "last_updated_timestamp": model_versions.c.last_updated_time}
    out, used = [], set()
    for key in keys:
        column = columns.get(key.key)
        if column is None:
            raise invalid_parameter(f"Invalid order by key '{key.key}' specified. Valid keys are "
                                    f"{sorted(columns)}")
        if column.name in used:
            raise invalid_parameter(f"`order_by` contains duplicate fields: {order_by}")
        used.add(column.name)
        out.append(column.asc() if key.ascending else column.desc())
    if "name" not in used:
        out.append(model_versions.c.name.asc())
    if "version" not in used:
        out.append(model_versions.c.version.desc())
    return out

