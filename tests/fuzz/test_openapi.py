"""The OpenAPI document describes every route: unique operation ids, fields, errors and security."""

from __future__ import annotations

import warnings

from gateway.openapi import CONTRACTS, parse_fields
from policies.routes import Access, requirement_for

METHODS_WITH_BODY = {"post", "put", "patch", "delete"}


def _document(app_factory) -> tuple[dict, list[str]]:
    app = app_factory()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        doc = app.openapi()
    return doc, [str(w.message) for w in caught]


def _operations(doc: dict):
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            yield path, method, operation


def test_operation_ids_are_unique_and_each_is_in_the_route_table(app_factory):
    doc, caught = _document(app_factory)
    assert [w for w in caught if "Duplicate Operation ID" in w] == []
    ids = [op["operationId"] for _, _, op in _operations(doc)]
    assert len(ids) == len(set(ids))
    assert [op for op in ids if requirement_for(op) is None] == []


def test_every_operation_has_a_contract_and_every_contract_an_operation(app_factory):
    doc, _ = _document(app_factory)
    ids = {op["operationId"] for _, _, op in _operations(doc)}
    assert sorted(ids - set(CONTRACTS)) == []
    assert sorted(set(CONTRACTS) - ids) == []


def test_fields_are_declared_where_the_handler_reads_them(app_factory):
    doc, _ = _document(app_factory)
    for path, method, op in _operations(doc):
        fields = parse_fields(CONTRACTS[op["operationId"]].fields)
        query = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
        body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
        if method == "get":
            assert "requestBody" not in op, path
            assert query == {name for name, _, _ in fields}, (method, path)
            required = {p["name"] for p in op.get("parameters", []) if p["in"] == "query" and p["required"]}
        else:
            assert query == set(), (method, path)
            assert set(body.get("properties", {})) == {name for name, _, _ in fields}, (method, path)
            required = set(body.get("required", []))
        assert required == {name for name, _, req in fields if req}, (method, path)
    create = doc["paths"]["/api/2.0/mlflow/experiments/create"]["post"]["requestBody"]["content"]
    assert create["application/json"]["schema"]["required"] == ["name"]
    search = {p["name"] for p in doc["paths"]["/api/2.0/mlflow/runs/search"]["get"]["parameters"]}
    assert search == {"experiment_ids", "filter", "max_results", "order_by", "page_token", "run_view_type"}


def test_errors_are_mlflow_shaped_and_public_operations_need_no_credentials(app_factory):
    doc, _ = _document(app_factory)
    error = doc["components"]["schemas"]["Error"]
    assert error["required"] == ["error_code", "message"]
    assert "HTTPValidationError" not in doc["components"]["schemas"]  # the handlers never answer 422
    assert {"basic", "bearer", "session"} <= set(doc["components"]["securitySchemes"])
    for path, method, op in _operations(doc):
        responses = op["responses"]
        assert "422" not in responses, path
        for status in ("400", "404", "429"):
            assert responses[status]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
        public = requirement_for(op["operationId"]).access is Access.PUBLIC
        assert ("401" in responses) is not public, (method, path)
        assert (op.get("security") == []) is public, (method, path)
        if method in METHODS_WITH_BODY:
            assert "409" in responses, (method, path)
