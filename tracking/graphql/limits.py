"""Bounds on a GraphQL document, checked after parsing and validation and before anything runs.

A document is small (``MAX_TOKENS``, enforced by the parser itself) and shallow; its aliases and root fields
are few, so one request cannot multiply work (the "alias" and "batching" denial-of-service patterns).
Fragments are expanded where they are spread (validation has already refused fragment cycles), so a
fragment cannot hide depth or aliases. MLflow's server has the same kinds of bounds (10 each).
"""

from __future__ import annotations

from graphql.language import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)

MAX_QUERY_CHARS = 20_000
MAX_TOKENS = 5_000
MAX_DEPTH = 10
MAX_ALIASES = 10
MAX_ROOT_FIELDS = 10
MAX_SELECTIONS = 1_000
MAX_OPERATIONS = 10


class QueryTooLarge(Exception):
    """The document is over one of the bounds; the message names it."""


def check_document(document: DocumentNode) -> None:
    """Raise :class:`QueryTooLarge` when ``document`` is too deep, too wide or has too many aliases."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) > MAX_OPERATIONS:
        raise QueryTooLarge(f"A GraphQL document may hold at most {MAX_OPERATIONS} operations.")
    counts = {"aliases": 0, "selections": 0}
    for operation in operations:
        roots = _fields(operation.selection_set, fragments, frozenset())
        if len(roots) > MAX_ROOT_FIELDS:
            raise QueryTooLarge(f"A GraphQL operation may select at most {MAX_ROOT_FIELDS} root fields, "
                                f"got {len(roots)}.")
        stack = [(field, 1, frozenset()) for field in roots]
        while stack:
            field, depth, seen = stack.pop()
            if depth > MAX_DEPTH:
                raise QueryTooLarge(f"A GraphQL query may be at most {MAX_DEPTH} fields deep.")
            counts["selections"] += 1
            if counts["selections"] > MAX_SELECTIONS:
                raise QueryTooLarge(f"A GraphQL query may select at most {MAX_SELECTIONS} fields in all.")
            if field.alias is not None:
                counts["aliases"] += 1
                if counts["aliases"] > MAX_ALIASES:
                    raise QueryTooLarge(f"A GraphQL query may use at most {MAX_ALIASES} aliases.")
            if field.selection_set is not None:
                stack.extend((child, depth + 1, seen) for child in _fields(field.selection_set, fragments, seen))


def _fields(selection_set: SelectionSetNode | None, fragments: dict[str, FragmentDefinitionNode],
            seen: frozenset[str]) -> list[FieldNode]:
    """The fields a selection set selects at its own level, with inline and named fragments expanded."""
    out: list[FieldNode] = []
    pending = list(selection_set.selections) if selection_set else []
    expanded = set(seen)
    while pending:
        selection = pending.pop()
        if isinstance(selection, FieldNode):
            out.append(selection)
        elif isinstance(selection, InlineFragmentNode):
            pending.extend(selection.selection_set.selections)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is not None and name not in expanded:
                expanded.add(name)
                pending.extend(fragment.selection_set.selections)
        if len(out) > MAX_SELECTIONS:
            raise QueryTooLarge(f"A GraphQL query may select at most {MAX_SELECTIONS} fields in all.")
    return out
