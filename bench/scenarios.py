"""The benchmark's scenarios: what each request looks like, built from the seeded ids."""

from __future__ import annotations

import json
import re
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.seeding import A
from bench.wrk import UNIQUE_16, WrkResult

ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
BIG_FILE_MIB = 100

# The default set; search-runs-100k and search-experiments need --big-runs / --experiments seeding.
SCENARIOS = ["log-batch", "log-metric", "get-run", "get-run-newconn", "search-runs", "search-runs-100k",
             "search-runs-100k-1c", "search-experiments", "artifact-put-1mib", "artifact-get-1mib",
             "artifact-put-100mib", "artifact-get-100mib", "model-version-create", "otlp-traces", "login"]
# Scenarios only mlgate has (MLflow's basic-auth app has no form login).
MLGATE_ONLY = {"login"}


@dataclass
class Context:
    """Everything a scenario needs to build its requests for one server."""

    url: str
    user_headers: dict[str, str]
    experiment_id: str
    run_ids: list[str]
    big_experiment_id: str | None
    model_name: str
    artifact_path: str  # a 1 MiB artifact
    big_artifact_path: str  # a 100 MiB artifact
    big_file: Path  # the 100 MiB file on the server's disk
    workdir: Path

    @property
    def write_run_ids(self) -> list[str]:
        """The runs written to by the write scenarios (one per connection)."""
        return self.run_ids[:8]


@dataclass
class Load:
    """A wrk load (method, paths, bodies) or a Python driver for streamed transfers."""

    method: str = "GET"
    paths: list[str] = field(default_factory=list)
    bodies: list = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    new_connections: bool = False
    driver: Callable[[], None] | None = None  # one request, sequentially, for ``duration``
    mib_per_request: float = 0.0
    connections: int | None = None  # instead of --connections (one client: a request's own latency)


