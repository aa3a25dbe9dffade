"""Drive wrk with a generated Lua script and read its summary back as JSON."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

# In a body, replaced by 16 ASCII digits unique per request across wrk's threads (e.g. an OTLP trace id).
UNIQUE_16 = b"@@UNIQUEID16@@@@"

LUA_TEMPLATE = r"""
local method = %(method)s
local paths = %(paths)s
local bodies = %(bodies)s
local headers = %(headers)s
local counter = 0
local threads_started = 0
setup = function(thread)
  threads_started = threads_started + 1
  thread:set("thread_id", threads_started)
end
request = function()
  counter = counter + 1
  local k = (counter %% #paths) + 1
  local body = bodies[(counter %% #bodies) + 1]
  if body ~= nil and body ~= "" then
    body = string.gsub(body, "__N__", tostring(counter))
    body = string.gsub(body, "@@UNIQUEID16@@@@", string.format("%%02d%%014d", thread_id or 0, counter))
  else
    body = nil
  end
  return wrk.format(method, paths[k], headers, body)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON{"requests":%%d,"duration_us":%%d,"p50_us":%%d,"p99_us":%%d,"errors":%%d,"non2xx":%%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""


def _lua_string(value: str | bytes) -> str:
    if isinstance(value, str) and "]==]" not in value:
        return "[==[" + value + "]==]"
    data = value if isinstance(value, bytes) else value.encode()
    # Binary-safe: printable ASCII as is, everything else as a decimal escape.
    out = []
    for b in data:
        if 32 <= b < 127 and b not in (34, 92):
            out.append(chr(b))
        else:
            out.append(f"\\{b:03d}")
    return '"' + "".join(out) + '"'


def _lua_list(values: list) -> str:
    return "{" + ",".join(_lua_string(v) for v in values) + "}"


@dataclass
class WrkResult:
    """One scenario's load figures.

    ``requests`` got an answer, ``non2xx`` of them an error status; ``errors`` got none (connect, read, write
    or timeout errors, which wrk does not count as requests).
    """

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    non2xx: int

    @property
    def successful(self) -> int:
        """Requests answered with a 2xx/3xx status: the only ones throughput counts."""
        return max(self.requests - self.non2xx, 0)

    @property
    def rps(self) -> float:
        """Successful requests per second."""
        return self.successful / self.seconds if self.seconds else 0.0

    @property
    def error_rate(self) -> float:
        """Failed attempts (error status or no answer) over all attempts."""
        attempts = self.requests + self.errors
        return (self.non2xx + self.errors) / attempts if attempts else 1.0


def wrk_available() -> bool:
    """Whether the wrk binary is installed (apt-get install wrk)."""
    return shutil.which("wrk") is not None


def run_wrk(base_url: str, method: str, paths: list[str], bodies: list, headers: dict[str, str],
            *, duration: int, connections: int, threads: int = 2, new_connections: bool = False) -> WrkResult:
    """Run wrk for ``duration`` seconds; bodies may contain ``__N__`` (a counter) or :data:`UNIQUE_16`."""
    headers = dict(headers)
    if new_connections:
        headers["Connection"] = "close"
    lua_headers = "{" + ",".join(f"[ {_lua_string(k)} ]={_lua_string(v)}" for k, v in headers.items()) + "}"
    script = LUA_TEMPLATE % {
        "method": _lua_string(method), "paths": _lua_list(paths), "bodies": _lua_list(bodies or [""]),
        "headers": lua_headers,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(script)
        script_path = fh.name
    try:
        proc = subprocess.run(
            ["wrk", f"-t{min(threads, connections)}", f"-c{connections}", f"-d{duration}s", "--timeout", "30s",
             "-s", script_path, base_url],
            capture_output=True, text=True, timeout=duration + 120, check=False,
        )
    finally:
        Path(script_path).unlink(missing_ok=True)
    for line in proc.stdout.splitlines():
        if line.startswith("WRKJSON"):
            data = json.loads(line[len("WRKJSON"):])
            return WrkResult(data["requests"], data["duration_us"] / 1e6, data["p50_us"] / 1000,
                             data["p99_us"] / 1000, data["errors"], data["non2xx"])
    raise RuntimeError(f"wrk gave no summary:\n{proc.stdout}\n{proc.stderr}")
