"""MLflow order_by clauses: ``["metrics.acc DESC", "start_time"]`` -> ordered keys."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tracking.errors import invalid_parameter
from tracking.search.filter import DEFAULT_KINDS, AttributeRules
from tracking.search.tokens import shown, tokenize

MAX_ORDER_BY_ITEMS = 50


@dataclass(frozen=True)
class OrderKey:
    """One sort key: its kind, its key without prefix or quotes, and the direction."""

    kind: str
    key: str
    ascending: bool


def _parse_one(item: str, kinds: Mapping[str, str], attributes: AttributeRules | None) -> OrderKey:
    if not isinstance(item, str) or not item.strip():
        raise invalid_parameter(f"Invalid order_by clause {shown(str(item))}: it is empty.")
    tokens = tokenize(item, f"order_by clause {shown(item)}")
    head = tokens[0]
    if head.kind != "ident":
        raise invalid_parameter(
            f"Invalid order_by clause {shown(item)}: expected a column name, got {shown(head.text)}."
        )
    ascending = True
    if len(tokens) >= 2:
        direction = tokens[1]
        if direction.kind != "keyword" or direction.value not in ("ASC", "DESC"):
            raise invalid_parameter(
                f"Invalid order_by clause {shown(item)}: expected ASC or DESC after {shown(head.text)}, "
                f"got {shown(direction.text)}."
            )
        ascending = direction.value == "ASC"
    if len(tokens) > 2:
        raise invalid_parameter(
            f"Invalid order_by clause {shown(item)}: unexpected {shown(tokens[2].text)} after the direction."
        )
    prefix, key = head.value
    if prefix is None:
        kind = "attribute"
    else:
        kind = kinds.get(prefix)
        if kind is None:
            valid = ", ".join(sorted(kinds))
            raise invalid_parameter(
                f"Invalid order_by clause {shown(item)}: unknown entity type {prefix!r}; valid prefixes are {valid}."
            )
    if kind == "attribute" and attributes is not None:
        key = attributes.canonical(key, f"order_by clause {shown(item)}")
    return OrderKey(kind, key, ascending)


def parse_order_by(items: list[str] | None, *, kinds: Mapping[str, str] = DEFAULT_KINDS,
                   attributes: AttributeRules | None = None) -> list[OrderKey]:
    """Parse order_by clauses (``<identifier> [ASC|DESC]``); duplicates and unknown names get a 400."""
    if not items:
        return []
    if len(items) > MAX_ORDER_BY_ITEMS:
        raise invalid_parameter(f"Invalid order_by: at most {MAX_ORDER_BY_ITEMS} clauses are allowed.")
    out: list[OrderKey] = []
    seen: set[tuple[str, str]] = set()
    for item in items:
        key = _parse_one(item, kinds, attributes)
        if (key.kind, key.key) in seen:
            raise invalid_parameter(f"Invalid order_by: {key.kind} {key.key!r} appears more than once.")
        seen.add((key.kind, key.key))
        out.append(key)
    return out
