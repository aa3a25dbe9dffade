"""MLflow search filter strings: ``metrics.acc > 0.9 AND params.lr = '0.1' AND tags.team LIKE 'ml%'``.

The grammar (facts from MLflow's ``search_utils.py``; the parser is mlgate's own)::

    filter     := comparison ("AND" comparison)*
    comparison := ident op value | ident ["NOT"] "IN" "(" string ("," string)* ")" | ident "IS" ["NOT"] "NULL"
    ident      := [prefix "."] key      prefix: metrics, params, tags, attributes, datasets (and aliases)
    op         := "=" | "!=" | "<" | "<=" | ">" | ">=" | "LIKE" | "ILIKE"
    value      := 'string' | "string" | number

MLflow has no OR and no grouping parentheses; both are refused with a message saying so. Each kind
allows MLflow's operators and value types (metrics compare numbers, params and tags compare strings).
Callers that know their attributes pass :class:`AttributeRules` to validate them too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from tracking.errors import MlflowError, invalid_parameter
from tracking.search.tokens import Token, shown, tokenize

DEFAULT_KINDS: Mapping[str, str] = {
    "metric": "metric", "metrics": "metric",
    "param": "param", "params": "param", "parameter": "param", "parameters": "param",
    "tag": "tag", "tags": "tag",
    "attribute": "attribute", "attributes": "attribute", "attr": "attribute", "run": "attribute",
    "dataset": "dataset", "datasets": "dataset",
}

NUMERIC_OPS = frozenset({"=", "!=", "<", "<=", ">", ">="})
STRING_OPS = frozenset({"=", "!=", "LIKE", "ILIKE"})
NULL_OPS = frozenset({"IS NULL", "IS NOT NULL"})
LIST_OPS = frozenset({"IN", "NOT IN"})
ALL_OPS = NUMERIC_OPS | STRING_OPS | NULL_OPS | LIST_OPS


@dataclass(frozen=True)
class Comparison:
    """One AND-ed condition of a filter."""

    kind: str  # "metric" | "param" | "tag" | "attribute" | "dataset" (or a caller's own kind)
    key: str  # the key without prefix and quotes
    op: str  # one of ALL_OPS
    value: str | float | int | tuple[str, ...] | None


@dataclass(frozen=True)
class KindRule:
    """The operators a kind allows and the value type it compares: "number", "string" or "any"."""

    ops: frozenset[str]
    value: str


KIND_RULES: Mapping[str, KindRule] = {
    "metric": KindRule(NUMERIC_OPS, "number"),
    "param": KindRule(STRING_OPS | NULL_OPS, "string"),
    "tag": KindRule(STRING_OPS | NULL_OPS, "string"),
    "dataset": KindRule(STRING_OPS | LIST_OPS, "string"),
    # Attributes differ per key; AttributeRules checks them when the caller supplies some.
    "attribute": KindRule(ALL_OPS - NULL_OPS, "any"),
}


@dataclass(frozen=True)
class AttributeRules:
    """The attributes a search knows: string keys, numeric keys, keys taking IN lists, aliases."""

    string: frozenset[str] = frozenset()
    numeric: frozenset[str] = frozenset()
    lists: frozenset[str] = frozenset()
    aliases: Mapping[str, str] = field(default_factory=dict)
    # Per-key operator sets that replace the default for string keys (e.g. ids allow no LIKE).
    ops: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def keys(self) -> frozenset[str]:
        """Every accepted attribute name, aliases included."""
        return self.string | self.numeric | frozenset(self.aliases)

    def canonical(self, key: str, what: str) -> str:
        """The attribute's canonical name, or a 400 naming the valid ones."""
        key = self.aliases.get(key, key)
        if key not in self.string and key not in self.numeric:
            valid = ", ".join(sorted(self.string | self.numeric))
            raise invalid_parameter(f"Invalid {what}: unknown attribute {key!r}; valid attributes are {valid}.")
        return key

    def check(self, c: Comparison) -> Comparison:
        """Validate one attribute comparison and return it with the canonical key and typed value."""
        key = self.canonical(c.key, "filter")
        if key in self.numeric:
            allowed = self.ops.get(key, NUMERIC_OPS)
        else:
            allowed = self.ops.get(key, STRING_OPS | (LIST_OPS if key in self.lists else frozenset()))
        if c.op not in allowed:
            raise _op_error(c.op, "attribute", key, allowed)
        if key in self.numeric:
            if not isinstance(c.value, int | float):
                raise invalid_parameter(
                    f"Invalid filter: attribute {key!r} must be compared with a number, got {_value_text(c.value)}."
                )
        elif c.op not in LIST_OPS and not isinstance(c.value, str):
            raise invalid_parameter(
                f"Invalid filter: attribute {key!r} must be compared with a quoted string, "
                f"got {_value_text(c.value)}."
            )
        return replace(c, key=key)


