"""The GraphQL schema MLflow's web UI queries, resolved on tracking's store under the caller's scope.

MLflow 3.17's UI sends four queries (``MlflowGetExperimentQuery``, ``GetRun``, ``SearchRuns``,
``GetMetricHistoryBulkInterval``); the types and field names are MLflow's (camelCase, 64-bit numbers as
``LongString``), the values are those of the REST API (tracking's JSON, re-keyed).

Authorization: the gateway classifies the endpoint as a search, so the request carries the caller's
visibility scope; every experiment, run and metric history here is checked against that scope before it is
read (a hidden one answers exactly as a missing one: ``apiError`` RESOURCE_DOES_NOT_EXIST), run searches
apply it inside SQL, and a run's model versions are those of models the scope shows.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from graphql import GraphQLSchema, build_schema
from sqlalchemy import Connection

from tracking.errors import MlflowError, invalid_parameter
from tracking.scope import VisibilityScope
from tracking.search.page_token import decode_page_token, encode_page_token
from tracking.search.runs_sql import build_run_search, run_ids_page
from tracking.store import metrics as metric_store
from tracking.store.experiments import experiment_workspace, experiments_to_json, parse_experiment_id
from tracking.store.registry_search import search_model_versions
from tracking.store.runs import get_run_experiment_id, runs_to_json
from tracking.store.validation import validate_run_id

MISSING = "The requested resource does not exist."
MAX_SEARCH_RESULTS = 1000  # the UI's run searches name one run; MLflow's REST default page
MAX_EXPERIMENT_IDS = 1000
MAX_RUN_VERSIONS = 100  # model versions listed on a run

SDL = """
directive @component(name: String!) on QUERY | MUTATION

scalar LongString

enum MlflowRunStatus { RUNNING SCHEDULED FINISHED FAILED KILLED }
enum MlflowViewType { ACTIVE_ONLY DELETED_ONLY ALL }
enum MlflowModelVersionStatus { PENDING_REGISTRATION FAILED_REGISTRATION READY }

type ErrorDetail { field: String message: String }
type ApiError { code: String message: String helpUrl: String traceId: String errorDetails: [ErrorDetail] }

type MlflowExperimentTag { key: String value: String }
type MlflowExperiment {
  experimentId: String name: String artifactLocation: String lifecycleStage: String
  lastUpdateTime: LongString creationTime: LongString tags: [MlflowExperimentTag!]
  effectiveTraceArchivalRetention: String workspace: String
}
type MlflowGetExperimentResponse { experiment: MlflowExperiment apiError: ApiError }

type MlflowRunInfo {
  runId: String runUuid: String runName: String experimentId: String userId: String status: MlflowRunStatus
  startTime: LongString endTime: LongString artifactUri: String lifecycleStage: String
}
type MlflowMetricExtension {
  key: String value: Float timestamp: LongString step: LongString datasetName: String datasetDigest: String
  modelId: String runId: String
}
type MlflowParam { key: String value: String }
type MlflowRunTag { key: String value: String }
type MlflowRunData { metrics: [MlflowMetricExtension!] params: [MlflowParam!] tags: [MlflowRunTag!] }
type MlflowDataset { name: String digest: String sourceType: String source: String schema: String profile: String }
type MlflowInputTag { key: String value: String }
type MlflowDatasetInput { tags: [MlflowInputTag!] dataset: MlflowDataset }
type MlflowModelInput { modelId: String }
type MlflowRunInputs { datasetInputs: [MlflowDatasetInput!] modelInputs: [MlflowModelInput!] }
type MlflowModelOutput { modelId: String step: LongString }
type MlflowRunOutputs { modelOutputs: [MlflowModelOutput!] }
type MlflowModelVersionTag { key: String value: String }
type MlflowModelVersion {
  name: String version: String creationTimestamp: LongString lastUpdatedTimestamp: LongString userId: String
  currentStage: String description: String source: String runId: String status: MlflowModelVersionStatus
  statusMessage: String tags: [MlflowModelVersionTag!] runLink: String aliases: [String] modelId: String
}
type MlflowRunExtension {
  info: MlflowRunInfo data: MlflowRunData inputs: MlflowRunInputs outputs: MlflowRunOutputs
  experiment: MlflowExperiment modelVersions: [MlflowModelVersion!]
}
type MlflowGetRunResponse { run: MlflowRunExtension apiError: ApiError }
type MlflowSearchRunsResponse { runs: [MlflowRunExtension!] nextPageToken: String apiError: ApiError }

