"""The policy file's ``audit:`` section: signed checkpoints, retention, and export to a SIEM.

Refused at load, each problem naming its key: retention without a signing key (the pruned log's new start
could not be vouched for), an OTLP endpoint over plain HTTP to another host unless ``allow_plain_http`` says
so (records name users and addresses), credentials or a query in an endpoint URL (URLs end up in logs;
credentials go in ``headers``, as ``${ENV_VAR}`` secrets), and two sinks writing the same place.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from policies.file.fields import Secret

_LOOPBACK_NAMES = ("localhost", "localhost.", "ip6-localhost")
# RFC 9110 section 5.1: a field name is a token.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a name or an address) stays on this machine."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class CheckpointConfig(_Section):
    """Signed checkpoints of the chain's head (docs/governance.md#signed-checkpoints)."""

    signing_key_file: str | None = Field(
        None, description="an Ed25519 private key (PEM, PKCS#8, mode 0600) the server signs checkpoints with; "
        "keep it where the database's users cannot read it (`mlgate audit keygen` makes one)")
    signing_key: Secret | None = Field(
        None, description="the same key's PEM text, as a ${ENV_VAR} reference (instead of signing_key_file)")
    every_records: int = Field(1000, ge=1, le=10_000_000,
                               description="sign the head whenever the chain has grown by this many records")
    interval_seconds: int = Field(300, ge=5, le=86_400,
                                  description="and at this interval, when records were added since the last one")
    file: str | None = Field(
        None, description="append every checkpoint as one JSON line here (ship it off-host: `mlgate audit verify "
        "--checkpoints FILE` reads it back)")

    @model_validator(mode="after")
    def _one_key(self) -> CheckpointConfig:
        if self.signing_key_file is not None and self.signing_key is not None:
            raise ValueError("give signing_key_file or signing_key, not both")
        return self

    @property
    def enabled(self) -> bool:
        """Whether the server signs checkpoints at all."""
        return self.signing_key_file is not None or self.signing_key is not None


class JsonLinesSink(_Section):
    """Audit records as ECS-shaped JSON, one per line, appended to a file or written to stdout (``-``)."""

    type: Literal["jsonl"]
    path: str = Field(..., min_length=1, description="a file to append to, or - for standard output")


class OtlpSink(_Section):
    """Audit records as OpenTelemetry log records, POSTed (OTLP/HTTP, protobuf) to a collector."""

    type: Literal["otlp"]
    endpoint: str = Field(..., description="the collector's logs URL, e.g. https://otel.example:4318/v1/logs")
    headers: dict[str, Secret] = Field(default_factory=dict,
                                       description="request headers, each value a ${ENV_VAR} reference")
    timeout_seconds: float = Field(5.0, gt=0, le=60)
    allow_plain_http: bool = Field(False, description="allow http:// to a host other than this machine")

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value[:80]!r} is not an http:// or https:// URL")
        if parts.username is not None or parts.password is not None:
            raise ValueError("must not carry credentials (they would be logged with the URL); put them in headers")
        if parts.query or parts.fragment:
            raise ValueError("must not carry a query or fragment (put credentials in headers)")
        return value

    @field_validator("headers")
    @classmethod
    def _header_names(cls, value: dict) -> dict:
        bad = [name for name in value if not _HEADER_NAME.match(name) or name.lower() in ("content-type", "host")]
        if bad:
            raise ValueError(f"not header names mlgate may set: {', '.join(map(repr, bad))}")
        return value

    @model_validator(mode="after")
    def _plain_http(self) -> OtlpSink:
        host = urlsplit(self.endpoint).hostname or ""
        if urlsplit(self.endpoint).scheme == "http" and not is_loopback_host(host) and not self.allow_plain_http:
            raise ValueError(f"endpoint: plain http to {host} sends audit records (user names, addresses) "
                             "unencrypted: use https, or set allow_plain_http: true for a collector on a trusted "
                             "network")
        return self


Sink = Annotated[JsonLinesSink | OtlpSink, Field(discriminator="type")]


class AuditConfig(_Section):
    """The ``audit:`` section."""

    checkpoints: CheckpointConfig = CheckpointConfig()
    retention_days: int | None = Field(
        None, ge=1, le=36_500, description="delete records older than this many days (off: keep everything); "
        "needs a checkpoint signing key, which anchors the log's new start")
    export: tuple[Sink, ...] = Field((), description="where every audit record is streamed as it is written")
    export_queue_size: int = Field(10_000, ge=10, le=1_000_000,
                                   description="records waiting per sink; beyond it new records are dropped "
                                   "(counted and logged) rather than slowing requests")

    @model_validator(mode="after")
    def _retention_needs_a_key(self) -> AuditConfig:
        if self.retention_days is not None and not self.checkpoints.enabled:
            raise ValueError("retention_days needs checkpoints.signing_key_file (or signing_key): a pruned log "
                             "starts at a signed checkpoint, or its beginning could be cut off unnoticed")
        return self

    @model_validator(mode="after")
    def _distinct_sinks(self) -> AuditConfig:
        places = [s.path if isinstance(s, JsonLinesSink) else s.endpoint for s in self.export]
        if len(set(places)) != len(places):
            raise ValueError("export: two sinks write the same place")
        return self
