"""The filter grammar: accepted filters parse to exact comparisons; bad ones get exact 400 messages."""

from __future__ import annotations

import pytest

from tracking.errors import MlflowError
from tracking.search.filter import AttributeRules, Comparison, parse_filter

RUN_ATTRS = AttributeRules(
    string=frozenset({"run_id", "run_name", "status", "user_id"}),
    numeric=frozenset({"start_time", "end_time"}),
    lists=frozenset({"run_id"}),
    aliases={"created": "start_time", "Run name": "run_name"},
)

ACCEPTED = [
    ("metrics.acc > 0.9", [Comparison("metric", "acc", ">", 0.9)]),
    ("metric.acc >= 1", [Comparison("metric", "acc", ">=", 1.0)]),
    ("metrics.loss < -1e-3", [Comparison("metric", "loss", "<", -0.001)]),
    ("metrics.`my key` != 2", [Comparison("metric", "my key", "!=", 2.0)]),
    ('metrics."my key" <= 2', [Comparison("metric", "my key", "<=", 2.0)]),
    ("params.lr = '0.1'", [Comparison("param", "lr", "=", "0.1")]),
    ('param.lr = "0.1"', [Comparison("param", "lr", "=", "0.1")]),
    ("parameters.lr LIKE '0.%'", [Comparison("param", "lr", "LIKE", "0.%")]),
    ("tags.team ilike 'ML%'", [Comparison("tag", "team", "ILIKE", "ML%")]),
    ("tags.mlflow.runName = 'r1'", [Comparison("tag", "mlflow.runName", "=", "r1")]),
    ("tags.`mlflow.user` = 'ann'", [Comparison("tag", "mlflow.user", "=", "ann")]),
    ("tag.x IS NULL", [Comparison("tag", "x", "IS NULL", None)]),
    ("params.x is not null", [Comparison("param", "x", "IS NOT NULL", None)]),
    ("params.q = 'it''s'", [Comparison("param", "q", "=", "it's")]),
    ("params.q = 'a \"b\"'", [Comparison("param", "q", "=", 'a "b"')]),
    ("status = 'FINISHED'", [Comparison("attribute", "status", "=", "FINISHED")]),
    ("attributes.run_name = 'a'", [Comparison("attribute", "run_name", "=", "a")]),
    ("attr.user_id != 'bob'", [Comparison("attribute", "user_id", "!=", "bob")]),
    ("run.status LIKE 'F%'", [Comparison("attribute", "status", "LIKE", "F%")]),
    ("`Run name` = 'a'", [Comparison("attribute", "run_name", "=", "a")]),
    ("created > 5", [Comparison("attribute", "start_time", ">", 5)]),
    ("attributes.end_time <= 1.5", [Comparison("attribute", "end_time", "<=", 1.5)]),
    ("start_time < 9223372036854775807", [Comparison("attribute", "start_time", "<", 2**63 - 1)]),
    ("run_id IN ('a', 'b')", [Comparison("attribute", "run_id", "IN", ("a", "b"))]),
    ("attributes.run_id NOT IN (\"a\")", [Comparison("attribute", "run_id", "NOT IN", ("a",))]),
    ("datasets.name = 'd'", [Comparison("dataset", "name", "=", "d")]),
    ("dataset.context IN ('train', 'eval')", [Comparison("dataset", "context", "IN", ("train", "eval"))]),
    (
        "metrics.acc > 0.9 AND params.lr = '0.1' and tags.t LIKE 'x%'",
        [Comparison("metric", "acc", ">", 0.9), Comparison("param", "lr", "=", "0.1"),
         Comparison("tag", "t", "LIKE", "x%")],
    ),
    ("  ", []),
    ("", []),
    (None, []),
]


@pytest.mark.parametrize(("text", "expected"), ACCEPTED)
def test_accepted_filters_parse_to_exact_comparisons(text, expected):
    assert parse_filter(text, attributes=RUN_ATTRS) == expected