type MlflowMetricWithRunId { key: String value: Float timestamp: LongString step: LongString runId: String }
type MlflowGetMetricHistoryBulkIntervalResponse { metrics: [MlflowMetricWithRunId!] apiError: ApiError }

input MlflowGetExperimentInput { experimentId: String }
input MlflowGetRunInput { runId: String runUuid: String }
input MlflowSearchRunsInput {
  experimentIds: [String] filter: String runViewType: MlflowViewType maxResults: Int orderBy: [String]
  pageToken: String
}
input MlflowGetMetricHistoryBulkIntervalInput {
  runIds: [String] metricKey: String startStep: Int endStep: Int maxResults: Int
}

type Query {
  mlflowGetExperiment(input: MlflowGetExperimentInput): MlflowGetExperimentResponse
  mlflowGetRun(input: MlflowGetRunInput): MlflowGetRunResponse
  mlflowSearchRuns(input: MlflowSearchRunsInput): MlflowSearchRunsResponse
  mlflowGetMetricHistoryBulkInterval(input: MlflowGetMetricHistoryBulkIntervalInput):
    MlflowGetMetricHistoryBulkIntervalResponse
}
"""


@cache
def schema() -> GraphQLSchema:
    """The schema, built once per process on first use (not at import: start-up stays fast)."""
    built = build_schema(SDL)
    long_string = built.type_map["LongString"]
    long_string.serialize = str  # 64-bit numbers as strings: a JavaScript number would round them
    long_string.parse_value = _parse_long
    return built


def _parse_long(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).lstrip("-").isdigit():
        raise ValueError("LongString must be an integer")
    return int(value)


@dataclass(frozen=True)
class Context:
    """What the resolvers of one request share: its connection and the caller's visibility scope."""

    conn: Connection
    scope: VisibilityScope


def camel(value: Any) -> Any:
    """Tracking's JSON (snake_case keys, MLflow's REST form) re-keyed to MLflow's GraphQL field names."""
    if isinstance(value, dict):
        return {_camel_key(k): camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camel(v) for v in value]
    return value


