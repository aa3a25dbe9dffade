"""``POST /graphql``: MLflow's GraphQL endpoint, as far as MLflow's web UI uses it.

One operation per request, parsed and validated by graphql-core against :mod:`tracking.graphql.schema`,
then bounded (:mod:`tracking.graphql.limits`) before it runs. A malformed, invalid, batched or too large
request is a 400 with the GraphQL-over-HTTP body (``{"data": null, "errors": [...]}``) plus MLflow's
``error_code`` and ``message``; it never reaches a resolver. The answer of a valid query is a 200 with
``data`` (expected failures inside it are each response's ``apiError``, as MLflow's UI reads them).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from tracking.api.responses import JSONBody
from tracking.scope import visibility_scope
from tracking.services import tracking_of
from tracking.store.transaction import read_connection

router = APIRouter()
MAX_BODY_BYTES = 64 * 1024


def _refusal(message: str) -> JSONBody:
    return JSONBody({"data": None, "errors": [message], "error_code": "INVALID_PARAMETER_VALUE",
                     "message": message}, status_code=400)


def _request_fields(body: bytes) -> tuple[str, dict | None, str | None] | str:
    """The query, variables and operation name of a request body, or why it is refused."""
    if len(body) > MAX_BODY_BYTES:
        return f"A GraphQL request body may be at most {MAX_BODY_BYTES} bytes."
    try:
        payload: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return "The GraphQL request body must be a JSON object."
    if isinstance(payload, list):
        return "Batched GraphQL requests are not supported: send one operation per request."
    if not isinstance(payload, dict):
        return "The GraphQL request body must be a JSON object."
    query, variables, operation = payload.get("query"), payload.get("variables"), payload.get("operationName")
    if not isinstance(query, str) or not query.strip():
        return "Missing value for required parameter 'query'."
    if variables is not None and not isinstance(variables, dict):
        return "Parameter 'variables' must be a JSON object."
    if operation is not None and not isinstance(operation, str):
        return "Parameter 'operationName' must be a string."
    return query, variables, operation


@router.post("/graphql", operation_id="graphql.query")
async def graphql_query(request: Request) -> JSONBody:
    """Run one GraphQL query of MLflow's UI under the caller's visibility scope."""
    fields = _request_fields(await request.body())
    if isinstance(fields, str):
        return _refusal(fields)
    return await run_in_threadpool(_execute, request, *fields)


def _execute(request: Request, query: str, variables: dict | None, operation: str | None) -> JSONBody:
    from graphql import GraphQLError, execute, parse, validate  # on first use: start-up stays fast

    from tracking.graphql.limits import MAX_QUERY_CHARS, MAX_TOKENS, QueryTooLarge, check_document
    from tracking.graphql.schema import Context, root_value, schema

    if len(query) > MAX_QUERY_CHARS:
        return _refusal(f"A GraphQL query may be at most {MAX_QUERY_CHARS} characters.")
    try:
        document = parse(query, no_location=True, max_tokens=MAX_TOKENS)
    except GraphQLError as exc:
        return _refusal(f"Invalid GraphQL query: {exc.message}")
    problems = validate(schema(), document, max_errors=10)
    if problems:
        return _refusal("; ".join(p.message for p in problems))
    try:
        check_document(document)
    except QueryTooLarge as exc:
        return _refusal(str(exc))
    with read_connection(tracking_of(request).engine) as conn:
        context = Context(conn, visibility_scope(request))
        result = execute(schema(), document, root_value=root_value(context), variable_values=variables,
                         operation_name=operation)
    if result.errors:
        for error in result.errors:
            if error.path is not None and error.original_error is not None \
                    and not isinstance(error.original_error, GraphQLError):
                raise error.original_error  # a bug, not a bad query: logged and answered 500 by the error edge
        # Variables that do not fit the operation's types, a missing operationName: the request's fault.
        return _refusal("; ".join(e.message for e in result.errors))
    return JSONBody({"data": result.data}, status_code=200)
