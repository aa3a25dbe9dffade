"""What the S3, GCS and Azure Blob repositories share: a flat namespace of objects under a key prefix.

An object store has no directories, only names. Every backend maps a checked
:class:`~tracking.artifacts.paths.ArtifactPath` to the name ``<prefix>/<canonical path>``, lists a
"directory" as a name prefix ending in ``/``, and turns every storage failure into one 503 whose details go
to the log only. :class:`ObjectStoreRepository` holds those rules once; a backend supplies only its SDK calls
(the ``_sdk_*`` methods), which may raise anything: the base class translates.

The URI parsing shared by ``s3://``, ``gs://`` and ``wasbs://`` lives here too: a query string or fragment is
refused, the path must be a plain relative prefix (no ``..``, empty or encoded segment), and a netloc that
may hold credentials is never echoed.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol, TypeVar
from urllib.parse import SplitResult

from tracking.artifacts.paths import ArtifactPath, invalid_path, split_relative_path
from tracking.artifacts.repository import ArtifactEntry, ArtifactReader, ArtifactWriter
from tracking.errors import MlflowError, invalid_parameter, not_found

UNAVAILABLE = "The artifact store is temporarily unavailable."
_NOT_NAMES = ("", ".", "..")  # a "folder" placeholder object ("dir/") written by other tools is not a file

T = TypeVar("T")


def store_unavailable(log: logging.Logger, what: str, exc: BaseException, detail: object = None) -> MlflowError:
    """503 for a storage failure; ``what`` (service and action) and the error's class go to the log.

    Never the exception's text unless the backend passes a ``detail`` it knows to be safe: SDK messages may
    quote URLs that are bearer capabilities (GCS upload sessions, SAS-signed Azure URLs).
    """
    if detail is None:
        log.warning("%s failed: %s", what, type(exc).__name__)
    else:
        log.warning("%s failed: %s: %s", what, type(exc).__name__, detail)
    return MlflowError(UNAVAILABLE, "TEMPORARILY_UNAVAILABLE")


@contextlib.contextmanager
def translated(unavailable: Callable[[str, BaseException], MlflowError], action: str) -> Iterator[None]:
    """Let mlgate's own errors through; turn any other failure of an SDK call into ``unavailable``'s 503."""
    try:
        yield
    except MlflowError:
        raise
    except Exception as exc:
        raise unavailable(action, exc) from None


def uri_prefix_problems(parts: SplitResult, *, query_hint: str = "") -> tuple[str, list[str]]:
    """The canonical key prefix of a store URI's path, and the problems with its path, query and fragment."""
    problems = []
    if parts.query or parts.fragment:
        problems.append("a query string or fragment is not allowed" + query_hint)
    try:
        segments = split_relative_path(parts.path.strip("/"))
    except MlflowError as exc:
        problems.append(f"the prefix is not a plain relative path: {exc.message}")
        segments = ()
    return "/".join(segments), problems


def bucket_netloc_problems(netloc: str, *, credentials: str, missing: str,
                           bucket_problem: Callable[[str], str | None]) -> list[str]:
    """Problems with a bucket named as a URI's netloc; the netloc is echoed only when it cannot hold a secret."""
    if "@" in netloc or ":" in netloc:
        return [credentials]
    if not netloc:
        return [missing]
    problem = bucket_problem(netloc)
    return [problem] if problem else []


def parsed_or_raise(parsed: tuple[T | None, list[str]]) -> T:
    """The destination from a ``parse_*_destination`` answer, or ValueError listing every problem."""
    destination, problems = parsed
    if destination is None:
        raise ValueError("invalid artifact destination: " + "; ".join(problems))
    return destination


@dataclass(frozen=True)
class BucketDestination:
    """A bucket and a key prefix ('' for the bucket's top level)."""

    bucket: str
    prefix: str

    def key(self, relative: str) -> str:
        """The object name of a canonical root-relative path."""
        return prefixed_key(self.prefix, relative)


class KeyedDestination(Protocol):
    """A bucket or container and the key prefix the server owns in it."""

    prefix: str

    def key(self, relative: str) -> str:
        """The object name of a canonical root-relative path."""


def prefixed_key(prefix: str, relative: str) -> str:
    """``<prefix>/<relative>``, or ``relative`` when the store's top level is the root."""
    return f"{prefix}/{relative}" if prefix else relative