def _camel_key(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _float(value: Any) -> float | None:
    # REST writes NaN and infinities as strings; GraphQL's Float has neither (MLflow answers null for NaN).
    if isinstance(value, str):
        return None
    return value if value is None or math.isfinite(value) else None


def _api_error(exc: MlflowError) -> dict:
    return {"code": exc.error_code, "message": exc.message}


def _missing() -> MlflowError:
    return MlflowError(MISSING, "RESOURCE_DOES_NOT_EXIST")


def _visible_experiment(ctx: Context, experiment_id: str | int) -> dict:
    """The experiment as JSON when it exists and the scope shows it; otherwise 'does not exist'."""
    found = experiments_to_json(ctx.conn, [experiment_id])
    if not found or not ctx.scope.experiments.allows(str(found[0]["experiment_id"]), found[0]["name"],
                                                     experiment_workspace(ctx.conn, experiment_id)):
        raise _missing()
    return found[0]


def _run_versions(ctx: Context, run_id: str) -> list[dict]:
    page = search_model_versions(ctx.conn, filter_string=f"run_id = '{run_id}'", max_results=MAX_RUN_VERSIONS,
                                 order_by=[], page_token=None, scope=ctx.scope.registered_models)
    return [camel(v) for v in page.items]


def _run_value(ctx: Context, run: dict) -> dict:
    """One run in GraphQL form; its experiment and model versions are read only when selected."""
    value = camel(run)
    for metric in value.get("data", {}).get("metrics", []):
        metric["value"] = _float(metric.get("value"))
    run_id, experiment_id = run["info"]["run_id"], run["info"]["experiment_id"]
    value["experiment"] = lambda info: camel(_visible_experiment(ctx, experiment_id))
    value["modelVersions"] = lambda info: _run_versions(ctx, run_id)
    return value


def _answer(resolve: Callable[[], dict]) -> dict:
    """A response object, or its ``apiError`` for an expected failure (as MLflow's UI reads it)."""
    try:
        return resolve()
    except MlflowError as exc:
        return {"apiError": _api_error(exc)}


def get_experiment(ctx: Context, args: dict) -> dict:
    """``mlflowGetExperiment``: one experiment the caller may see."""
    def resolve() -> dict:
        experiment_id = parse_experiment_id((args or {}).get("experimentId"))
        return {"experiment": camel(_visible_experiment(ctx, experiment_id))}
    return _answer(resolve)


def get_run(ctx: Context, args: dict) -> dict:
    """``mlflowGetRun``: one run of an experiment the caller may see."""
    def resolve() -> dict:
        run_id = (args or {}).get("runId") or (args or {}).get("runUuid")
        if not run_id:
            raise invalid_parameter("Missing value for required parameter 'run_id'.")
        try:
            validate_run_id(run_id)
        except MlflowError:
            raise _missing() from None
        found = runs_to_json(ctx.conn, [run_id])
        if not found:
            raise _missing()
        _visible_experiment(ctx, found[0]["info"]["experiment_id"])
        return {"run": _run_value(ctx, found[0])}
    return _answer(resolve)


def search_runs(ctx: Context, args: dict) -> dict:
    """``mlflowSearchRuns``: runs/search with the caller's scope applied inside SQL."""
    def resolve() -> dict:
        args_ = args or {}
        raw_ids = args_.get("experimentIds") or []
        if len(raw_ids) > MAX_EXPERIMENT_IDS:
            raise invalid_parameter(f"Parameter 'experiment_ids' may list at most {MAX_EXPERIMENT_IDS} experiments.")
        experiment_ids = [parse_experiment_id(v, "experiment_ids") for v in raw_ids]
        max_results = args_.get("maxResults") or MAX_SEARCH_RESULTS
        if not 1 <= max_results <= MAX_SEARCH_RESULTS:
            raise invalid_parameter(f"max_results must be between 1 and {MAX_SEARCH_RESULTS}.")
        search = build_run_search(experiment_ids, args_.get("filter"), list(args_.get("orderBy") or []),
                                  args_.get("runViewType") or "ACTIVE_ONLY")
        scope = ctx.scope.experiments
        fp = search.fingerprint(scope)
        offset = decode_page_token(args_.get("pageToken"), fp)
        ids = run_ids_page(ctx.conn, search, scope, offset, max_results + 1)
        token = encode_page_token(offset + max_results, fp) if len(ids) > max_results else None
        runs = runs_to_json(ctx.conn, ids[:max_results]) if ids else []
        return {"runs": [_run_value(ctx, r) for r in runs], "nextPageToken": token}
    return _answer(resolve)


def metric_history_bulk_interval(ctx: Context, args: dict) -> dict:
    """``mlflowGetMetricHistoryBulkInterval``: sampled histories of one metric, every run checked first."""
    def resolve() -> dict:
        args_ = args or {}
        run_ids = [r for r in (args_.get("runIds") or []) if r]
        if not run_ids:
            raise invalid_parameter("Missing value for required parameter 'run_ids'.")
        if len(run_ids) > metric_store.MAX_RUNS_PER_BULK_INTERVAL:
            raise invalid_parameter(f"GetMetricHistoryBulkInterval request must specify at most "
                                    f"{metric_store.MAX_RUNS_PER_BULK_INTERVAL} run_ids. "
                                    f"Received {len(run_ids)} run_ids.")
        key = args_.get("metricKey")
        if not key:
            raise invalid_parameter("Missing value for required parameter 'metric_key'.")
        max_results = args_.get("maxResults") or metric_store.MAX_RESULTS_PER_RUN
        if not 1 <= max_results <= metric_store.MAX_RESULTS_PER_RUN:
            raise invalid_parameter(f"max_results must be between 1 and {metric_store.MAX_RESULTS_PER_RUN}.")
        start, end = args_.get("startStep"), args_.get("endStep")
        if (start is None) != (end is None):
            raise invalid_parameter("If either start step or end step are specified, both must be specified.")
        if start is not None and start > end:
            raise invalid_parameter("end_step must be greater than start_step. "
                                    f"Found start_step={start} and end_step={end}.")
        for run_id in run_ids:
            try:
                validate_run_id(run_id, "run_ids")
            except MlflowError:
                raise _missing() from None
        run_ids = list(dict.fromkeys(run_ids))
        for run_id in run_ids:
            experiment_id = get_run_experiment_id(ctx.conn, run_id)
            if experiment_id is None:
                raise _missing()
            _visible_experiment(ctx, experiment_id)
        points = metric_store.sample_metric_history(ctx.conn, run_ids, key, max_results, start, end)
        return {"metrics": [{**camel(p), "value": _float(p.get("value"))} for p in points]}
    return _answer(resolve)


def root_value(ctx: Context) -> dict:
    """The Query type's resolvers for one request (graphql-core calls a callable field with its arguments)."""
    return {
        "mlflowGetExperiment": lambda info, input=None: get_experiment(ctx, input),
        "mlflowGetRun": lambda info, input=None: get_run(ctx, input),
        "mlflowSearchRuns": lambda info, input=None: search_runs(ctx, input),
        "mlflowGetMetricHistoryBulkInterval": lambda info, input=None: metric_history_bulk_interval(ctx, input),
    }
