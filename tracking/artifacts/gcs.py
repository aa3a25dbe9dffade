"""Artifacts in a Google Cloud Storage bucket, through google-cloud-storage (``pip install 'mlgate[gcs]'``).

Keys are ``<prefix>/<canonical artifact path>``, built only from paths that passed
:mod:`tracking.artifacts.paths`, exactly as in :mod:`tracking.artifacts.s3`. Uploads are streamed: a small
file is one upload request; a larger one a resumable upload session fed chunk by chunk (memory stays at
about one chunk), cancelled on any failure so no object appears. Downloads are ranged reads of one object
generation, one chunk at a time, so an object replaced meanwhile fails the download instead of mixing two
versions. The SDK is blocking; the endpoints call these methods on worker threads.

Credentials are Application Default Credentials, found by the SDK as usual (``GOOGLE_APPLICATION_CREDENTIALS``,
``gcloud auth application-default login``, an attached service account or workload identity). With
``STORAGE_EMULATOR_HOST`` set, the SDK talks to that emulator without credentials (tests). Neither a
credential nor a resumable session URI (itself a bearer capability) is ever logged or put in an error.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from tracking.artifacts.object_store import (
    BucketDestination,
    ObjectStoreRepository,
    bucket_netloc_problems,
    parsed_or_raise,
    store_unavailable,
    uri_prefix_problems,
)
from tracking.errors import MlflowError

EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
# Resumable upload chunks must be multiples of 256 KiB (except the last one).
CHUNK_QUANTUM = 256 * 1024
DEFAULT_CHUNK_BYTES = 8 * 1024 * 1024
MAX_NAME_BYTES = 1024  # object names: at most 1,024 bytes of UTF-8
# (connect, read) seconds for every call to the JSON API.
TIMEOUT = (10, 60)
# Bucket names: lowercase letters, digits, '-', '_' and '.'; 3-63 characters, or up to 222 with dots
# (each dot-separated part at most 63). cloud.google.com/storage/docs/buckets#naming
_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")
_SESSION_DONE = (200, 201)
_PIECE = 1024 * 1024  # a chunk goes out in pieces of this size, each copied only while it is sent
_INCOMPLETE = 308  # "Resume Incomplete": the chunk was stored, more is expected

logger = logging.getLogger("mlgate.artifacts.gcs")


@dataclass(frozen=True)
class GcsDestination(BucketDestination):
    """A bucket and a key prefix ('' for the bucket's top level), from ``gs://bucket/prefix``."""


def _bucket_problem(name: str) -> str | None:
    valid = (_BUCKET.fullmatch(name) and ".." not in name and not name.startswith("goog")
             and (len(name) <= 63 or "." in name) and all(len(part) <= 63 for part in name.split(".")))
    if valid:
        return None
    return (f"'{name}' is not a valid bucket name (3-63 lowercase letters, digits, '-', '_', '.'; "
            "not starting with 'goog')")


def parse_gcs_destination(uri: str) -> tuple[GcsDestination | None, list[str]]:
    """The destination named by ``gs://bucket[/prefix]``, or None and every problem with the URI."""
    parts = urlsplit(uri)
    if parts.scheme != "gs":
        return None, ["the URI must start with gs://"]
    problems = bucket_netloc_problems(
        parts.netloc, bucket_problem=_bucket_problem,
        credentials="credentials and ports do not belong in a gs:// URI; use Application Default Credentials "
                    "(GOOGLE_APPLICATION_CREDENTIALS or an attached service account)",
        missing="the bucket name is missing (expected gs://<bucket>/<prefix>)")
    prefix, more = uri_prefix_problems(parts)
    problems += more
    if problems:
        return None, problems
    return GcsDestination(parts.netloc, prefix), []


def make_client():
    """A storage client with Application Default Credentials (or none, against ``STORAGE_EMULATOR_HOST``)."""
    from google.cloud.storage import Client

    return Client()


def _unavailable(action: str, exc: Exception) -> MlflowError:
    """503 for a storage failure; the class of the error goes to the log, never a URL or credential."""
    return store_unavailable(logger, f"GCS {action}", exc)


def _where() -> str:
    emulator = os.environ.get(EMULATOR_ENV)
    if not emulator:
        return "Google Cloud Storage"
    parts = urlsplit(emulator if "://" in emulator else f"http://{emulator}")
    port = f":{parts.port}" if parts.port else ""
    return f"the storage emulator at {parts.scheme}://{parts.hostname or ''}{port}"


def destination_problems(uri: str, *, client=None) -> list[str]:
    """Every problem with a ``gs://`` destination: its syntax, then whether the bucket can be listed."""
    destination, problems = parse_gcs_destination(uri)
    if destination is None:
        return problems
    try:
        from google.api_core import exceptions as api
        from google.auth import exceptions as auth
    except ImportError:
        return ["gs:// needs the Google Cloud Storage SDK: pip install 'mlgate[gcs]'"]
    where = _where()
    try:
        client = client or make_client()
        # Listing needs only storage.objects.list, which serving artifacts needs anyway; buckets.get (a
        # bucket's metadata) is not granted by roles/storage.objectAdmin. No retries: fail fast at startup.
        probe = client.list_blobs(destination.bucket, prefix=destination.key(""), max_results=1,
                                  timeout=TIMEOUT, retry=None)
        next(iter(probe), None)
    except auth.DefaultCredentialsError:
        return ["no Google Cloud credentials found (set GOOGLE_APPLICATION_CREDENTIALS, run "
                "`gcloud auth application-default login`, or attach a service account)"]
    except auth.RefreshError:
        return [f"the Google Cloud credentials were refused when contacting {where}"]
    except api.NotFound:
        return [f"bucket '{destination.bucket}' does not exist at {where}"]
    except (api.Forbidden, api.Unauthorized):
        return [f"access to bucket '{destination.bucket}' at {where} was denied (the credentials need "
                "storage.objects.list, get, create and delete on it)"]
    except api.GoogleAPICallError as exc:
        return [f"bucket '{destination.bucket}' at {where} answered with error {exc.code or 'unknown'}"]
    except (auth.TransportError, OSError, ValueError) as exc:
        # requests' ConnectionError and Timeout are OSErrors.
        return [f"{where} is not reachable ({type(exc).__name__}); check {EMULATOR_ENV} and the network"
                if os.environ.get(EMULATOR_ENV) else f"{where} is not reachable ({type(exc).__name__})"]
    return []


class _BlobReader:
    """One object generation read in ranged chunks."""

    def __init__(self, blob, chunk_bytes: int):
        # if_generation_match: every ranged read must see the generation whose size was announced.
        self._file = blob.open("rb", chunk_size=chunk_bytes, if_generation_match=blob.generation)
        self.size = int(blob.size or 0)

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes."""
        return self._file.read(n)

    def close(self) -> None:
        """Drop the buffered chunk."""
        self._file.close()


class _ResumableWriter:
    """Buffers up to one chunk; switches to a resumable upload session when the data outgrows it.

    The session protocol (cloud.google.com/storage/docs/performing-resumable-uploads): each chunk is a PUT
    to the session URI with ``Content-Range: bytes first-last/*``, answered 308 with the range persisted
    so far; the last one names the total and creates the object. A DELETE cancels the session.
    """

    def __init__(self, repository: GcsArtifactRepository, key: str):
        self._repository = repository
        self._key = key
        self._buffer = bytearray()
        self._session: str | None = None
        self._sent = 0
        self._finished = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append bytes, sending every full chunk."""
        self._buffer += data
        chunk = self._repository.chunk_bytes
        while len(self._buffer) > chunk:  # keep the last bytes back: the final request must carry some
            with memoryview(self._buffer) as whole:  # no copy of the chunk; released before the buffer shrinks
                self._send(whole[:chunk], total=None)
            del self._buffer[:chunk]

    def _open_session(self) -> None:
        blob = self._repository.bucket.blob(self._key)
        try:
            url = blob.create_resumable_upload_session(content_type="application/octet-stream",
                                                       client=self._repository.client, timeout=TIMEOUT)
        except Exception as exc:
            raise _unavailable("upload", exc) from None
        # The session URI comes from the storage API's answer; data goes nowhere else than its host.
        if _origin(url) != _origin(self._repository.client.api_endpoint):
            raise _unavailable("upload", ValueError("the upload session is on another host"))
        self._session = url

    def _send(self, data: bytes | memoryview, total: int | None) -> None:
        if self._session is None:
            self._open_session()
        view = memoryview(data)
        for _attempt in range(5):
            last = self._sent + len(view) - 1
            if len(view):
                content_range = f"bytes {self._sent}-{last}/{'*' if total is None else total}"
            else:
                content_range = f"bytes */{total}"
            try:
                answer = self._repository.http.put(
                    self._session, content=_once(view),
                    headers={"Content-Range": content_range, "Content-Length": str(len(view))})
            except Exception as exc:
                raise _unavailable("upload", exc) from None
            if answer.status_code in _SESSION_DONE and total is not None:
                self._sent = total
                return
            if answer.status_code != _INCOMPLETE:
                raise _unavailable("upload", RuntimeError(f"HTTP {answer.status_code}"))
            persisted = _persisted(answer.headers.get("range"))
            if persisted < self._sent or persisted > last + 1:
                raise _unavailable("upload", RuntimeError("unexpected persisted range"))
            view = view[persisted - self._sent:]
            self._sent = persisted
            if not len(view) and total is None:
                return
        raise _unavailable("upload", RuntimeError("the storage kept only part of a chunk"))

    def commit(self) -> None:
        """Publish the object: one upload request, or the last chunk of the session."""
        if self._session is None:
            try:
                self._repository.bucket.blob(self._key).upload_from_string(
                    bytes(self._buffer), content_type="application/octet-stream", timeout=TIMEOUT)
            except Exception as exc:
                raise _unavailable("upload", exc) from None
        else:
            with memoryview(self._buffer) as whole:
                self._send(whole, total=self._sent + len(self._buffer))
        self._buffer = bytearray()
        self._finished = True

    def abort(self) -> None:
        """Drop the buffer and cancel the session, so the object is never created."""
        if self._finished:
            return
        self._finished = True
        self._buffer = bytearray()
        if self._session is not None:
            try:
                self._repository.http.delete(self._session)  # answered 499 by Cloud Storage
            except Exception as exc:
                # An unfinished session creates no object and expires after a week.
                logger.warning("GCS cancel of a resumable upload failed: %s", type(exc).__name__)


def _once(view: memoryview) -> Iterator[bytes]:
    """The request body as a one-shot stream of small pieces, so no copy of the chunk is made or kept.

    Given as ``content=bytes``, the chunk stays referenced by the request, which an httpx response and its
    stream keep in a reference cycle: every sent chunk then lives until the garbage collector runs, and a
    100 MiB upload held most of the file in memory.
    """
    for start in range(0, len(view), _PIECE):
        yield bytes(view[start:start + _PIECE])


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _persisted(range_header: str | None) -> int:
    """How many bytes a 308 answer says were stored (``Range: bytes=0-N``; absent: none)."""
    if not range_header:
        return 0
    match = re.fullmatch(r"bytes=0-([0-9]+)", range_header.strip())
    if match is None:
        raise _unavailable("upload", ValueError("malformed Range header"))
    return int(match.group(1)) + 1


class GcsArtifactRepository(ObjectStoreRepository):
    """Artifacts stored under one prefix of a GCS bucket; directories are name prefixes."""

    def __init__(self, destination: GcsDestination, client, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES):
        if chunk_bytes <= 0 or chunk_bytes % CHUNK_QUANTUM:
            raise ValueError("GCS resumable upload chunks must be a positive multiple of 256 KiB")
        import httpx

        self.destination = destination
        self.client = client
        self.bucket = client.bucket(destination.bucket)
        self.chunk_bytes = chunk_bytes
        # Resumable chunks go to the session URI, which authorizes them by itself.
        self.http = httpx.Client(timeout=httpx.Timeout(TIMEOUT[1], connect=TIMEOUT[0]), follow_redirects=False)

    @classmethod
    def from_uri(cls, uri: str) -> GcsArtifactRepository:
        """The repository for ``gs://bucket/prefix`` with Application Default Credentials."""
        return cls(parsed_or_raise(parse_gcs_destination(uri)), make_client())

    def _unavailable(self, action: str, exc: BaseException) -> MlflowError:
        return _unavailable(action, exc)

    def _key_problem(self, key: str) -> str | None:
        if len(key.encode()) > MAX_NAME_BYTES:
            return f"longer than the {MAX_NAME_BYTES} bytes an object name may have"
        return None

    def _blobs(self, prefix: str, *, delimiter: str | None = None, max_results: int | None = None):
        return self.client.list_blobs(self.bucket, prefix=prefix, delimiter=delimiter, max_results=max_results,
                                      timeout=TIMEOUT)

    def _sdk_children(self, prefix: str):
        listing = self._blobs(prefix, delimiter="/")
        for blob in listing:
            yield blob.name, False, int(blob.size or 0)
        # The prefixes are collected from the pages the loop above went through.
        for common in listing.prefixes:
            yield common, True, None

    def _sdk_below(self, prefix: str):
        for blob in self._blobs(prefix):
            yield blob.name, int(blob.size or 0)

    def _sdk_any_below(self, prefix: str) -> bool:
        return next(iter(self._blobs(prefix, max_results=1)), None) is not None

    def _sdk_exists(self, key: str) -> bool:
        return self.bucket.blob(key).exists(timeout=TIMEOUT)

    def _sdk_open(self, key: str) -> _BlobReader | None:
        blob = self.bucket.get_blob(key, timeout=TIMEOUT)
        return None if blob is None else _BlobReader(blob, self.chunk_bytes // 2)

    def _sdk_writer(self, key: str) -> _ResumableWriter:
        return _ResumableWriter(self, key)

    def _sdk_remove(self, keys) -> None:
        from google.api_core.exceptions import NotFound

        for key in keys:
            with contextlib.suppress(NotFound):  # removed concurrently
                self.bucket.delete_blob(key, timeout=TIMEOUT)
