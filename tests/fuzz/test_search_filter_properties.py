"""Properties of the search filter and order-by parsers over generated input (hypothesis).

For any string, ``parse_filter`` returns comparisons or raises MLflow's 400 ``INVALID_PARAMETER_VALUE``,
never another exception (a crash would be a 500 on every search endpoint); and every valid filter we can
write down parses back to exactly the comparisons it was written from.
"""

from __future__ import annotations

import math

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tracking.errors import MlflowError
from tracking.search.filter import NUMERIC_OPS, STRING_OPS, AttributeRules, Comparison, parse_filter
from tracking.search.order_by import parse_order_by

# Derandomized: CI sees the same inputs on every run; a failure reproduces by re-running the test.
FUZZ = settings(max_examples=500, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

RUN_ATTRS = AttributeRules(
    string=frozenset({"run_id", "run_name", "status", "user_id"}),
    numeric=frozenset({"start_time", "end_time"}),
    lists=frozenset({"run_id"}),
    aliases={"created": "start_time"},
)

# Text biased towards the grammar's own characters, so the parser's branches are reached, plus anything.
GRAMMAR_PIECES = ["metrics.", "params.", "tags.", "attributes.", "datasets.", "run_id", "status", "start_time",
                  " = ", " != ", " < ", " <= ", " > ", " >= ", " LIKE ", " ILIKE ", " IN ", " NOT ", " IS ",
                  " NULL", " AND ", " OR ", "(", ")", ",", "'", '"', "`", "''", "1", "-1.5e3", "0x1", ".", "%",
                  "\\", "\x00", "\u00e9", "\ud7ff", "\U0001f600", "  "]
grammar_text = st.lists(st.one_of(st.sampled_from(GRAMMAR_PIECES), st.text(max_size=4)), max_size=16).map("".join)
any_text = st.one_of(grammar_text, st.text(max_size=200))


def _assert_parses_or_400(call):
    """The call's result, or None when it raised MLflow's 400 (any other exception fails the test)."""
    error = None
    try:
        return call()
    except MlflowError as exc:
        error = exc
    assert error.error_code == "INVALID_PARAMETER_VALUE", error.to_dict()
    assert error.status == 400
    assert error.message
    return None


@FUZZ
@given(any_text)
@example("metrics.acc > 0.9 AND params.lr = '0.1' AND tags.team LIKE 'ml%'")
@example("params.x IN ('a', 'b')")
@example("metrics.m = 1e999999")
@example("metrics.m > -")
@example("`unterminated")
@example("tags." + "a" * 100_000)
def test_any_filter_parses_or_is_a_400(text):
    result = _assert_parses_or_400(lambda: parse_filter(text))
    if result is not None:
        assert all(isinstance(c, Comparison) for c in result)
    _assert_parses_or_400(lambda: parse_filter(text, attributes=RUN_ATTRS))


@FUZZ
@given(st.lists(any_text, max_size=4))
def test_any_order_by_parses_or_is_a_400(items):
    _assert_parses_or_400(lambda: parse_order_by(items))
    _assert_parses_or_400(lambda: parse_order_by(items, attributes=RUN_ATTRS))


# Round trips: comparisons generated from the grammar, written out, and parsed back.
keys = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="`\x00"), min_size=1, max_size=20)
strings = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)
numbers = st.one_of(st.integers(-(2**53), 2**53).map(float),
                    st.floats(allow_nan=False, allow_infinity=False, width=64))


def _quote(value: str, quote: str = "'") -> str:
    return quote + value.replace(quote, quote * 2) + quote


def _number(value: float) -> str:
    return repr(value)


@st.composite
def comparisons(draw) -> Comparison:
    kind = draw(st.sampled_from(["metric", "param", "tag", "dataset"]))
    key = draw(keys)
    if kind == "metric":
        return Comparison(kind, key, draw(st.sampled_from(sorted(NUMERIC_OPS))), draw(numbers))
    ops = sorted(STRING_OPS) + (["IS NULL", "IS NOT NULL"] if kind in ("param", "tag") else ["IN", "NOT IN"])
    op = draw(st.sampled_from(ops))
    if op in ("IS NULL", "IS NOT NULL"):
        return Comparison(kind, key, op, None)
    if op in ("IN", "NOT IN"):
        return Comparison(kind, key, op, tuple(draw(st.lists(strings, min_size=1, max_size=4))))
    return Comparison(kind, key, op, draw(strings))


PREFIX = {"metric": "metrics", "param": "params", "tag": "tags", "dataset": "datasets"}


def render(c: Comparison) -> str:
    """Write a comparison in MLflow's filter syntax (key in backticks, strings single-quoted)."""
    ident = f"{PREFIX[c.kind]}.`{c.key}`"
    if c.value is None:
        return f"{ident} {c.op}"
    if isinstance(c.value, tuple):
        return f"{ident} {c.op} ({', '.join(_quote(v) for v in c.value)})"
    if isinstance(c.value, float):
        return f"{ident} {c.op} {_number(c.value)}"
    return f"{ident} {c.op} {_quote(c.value)}"


@FUZZ
@given(st.lists(comparisons(), min_size=1, max_size=5), st.sampled_from([" AND ", " and ", "  AND\t"]))
def test_valid_filters_round_trip(parts, joiner):
    parsed = parse_filter(joiner.join(render(c) for c in parts))
    assert len(parsed) == len(parts)
    for got, want in zip(parsed, parts, strict=True):
        assert (got.kind, got.key, got.op) == (want.kind, want.key, want.op)
        if isinstance(want.value, float):
            assert math.isclose(float(got.value), want.value, rel_tol=0, abs_tol=0) or got.value == want.value
        else:
            assert got.value == want.value
    # Parsing is a function of the text: the same text, the same answer.
    assert parse_filter(joiner.join(render(c) for c in parts)) == parsed