REJECTED = [
    ("metrics.acc > 1 OR metrics.acc < 0",
     "Invalid filter: 'OR' is not supported; MLflow's search grammar only joins comparisons with AND."),
    ("(metrics.acc > 1)",
     "Invalid filter: parentheses are only allowed around the list of an IN comparison."),
    ("metrics.acc = 'x'", "Invalid filter: metric 'acc' must be compared with a number, got 'x'."),
    ("params.x = 1", "Invalid filter: param 'x' must be compared with a quoted string, got 1."),
    ("tags.x = 1.5", "Invalid filter: tag 'x' must be compared with a quoted string, got 1.5."),
    ("metrics.acc LIKE 1",
     "Invalid filter: operator 'LIKE' is not allowed for metric 'acc'; use one of !=, <, <=, =, >, >=."),
    ("params.x > '1'",
     "Invalid filter: operator '>' is not allowed for param 'x'; "
     "use one of !=, =, ILIKE, IS NOT NULL, IS NULL, LIKE."),
    ("metrics.acc IS NULL",
     "Invalid filter: operator 'IS NULL' is not allowed for metric 'acc'; use one of !=, <, <=, =, >, >=."),
    ("datasets.name > 'a'",
     "Invalid filter: operator '>' is not allowed for dataset 'name'; "
     "use one of !=, =, ILIKE, IN, LIKE, NOT IN."),
    ("foo.bar = 'x'",
     "Invalid filter: unknown entity type 'foo' in 'foo.bar'; valid prefixes are attr, attribute, attributes, "
     "dataset, datasets, metric, metrics, param, parameter, parameters, params, run, tag, tags."),
    ("metrics.acc >", "Invalid filter: expected a quoted string or a number after '>', got the end of the filter."),
    ("metrics.acc > 1 AND", "Invalid filter: expected an identifier after 'AND', got the end of the filter."),
    ("AND metrics.a > 1", "Invalid filter: expected an identifier at the start of the filter, got 'AND'."),
    ("metrics.acc", "Invalid filter: expected an operator after 'metrics.acc', got the end of the filter."),
    ("metrics.acc 1", "Invalid filter: expected an operator after 'metrics.acc', got '1'."),
    ("metrics.acc > 1 metrics.b < 2", "Invalid filter: expected AND between comparisons, got 'metrics.b'."),
    ("params.x IS 1", "Invalid filter: expected NULL or NOT NULL after IS, got '1'."),
    ("params.x IS NOT 'a'", "Invalid filter: expected NULL or NOT NULL after IS, got \"'a'\"."),
    ("params.x NOT LIKE 'a'",
     "Invalid filter: NOT is only allowed in 'NOT IN' and 'IS NOT NULL', got NOT 'LIKE'."),
    ("run_id IN ()", "Invalid filter: the list after 'IN' is empty."),
    ("run_id IN 'a'",
     "Invalid filter: expected a parenthesized list of quoted strings after 'IN', got \"'a'\"."),
    ("run_id IN ('a' 'b')", "Invalid filter: expected ',' or ')' in the list after 'IN', got \"'b'\"."),
    ("run_id IN ('a', 1)", "Invalid filter: the list after 'IN' must hold quoted strings, got '1'."),
    ("run_id IN ('a'", "Invalid filter: expected ',' or ')' in the list after 'IN', got the end of the filter."),
    ("metrics.acc == 1", "Invalid filter: operator '==' is not supported; use '='."),
    ("metrics.acc <> 1", "Invalid filter: operator '<>' is not supported; use '!='."),
    ("metrics.acc > 1abc", "Invalid filter: '1abc' is neither a number nor an identifier."),
    ("params.x = 'open", "Invalid filter: unterminated ' quote starting at \"'open\"."),
    ("metrics.acc > 1; DROP TABLE runs", "Invalid filter: unexpected character ';' at position 15."),
    ("metrics. = 1", "Invalid filter: missing key after 'metrics.'."),
    ("start_time > 9223372036854775808",
     "Invalid filter: the number '9223372036854775808' is out of the 64-bit integer range."),
    ("params.x = 'a\x00'", "Invalid filter: it contains a NUL character."),
    ("params.x = '\ud800'", "Invalid filter: it is not valid Unicode text."),
    ("bogus = 'x'",
     "Invalid filter: unknown attribute 'bogus'; valid attributes are end_time, run_id, run_name, start_time, "
     "status, user_id."),
    ("start_time > 'x'", "Invalid filter: attribute 'start_time' must be compared with a number, got 'x'."),
    ("status = 3", "Invalid filter: attribute 'status' must be compared with a quoted string, got 3."),
    ("status IN ('A')",
     "Invalid filter: operator 'IN' is not allowed for attribute 'status'; use one of !=, =, ILIKE, LIKE."),
    ("start_time LIKE '1%'",
     "Invalid filter: operator 'LIKE' is not allowed for attribute 'start_time'; "
     "use one of !=, <, <=, =, >, >=."),
    ("status IS NULL",
     "Invalid filter: operator 'IS NULL' is not allowed for attribute 'status'; "
     "use one of !=, <, <=, =, >, >=, ILIKE, IN, LIKE, NOT IN."),
]


@pytest.mark.parametrize(("text", "message"), REJECTED)
def test_rejected_filters_name_the_problem(text, message):
    with pytest.raises(MlflowError) as info:
        parse_filter(text, attributes=RUN_ATTRS)
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    assert info.value.status == 400
    assert info.value.message == message


def test_caller_kinds_replace_the_default_prefixes():
    kinds = {"tag": "tag", "tags": "tag"}
    assert parse_filter("tags.a = 'b' AND name LIKE 'x%'", kinds=kinds) == [
        Comparison("tag", "a", "=", "b"), Comparison("attribute", "name", "LIKE", "x%"),
    ]
    with pytest.raises(MlflowError, match="unknown entity type 'metrics'"):
        parse_filter("metrics.a > 1", kinds=kinds)


def test_keywords_are_plain_keys_after_a_prefix():
    assert parse_filter("tags.and = 'x' AND params.or = 'y'") == [
        Comparison("tag", "and", "=", "x"), Comparison("param", "or", "=", "y"),
    ]


def test_overlong_filter_is_refused():
    with pytest.raises(MlflowError, match="longer than 50000 characters"):
        parse_filter("params.a = 'x' AND " * 3000 + "params.b = 'y'")
