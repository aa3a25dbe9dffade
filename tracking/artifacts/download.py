"""HTTP responses that hand an artifact to a client without ever letting a browser render it inline."""

from __future__ import annotations

import mimetypes
import os
import unicodedata
from collections.abc import Iterator
from urllib.parse import quote

from starlette.responses import StreamingResponse

from tracking.artifacts.repository import ArtifactReader

# Bytes read and sent at a time: 4 MiB keeps a download's memory flat while the per-chunk overhead (a thread
# hop, an ASGI message) stays small (100 MiB: 1.45 -> 1.8-1.9 GiB/s against 1 MiB chunks, served to curl).
CHUNK_BYTES = 4 * 1024 * 1024

# Files MLflow's UI previews as text; MLflow's server sends these as text/plain (mime_type_utils).
_TEXT_EXTENSIONS = frozenset({
    "txt", "log", "err", "cfg", "conf", "cnf", "cf", "ini", "properties", "prop", "hocon", "toml", "yaml",
    "yml", "xml", "json", "js", "py", "py3", "csv", "tsv", "md", "rst", "ipynb",
})
_TEXT_NAMES = frozenset({"MLmodel", "MLproject"})
# RFC 5987 attr-char: what may appear unescaped in filename*=.
_ATTR_CHARS = "!#$&+-.^_`|~"


def content_type_for(name: str) -> str:
    """The Content-Type MLflow's server would send for a file of this name."""
    extension = os.path.splitext(name)[1].lstrip(".")
    if extension in _TEXT_EXTENSIONS or (not extension and name in _TEXT_NAMES):
        return "text/plain"
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return guessed or "application/octet-stream"


def content_disposition(name: str) -> str:
    """``attachment`` with the file name, RFC 6266; non-ASCII names get an RFC 5987 ``filename*``."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    fallback = "".join(ch if ch.isprintable() and ch not in '"\\' else "_" for ch in ascii_name) or "download"
    value = f'attachment; filename="{fallback}"'
    if fallback != name:
        value += f"; filename*=UTF-8''{quote(name, safe=_ATTR_CHARS)}"
    return value


def _chunks(reader: ArtifactReader) -> Iterator[bytes]:
    # Never send more than the announced Content-Length, even if the file grows meanwhile.
    remaining = reader.size
    try:
        while remaining > 0:
            chunk = reader.read(min(CHUNK_BYTES, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
    finally:
        reader.close()


def download_response(reader: ArtifactReader, name: str) -> StreamingResponse:
    """Stream an open artifact as an attachment that browsers must not sniff or render on this origin."""
    headers = {
        "Content-Length": str(reader.size),
        "Content-Disposition": content_disposition(name),
        # An HTML or SVG artifact must not run script on the server's origin (stored XSS).
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        # Private files: no browser or shared cache may keep a copy (SECURITY.md, "Sensitive data in caches").
        "Cache-Control": "no-store",
    }
    return StreamingResponse(_chunks(reader), media_type=content_type_for(name), headers=headers)
