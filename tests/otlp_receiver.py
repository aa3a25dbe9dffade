"""A real OTLP/HTTP logs endpoint for tests: a threaded HTTP server that decodes what it receives.

It parses each POST body with opentelemetry-proto's ``ExportLogsServiceRequest`` (a body that does not
parse fails the test through ``errors``), keeps the raw bytes (to search them for secrets), and answers
with the status the test sets (200 by default; 503 to play a collector that is down).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)


@dataclass
class Received:
    """What the receiver got: decoded requests, raw bodies, request headers, parse errors."""

    requests: list[ExportLogsServiceRequest] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    status: int = 200
    lock: threading.Lock = field(default_factory=threading.Lock)

    def log_records(self) -> list:
        """Every LogRecord received, in order."""
        with self.lock:
            return [r for req in self.requests for rl in req.resource_logs for sl in rl.scope_logs
                    for r in sl.log_records]

    def documents(self) -> list[dict]:
        """Each LogRecord's body: the ECS document."""
        return [json.loads(r.body.string_value) for r in self.log_records()]


@contextmanager
def otlp_receiver(path: str = "/v1/logs") -> Iterator[tuple[str, Received]]:
    """Run a receiver on a free loopback port; yields (endpoint URL, Received)."""
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with received.lock:
                received.bodies.append(body)
                received.headers.append(dict(self.headers.items()))
                status = received.status
            if self.path != path or self.headers.get("Content-Type") != "application/x-protobuf":
                received.errors.append(f"unexpected {self.path} {self.headers.get('Content-Type')}")
            elif status == 200:
                try:
                    request = ExportLogsServiceRequest.FromString(body)
                except DecodeError as exc:
                    received.errors.append(f"not an ExportLogsServiceRequest: {exc}")
                else:
                    with received.lock:
                        received.requests.append(request)
            answer = ExportLogsServiceResponse().SerializeToString() if status == 200 else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{path}", received
    finally:
        server.shutdown()
        server.server_close()
