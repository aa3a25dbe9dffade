"""order_by clauses: direction, prefixes, quoting, and exact messages for bad clauses."""

from __future__ import annotations

import pytest

from tracking.errors import MlflowError
from tracking.search.filter import AttributeRules
from tracking.search.order_by import OrderKey, parse_order_by

ATTRS = AttributeRules(string=frozenset({"run_name", "status"}), numeric=frozenset({"start_time"}),
                       aliases={"created": "start_time"})

ACCEPTED = [
    (["metrics.acc"], [OrderKey("metric", "acc", True)]),
    (["metrics.acc DESC"], [OrderKey("metric", "acc", False)]),
    (["metrics.`my key` desc"], [OrderKey("metric", "my key", False)]),
    (["params.lr ASC", "tags.mlflow.runName"], [OrderKey("param", "lr", True),
                                                OrderKey("tag", "mlflow.runName", True)]),
    (["start_time DESC"], [OrderKey("attribute", "start_time", False)]),
    (["attributes.created asc"], [OrderKey("attribute", "start_time", True)]),
    (['tags."a b" DESC'], [OrderKey("tag", "a b", False)]),
    ([], []),
    (None, []),
]


@pytest.mark.parametrize(("items", "expected"), ACCEPTED)
def test_accepted_order_by(items, expected):
    assert parse_order_by(items, attributes=ATTRS) == expected


REJECTED = [
    (["metrics.acc up"],
     "Invalid order_by clause 'metrics.acc up': expected ASC or DESC after 'metrics.acc', got 'up'."),
    (["metrics.acc DESC x"], "Invalid order_by clause 'metrics.acc DESC x': unexpected 'x' after the direction."),
    (["DESC"], "Invalid order_by clause 'DESC': expected a column name, got 'DESC'."),
    ([""], "Invalid order_by clause '': it is empty."),
    (["metrics.a", "metric.a DESC"], "Invalid order_by: metric 'a' appears more than once."),
    (["foo.x"], "Invalid order_by clause 'foo.x': unknown entity type 'foo'; valid prefixes are attr, attribute, "
                "attributes, dataset, datasets, metric, metrics, param, parameter, parameters, params, run, tag, "
                "tags."),
    (["bogus"], "Invalid order_by clause 'bogus': unknown attribute 'bogus'; valid attributes are run_name, "
                "start_time, status."),
    (["metrics.a; DROP"], "Invalid order_by clause 'metrics.a; DROP': unexpected character ';' at position 9."),
    (["x"] * 51, "Invalid order_by: at most 50 clauses are allowed."),
]


@pytest.mark.parametrize(("items", "message"), REJECTED)
def test_rejected_order_by(items, message):
    with pytest.raises(MlflowError) as info:
        parse_order_by(items, attributes=ATTRS)
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    assert info.value.message == message