def _value_text(value: object) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(repr(v) for v in value) + ")"
    return repr(value) if isinstance(value, str) else str(value)


def _op_error(op: str, kind: str, key: str, allowed: frozenset[str]) -> MlflowError:
    ops = ", ".join(sorted(allowed))
    return invalid_parameter(f"Invalid filter: operator {op!r} is not allowed for {kind} {key!r}; use one of {ops}.")


class _Parser:
    """A recursive-descent parser over the token list; one method per grammar rule."""

    def __init__(self, tokens: list[Token], kinds: Mapping[str, str]):
        self.tokens = tokens
        self.i = 0
        self.kinds = kinds

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> Token | None:
        tok = self.peek()
        self.i += 1
        return tok

    @staticmethod
    def got(tok: Token | None) -> str:
        return "the end of the filter" if tok is None else shown(tok.text)

    def filter(self) -> list[tuple[Comparison, Token]]:
        out = [self.comparison()]
        while (tok := self.take()) is not None:
            if tok.kind == "keyword" and tok.value == "AND":
                out.append(self.comparison(after=tok))
            elif tok.kind == "keyword" and tok.value == "OR":
                raise invalid_parameter(
                    "Invalid filter: 'OR' is not supported; MLflow's search grammar only joins "
                    "comparisons with AND."
                )
            else:
                raise invalid_parameter(f"Invalid filter: expected AND between comparisons, got {self.got(tok)}.")
        return out

    def comparison(self, after: Token | None = None) -> tuple[Comparison, Token]:
        tok = self.take()
        if tok is None or tok.kind != "ident":
            where = f"after {shown(after.text)}" if after is not None else "at the start of the filter"
            if tok is not None and tok.kind == "lparen":
                raise invalid_parameter(
                    "Invalid filter: parentheses are only allowed around the list of an IN comparison."
                )
            raise invalid_parameter(f"Invalid filter: expected an identifier {where}, got {self.got(tok)}.")
        kind, key = self.identifier(tok, "filter")
        op, value = self.operator_and_value(tok)
        return Comparison(kind, key, op, value), tok

    def identifier(self, tok: Token, what: str) -> tuple[str, str]:
        prefix, key = tok.value
        if prefix is None:
            return "attribute", key
        kind = self.kinds.get(prefix)
        if kind is None:
            valid = ", ".join(sorted(self.kinds))
            raise invalid_parameter(
                f"Invalid {what}: unknown entity type {prefix!r} in {shown(tok.text)}; valid prefixes are {valid}."
            )
        return kind, key

    def operator_and_value(self, ident: Token) -> tuple[str, object]:
        tok = self.take()
        name = shown(ident.text)
        if tok is None:
            raise invalid_parameter(f"Invalid filter: expected an operator after {name}, got the end of the filter.")
        if tok.kind == "op":
            if tok.value in ("==", "<>"):
                instead = "=" if tok.value == "==" else "!="
                raise invalid_parameter(f"Invalid filter: operator {tok.value!r} is not supported; use {instead!r}.")
            return tok.value, self.scalar(tok)
        if tok.kind == "keyword":
            if tok.value in ("LIKE", "ILIKE"):
                return tok.value, self.scalar(tok)
            if tok.value == "IN":
                return "IN", self.string_list(tok)
            if tok.value == "NOT":
                nxt = self.take()
                if nxt is not None and nxt.kind == "keyword" and nxt.value == "IN":
                    return "NOT IN", self.string_list(nxt)
                raise invalid_parameter(
                    f"Invalid filter: NOT is only allowed in 'NOT IN' and 'IS NOT NULL', got NOT {self.got(nxt)}."
                )
            if tok.value == "IS":
                nxt = self.take()
                if nxt is not None and nxt.kind == "keyword" and nxt.value == "NULL":
                    return "IS NULL", None
                if nxt is not None and nxt.kind == "keyword" and nxt.value == "NOT":
                    last = self.take()
                    if last is not None and last.kind == "keyword" and last.value == "NULL":
                        return "IS NOT NULL", None
                    nxt = last
                raise invalid_parameter(
                    f"Invalid filter: expected NULL or NOT NULL after IS, got {self.got(nxt)}."
                )
        raise invalid_parameter(f"Invalid filter: expected an operator after {name}, got {self.got(tok)}.")

    def scalar(self, op: Token) -> str | int | float:
        tok = self.take()
        if tok is not None and tok.kind in ("string", "number"):
            return tok.value
        raise invalid_parameter(
            f"Invalid filter: expected a quoted string or a number after {shown(op.text)}, got {self.got(tok)}."
        )

    def string_list(self, op: Token) -> tuple[str, ...]:
        tok = self.take()
        if tok is None or tok.kind != "lparen":
            raise invalid_parameter(
                f"Invalid filter: expected a parenthesized list of quoted strings after {shown(op.text)}, "
                f"got {self.got(tok)}."
            )
        items: list[str] = []
        while True:
            tok = self.take()
            if tok is None or tok.kind != "string":
                if tok is not None and tok.kind == "rparen" and not items:
                    raise invalid_parameter(f"Invalid filter: the list after {shown(op.text)} is empty.")
                raise invalid_parameter(
                    f"Invalid filter: the list after {shown(op.text)} must hold quoted strings, got {self.got(tok)}."
                )
            items.append(tok.value)
            tok = self.take()
            if tok is not None and tok.kind == "rparen":
                return tuple(items)
            if tok is None or tok.kind != "comma":
                raise invalid_parameter(
                    f"Invalid filter: expected ',' or ')' in the list after {shown(op.text)}, got {self.got(tok)}."
                )