class ObjectStoreRepository:
    """Artifacts under one key prefix of an object store; directories are name prefixes.

    Subclasses set ``destination`` and implement the ``_sdk_*`` methods with their SDK; names passed to them
    are always built here from checked paths.
    """

    destination: KeyedDestination

    # --- the SDK calls a backend supplies --------------------------------------------------------------

    def _sdk_children(self, prefix: str) -> Iterable[tuple[str, bool, int | None]]:
        """One ``delimiter='/'`` listing below ``prefix``, every page: (full name, is a prefix, size)."""
        raise NotImplementedError

    def _sdk_below(self, prefix: str) -> Iterable[tuple[str, int]]:
        """Every object whose name starts with ``prefix`` ('' for the whole store): (full name, size)."""
        raise NotImplementedError

    def _sdk_any_below(self, prefix: str) -> bool:
        """Whether at least one object name starts with ``prefix``."""
        raise NotImplementedError

    def _sdk_exists(self, key: str) -> bool:
        """Whether an object has exactly this name."""
        raise NotImplementedError

    def _sdk_open(self, key: str) -> ArtifactReader | None:
        """A reader of the object, or None when there is none."""
        raise NotImplementedError

    def _sdk_writer(self, key: str) -> ArtifactWriter:
        """An upload to ``key`` that publishes nothing before its commit."""
        raise NotImplementedError

    def _sdk_remove(self, keys: Iterable[str]) -> None:
        """Delete these objects; one already gone is not an error."""
        raise NotImplementedError

    def _unavailable(self, action: str, exc: BaseException) -> MlflowError:
        """The 503 for a failed SDK call (a backend names its service and what is safe to log)."""
        raise NotImplementedError

    def _key_problem(self, key: str) -> str | None:
        """Why the store cannot hold an object of this name (its length limit), or None."""
        return None

    # --- the shared rules ----------------------------------------------------------------------------------

    def _call(self, action: str, call: Callable[..., T], *args) -> T:
        with translated(self._unavailable, action):
            return call(*args)

    def _iterate(self, action: str, listing: Callable[[str], Iterable[T]], prefix: str) -> Iterator[T]:
        # The listing is called inside the block: an SDK may send its first request before it yields.
        with translated(self._unavailable, action):
            yield from listing(prefix)

    def _key(self, location: ArtifactPath) -> str:
        key = self.destination.key(location.path)
        problem = self._key_problem(key)
        if problem is not None:
            raise invalid_path(problem)
        return key

    def _is_directory(self, key: str) -> bool:
        return self._call("listing", self._sdk_any_below, key + "/")

    def _is_file(self, key: str) -> bool:
        return self._call("lookup", self._sdk_exists, key)

    def list_dir(self, location: ArtifactPath) -> list[ArtifactEntry]:
        """The entries directly under a directory (a ``delimiter='/'`` listing, every page)."""
        prefix = self._key(location) + "/"
        entries = []
        for name, is_dir, size in self._iterate("listing", self._sdk_children, prefix):
            relative = name[len(prefix):].rstrip("/") if is_dir else name[len(prefix):]
            if relative not in _NOT_NAMES:
                entries.append(ArtifactEntry(relative, is_dir, None if is_dir else int(size or 0)))
        return sorted(entries, key=lambda e: e.name)

    def open_reader(self, location: ArtifactPath) -> ArtifactReader:
        """Start reading an object; 404 when missing, 400 for a directory."""
        key = self._key(location)
        reader = self._call("download", self._sdk_open, key)
        if reader is None:
            if self._is_directory(key):
                raise invalid_parameter(f"Artifact path refers to a directory, not a file: '{location.inner}'")
            raise not_found(f"Artifact '{location.inner}' does not exist.")
        return reader

    def open_writer(self, location: ArtifactPath) -> ArtifactWriter:
        """Start an upload; 400 when the location is a directory or below a file, as on local storage."""
        key = self._key(location)
        if self._is_directory(key):
            raise invalid_parameter(f"Artifact path refers to a directory, not a file: '{location.inner}'")
        # Parents inside the owner's artifacts directory must not be files (the owner's root is a prefix).
        for depth in range(location.owner_depth + 1, len(location.segments)):
            if self._is_file(self.destination.key("/".join(location.segments[:depth]))):
                raise invalid_path("a parent of the destination is a file")
        return self._sdk_writer(key)

    def delete(self, location: ArtifactPath) -> None:
        """Remove the object and everything below it as a directory; nothing happens when both are absent."""
        key = self._key(location)
        names = [key] if self._is_file(key) else []
        below = (name for name, _ in self._iterate("listing", self._sdk_below, key + "/"))
        self._call("delete", self._sdk_remove, itertools.chain(names, below))

    # --- reading a tree by raw relative names (mlgate import-mlflow's source side) ---------------------

    def walk(self, segments: tuple[str, ...]) -> Iterator[tuple[str, int]]:
        """Every object below a directory given as checked segments: (name relative to it, size).

        The names come from the store as they are: the caller checks each before using it as a path.
        """
        base = self.destination.key("/".join(segments)) if segments else self.destination.prefix
        prefix = base + "/" if base else ""
        for name, size in self._iterate("listing", self._sdk_below, prefix):
            yield name[len(prefix):], size

    def open_segments(self, segments: tuple[str, ...]) -> ArtifactReader:
        """Read the object at checked segments below the root (404 when missing)."""
        reader = self._call("download", self._sdk_open, self.destination.key("/".join(segments)))
        if reader is None:
            raise not_found("Artifact does not exist.")
        return reader