def _otlp_body() -> bytes:
    """An OTLP ExportTraceServiceRequest with one trace of three spans; the trace id is unique per request."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    start = 1_700_000_000_000_000_000
    for i, (name, parent) in enumerate([("root", b""), ("retrieve", b"span0001"), ("generate", b"span0001")]):
        span = scope.spans.add()
        span.trace_id = UNIQUE_16
        span.span_id = f"span{i + 1:04d}".encode()
        span.parent_span_id = parent
        span.name = name
        span.start_time_unix_nano = start + i * 1000
        span.end_time_unix_nano = start + 1_000_000
        attr = span.attributes.add()
        attr.key = "bench.index"
        attr.value.int_value = i
    return request.SerializeToString()


def _login_form(ctx: Context, password: str) -> tuple[dict[str, str], str]:
    """The login page's CSRF cookie and a filled-in form body (the token may be reused until it expires)."""
    page = httpx.get(ctx.url + "/login", timeout=30)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    cookie = "; ".join(f"{k}={v}" for k, v in page.cookies.items())
    body = httpx.QueryParams({"csrf_token": token, "next": "/", "username": "bench", "password": password})
    return {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded", "Origin": ctx.url}, str(body)


def _curl(args: list[str], headers: dict[str, str]) -> str:
    """Run curl (no retries, fail on HTTP errors) and return what its ``-w`` printed."""
    import subprocess

    command = ["curl", "-sS", "--fail", "-H", "Expect:", *(a for k, v in headers.items() for a in ("-H", f"{k}: {v}")),
               *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"curl failed ({done.returncode}): {done.stderr.strip()[:200]}")
    return done.stdout


# The 100 MiB transfers are driven by curl when it is installed: a Python client on the same two cores
# spends more CPU per byte than the server, and would measure itself (httpx is the fallback).
USE_CURL = shutil.which("curl") is not None


def _put_big(ctx: Context) -> Callable[[], None]:
    client = httpx.Client(timeout=300)
    counter = [0]

    def chunks():
        with open(ctx.big_file, "rb") as fh:
            while block := fh.read(1 << 20):
                yield block

    def one() -> None:
        counter[0] += 1
        path = f"{ARTIFACTS}/{ctx.experiment_id}/{ctx.write_run_ids[0]}/artifacts/big-{counter[0] % 4}.bin"
        if USE_CURL:
            _curl(["-T", str(ctx.big_file), "-o", "/dev/null", ctx.url + path], ctx.user_headers)
            return
        response = client.put(ctx.url + path, content=chunks(), headers=ctx.user_headers)
        response.raise_for_status()

    return one


def _get_big(ctx: Context) -> Callable[[], None]:
    client = httpx.Client(timeout=300)

    def one() -> None:
        url = f"{ctx.url}{ARTIFACTS}/{ctx.big_artifact_path}"
        if USE_CURL:
            size = int(float(_curl(["-o", "/dev/null", "-w", "%{size_download}", url], ctx.user_headers)))
        else:
            size = 0
            with client.stream("GET", url, headers=ctx.user_headers) as r:
                r.raise_for_status()
                for block in r.iter_raw(1 << 20):
                    size += len(block)
        if size != BIG_FILE_MIB << 20:
            raise RuntimeError(f"downloaded {size} bytes")

    return one


def build(name: str, ctx: Context, user_password: str) -> Load:
    """The load of scenario ``name``."""
    ts = "1700000000000"
    json_headers = {"Content-Type": "application/json"}
    if name == "log-batch":
        bodies = [json.dumps({"run_id": r, "metrics": [
            {"key": f"load{k}", "value": 0.5, "timestamp": ts, "step": "__N__"} for k in range(10)]})
            for r in ctx.write_run_ids]
        return Load("POST", [f"{A}/runs/log-batch"], bodies, json_headers)
    if name == "log-metric":
        bodies = [json.dumps({"run_id": r, "key": "single", "value": 1.5, "timestamp": ts, "step": "__N__"})
                  for r in ctx.write_run_ids]
        return Load("POST", [f"{A}/runs/log-metric"], bodies, json_headers)
    if name in ("get-run", "get-run-newconn"):
        return Load("GET", [f"{A}/runs/get?run_id={r}" for r in ctx.run_ids], [], {},
                    new_connections=name.endswith("newconn"))
    if name in ("search-runs", "search-runs-100k", "search-runs-100k-1c"):
        experiment = ctx.experiment_id if name == "search-runs" else ctx.big_experiment_id
        if experiment is None:
            raise SkipScenario(f"seed with --big-runs 100000 for {name}")
        body = json.dumps({"experiment_ids": [experiment], "filter": "metrics.m0 > 0.1",
                           "order_by": ["metrics.m1 DESC"], "max_results": 100})
        # -1c: the same search from one client at a time, so p50 is one search's latency, not the queue
        # in front of it (with 8 clients on 2 cores, p50 is about 8 x CPU per request / cores in use).
        return Load("POST", [f"{A}/runs/search"], [body], json_headers,
                    connections=1 if name.endswith("-1c") else None)
    if name == "search-experiments":
        return Load("POST", [f"{A}/experiments/search"], [json.dumps({"max_results": 100})], json_headers)
    if name == "artifact-put-1mib":
        paths = [f"{ARTIFACTS}/{ctx.experiment_id}/{r}/artifacts/put-{i}.bin"
                 for i in range(16) for r in ctx.write_run_ids]
        return Load("PUT", paths, ["x" * (1 << 20)], {"Content-Type": "application/octet-stream"},
                    mib_per_request=1)
    if name == "artifact-get-1mib":
        return Load("GET", [f"{ARTIFACTS}/{ctx.artifact_path}"], [], {}, mib_per_request=1)
    if name == "artifact-put-100mib":
        return Load(driver=_put_big(ctx), mib_per_request=BIG_FILE_MIB)
    if name == "artifact-get-100mib":
        return Load(driver=_get_big(ctx), mib_per_request=BIG_FILE_MIB)
    if name == "model-version-create":
        body = json.dumps({"name": ctx.model_name, "run_id": ctx.run_ids[0],
                           "source": f"mlflow-artifacts:/{ctx.experiment_id}/{ctx.run_ids[0]}/artifacts/model"})
        return Load("POST", [f"{A}/model-versions/create"], [body], json_headers)
    if name == "otlp-traces":
        return Load("POST", ["/v1/traces"], [_otlp_body()],
                    {"Content-Type": "application/x-protobuf", "x-mlflow-experiment-id": ctx.experiment_id})
    if name == "login":
        headers, body = _login_form(ctx, user_password)
        return Load("POST", ["/login"], [body], headers)
    raise ValueError(f"unknown scenario {name!r}")


class SkipScenario(Exception):
    """The scenario cannot run with this seed or on this server."""


def drive(one: Callable[[], None], duration: int) -> WrkResult:
    """Call ``one`` sequentially for ``duration`` seconds (at least three times)."""
    latencies = []
    errors = 0
    start = time.monotonic()
    while time.monotonic() - start < duration or len(latencies) < 3:
        t = time.monotonic()
        try:
            one()
        except (httpx.HTTPError, RuntimeError):
            errors += 1
        latencies.append(time.monotonic() - t)
    elapsed = time.monotonic() - start
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    # An exception is an attempt without an answer (wrk's errors), so it is not one of the requests.
    return WrkResult(len(latencies) - errors, elapsed, statistics.median(latencies) * 1000, p99 * 1000, errors, 0)


def copy_throughput(source: Path, workdir: Path, repeat: int = 3) -> float:
    """MiB/s of ``cp`` of ``source`` to another file on the same disk (the median of a few copies)."""
    import subprocess

    times = []
    target = workdir / "cp-target.bin"
    for _ in range(repeat):
        t = time.monotonic()
        subprocess.run(["cp", str(source), str(target)], check=True)
        times.append(time.monotonic() - t)
        target.unlink()
    return (source.stat().st_size / 2**20) / statistics.median(times)