def _apply_kind_rule(c: Comparison, rule: KindRule) -> Comparison:
    if c.op not in rule.ops:
        raise _op_error(c.op, c.kind, c.key, rule.ops)
    if c.op in NULL_OPS or rule.value == "any":
        return c
    if rule.value == "number":
        if isinstance(c.value, bool) or not isinstance(c.value, int | float):
            raise invalid_parameter(
                f"Invalid filter: {c.kind} {c.key!r} must be compared with a number, got {_value_text(c.value)}."
            )
        return replace(c, value=float(c.value))
    if c.op in LIST_OPS:
        return c  # the parser only builds lists of strings
    if not isinstance(c.value, str):
        raise invalid_parameter(
            f"Invalid filter: {c.kind} {c.key!r} must be compared with a quoted string, got {_value_text(c.value)}."
        )
    return c


def parse_filter(text: str | None, *, kinds: Mapping[str, str] = DEFAULT_KINDS,
                 attributes: AttributeRules | None = None,
                 rules: Mapping[str, KindRule] = KIND_RULES) -> list[Comparison]:
    """Parse an MLflow filter string into AND-joined comparisons, or raise a 400 naming the bad token.

    ``kinds`` maps identifier prefixes to kinds; an identifier without a prefix is an attribute.
    ``rules`` gives the operators and value type of each kind (kinds without a rule are unchecked).
    When ``attributes`` is given, attribute keys, operators and values are validated against it.
    """
    if text is None or not text.strip():
        return []
    parser = _Parser(tokenize(text, "filter"), kinds)
    out = []
    for comparison, _tok in parser.filter():
        rule = rules.get(comparison.kind)
        if rule is not None:
            comparison = _apply_kind_rule(comparison, rule)
        if comparison.kind == "attribute" and attributes is not None:
            comparison = attributes.check(comparison)
        out.append(comparison)
    return out
