"""Which model version sources the registry accepts.

A version's source is later turned into a download location and, for sources under this server's
artifact root, into files it serves (GET /model-versions/get-artifact). MLflow has had several
advisories here (local file read through ``file:`` or relative sources, path traversal through
``..`` and its encodings), so a source is refused unless it is one of:

- ``runs:/<run_id>/<path>`` whose run id equals the request's ``run_id``;
- ``models:/<model_id>`` whose id equals the request's ``model_id``, or ``models:/<name>/<version>``
  (also ``@alias``, stage, ``latest``) naming an existing, non-prompt model version;
- ``mlflow-artifacts:`` (or this server's proxied-artifact HTTP route) inside the artifact location of
  the run named by ``run_id`` or the logged model named by ``model_id``;
- another remote URI (``s3://``, ``gs://``, ``https://``...) that the server never reads itself.

Local paths and ``file:`` URIs are always refused: this server only proxies artifacts.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from tracking.errors import MlflowError, invalid_parameter

_PROXY_ROUTE = ("api", "2.0", "mlflow-artifacts", "artifacts")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")


@dataclass(frozen=True)
class SourceKind:
    """A parsed source: its scheme family and the ids or path parts it names."""

    kind: str  # "runs" | "models_id" | "models_name" | "proxied" | "remote"
    run_id: str | None = None
    model_id: str | None = None
    model_name: str | None = None
    model_ref: str | None = None  # version number, stage, "latest" or "@alias"
    parts: tuple[str, ...] = ()  # proxied sources: the decoded path parts under the artifact root


def refuse(source: str, reason: str):
    """The 400 answer for an unacceptable source."""
    shown = source if len(source) <= 200 else source[:200] + "..."
    return invalid_parameter(f"Invalid model version source: '{shown}'. {reason}")


def _fully_unquoted(value: str) -> str:
    # Decode until stable so that %252e%252e (double-encoded '..') is seen as '..'. Bounded: each
    # round shortens the string.
    for _ in range(10):
        decoded = urllib.parse.unquote_plus(value)
        if decoded == value:
            return value
        value = decoded
    return value


def _check_no_traversal(source: str) -> None:
    decoded = _fully_unquoted(source)
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in decoded):
        raise refuse(source, "Sources cannot contain control characters.")
    if "\\" in decoded:
        raise refuse(source, "Sources cannot contain backslashes.")
    # Checked on the whole decoded URI (not only its path), so no part of it can carry a relative step.
    if any(part in ("..", ".") for part in decoded.split("/")):
        raise refuse(source, "An absolute path must be provided without relative path references present.")
    if decoded.count("/") != source.count("/"):
        # An encoded slash (%2f) would let one path part turn into several after decoding.
        raise refuse(source, "Sources cannot contain encoded path separators.")


def _decoded_parts(path: str) -> tuple[str, ...]:
    return tuple(_fully_unquoted(p) for p in path.split("/") if p)


def parse_source(source: str) -> SourceKind:
    """Classify a non-prompt source, refusing local paths and traversal; ids are checked by the caller."""
    if source.strip() == "":
        raise invalid_parameter("Missing value for required parameter 'source'.")
    _check_no_traversal(source)
    match = _SCHEME.match(source)
    scheme = match.group(1).lower() if match else ""
    # A one-letter "scheme" is a Windows drive (C:\...); no scheme is a local path.
    if scheme in ("", "file", "local") or len(scheme) == 1:
        raise refuse(source, "Local filesystem paths and file: URIs are not accepted; this server only "
                             "registers models stored in remote or proxied artifact storage.")
    parsed = urllib.parse.urlsplit(source)
    if scheme == "runs":
        if parsed.netloc:
            raise refuse(source, "The run_id request parameter must identify the resource that contains "
                                 "the source.")
        parts = [p for p in parsed.path.split("/") if p]
        if not parts:
            raise refuse(source, "A runs:/ source must be runs:/<run_id>/<path>.")
        return SourceKind("runs", run_id=parts[0], parts=tuple(parts[1:]))
    if scheme == "models":
        return _parse_models_source(source, parsed)
    if scheme == "mlflow-artifacts":
        return SourceKind("proxied", parts=_decoded_parts(parsed.path))
    if scheme in ("http", "https"):
        parts = _decoded_parts(parsed.path)
        for i in range(len(parts) - len(_PROXY_ROUTE) + 1):
            if parts[i:i + len(_PROXY_ROUTE)] == _PROXY_ROUTE:
                return SourceKind("proxied", parts=parts[i + len(_PROXY_ROUTE):])
    return SourceKind("remote")


def _parse_models_source(source: str, parsed: urllib.parse.SplitResult) -> SourceKind:
    if parsed.netloc:
        raise refuse(source, "Registered model sources must use the active model registry.")
    path = parsed.path
    parts = path.lstrip("/").split("/") if path.startswith("/") else []
    if not parts or len(parts) > 2 or parts[0].strip() == "":
        raise refuse(source, "A models:/ source must be models:/<model_id>, models:/<name>/<version> "
                             "or models:/<name>@<alias>.")
    if len(parts) == 2:
        if parts[1].strip() == "":
            raise refuse(source, "A models:/ source must name a version, stage or alias.")
        return SourceKind("models_name", model_name=parts[0], model_ref=parts[1])
    if "@" in parts[0]:
        name, _, alias = parts[0].rpartition("@")
        if not name or not alias:
            raise refuse(source, "A models:/ source must name a version, stage or alias.")
        return SourceKind("models_name", model_name=name, model_ref="@" + alias)
    return SourceKind("models_id", model_id=parts[0])


def within(parts: tuple[str, ...], root_parts: tuple[str, ...]) -> bool:
    """Whether a path (as decoded parts) lies inside a root (also as parts)."""
    return bool(root_parts) and parts[:len(root_parts)] == root_parts


def proxied_parts(uri: str) -> tuple[str, ...] | None:
    """The decoded path parts of an ``mlflow-artifacts:`` URI (or proxied HTTP URI), else None."""
    try:
        kind = parse_source(uri)
    except MlflowError:  # any refusal means "not a servable proxied location"
        return None
    return kind.parts if kind.kind == "proxied" else None
