"""Where ``mlgate import-mlflow`` reads MLflow's artifact files: a local directory or an object store.

MLflow's database names each run's artifact location itself (``mlflow-artifacts:/...`` for a server that
proxies artifacts, ``gs://...``, ``wasbs://...``, ``s3://...`` or a local path otherwise). Only files inside
the root given with ``--artifacts`` are read: a crafted location must not make the import copy other local
files (``/etc``...) or another bucket's objects into a run that someone else can download. Locally, symbolic
links are skipped for the same reason; in a store, every object name is checked as a path before use.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from tracking.artifacts.paths import split_relative_path
from tracking.artifacts.repository import ArtifactReader
from tracking.artifacts.storage import parse_store_uri, repository_for_root, store_scheme
from tracking.errors import MlflowError

SKIPPED_LINK = "symbolic links (not followed)"
SKIPPED_NAME = "file names mlgate refuses (control characters, reserved names)"
OUTSIDE = "the run's artifact location is outside --artifacts"


@dataclass(frozen=True)
class SourceFile:
    """One file of a run's artifact directory: its '/'-separated name inside it, its size, how to open it."""

    relative: str
    size: int
    open: Callable[[], ArtifactReader]


class _LocalFile:
    """A local file opened without following a link swapped in after the walk (``O_NOFOLLOW``)."""

    def __init__(self, path: str):
        self._handle = os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb")
        self.size = os.fstat(self._handle.fileno()).st_size

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes."""
        return self._handle.read(n)

    def close(self) -> None:
        """Close the file."""
        self._handle.close()


class LocalArtifactTree:
    """MLflow's artifacts in a local directory (its ``--artifacts-destination``, or ``./mlruns``)."""

    def __init__(self, root: str):
        self.root = Path(root).resolve()

    def locate(self, artifact_uri: str | None) -> Path | str:
        """The run's directory, or the reason it is not read."""
        parts = urlsplit(artifact_uri or "")
        if parts.scheme == "mlflow-artifacts":
            # The MLflow server's proxied artifacts: <artifacts destination>/<path>.
            candidate = self.root / unquote(parts.path).lstrip("/")
        elif parts.scheme in ("", "file") and not parts.netloc:
            candidate = Path(unquote(parts.path))
        else:
            return (f"their artifacts are in a '{parts.scheme}' store (give that store's root as --artifacts, "
                    "e.g. gs://<bucket>/<prefix>, to copy them)")
        resolved = candidate.resolve()
        if not resolved.is_relative_to(self.root):
            return OUTSIDE
        return resolved

    def files(self, location: Path, skip: Callable[[str], None]) -> Iterator[SourceFile]:
        """Every regular file below the run's directory; links are reported to ``skip``, never followed."""
        if not location.is_dir():
            return  # nothing was logged there
        for directory, subdirs, names in os.walk(location, followlinks=False):
            for name in sorted(subdirs):
                if os.path.islink(os.path.join(directory, name)):
                    skip(SKIPPED_LINK)
            for name in sorted(names):
                path = os.path.join(directory, name)
                if os.path.islink(path):
                    skip(SKIPPED_LINK)
                    continue
                relative = os.path.relpath(path, location).replace(os.sep, "/")
                yield SourceFile(relative, os.lstat(path).st_size, lambda path=path: _LocalFile(path))


class StoreArtifactTree:
    """MLflow's artifacts under an ``s3://``, ``gs://`` or ``wasbs://`` root, read through mlgate's backends."""

    def __init__(self, root: str):
        self.scheme = store_scheme(root)
        self.destination = parse_store_uri(root)
        if self.destination is None:  # the command checked the URI first; this is a programming error
            raise ValueError("not an object store root")
        self.repository = repository_for_root(root)

    def _same_store(self, other) -> bool:
        """Same bucket (or account and container) as the root, whatever the prefix."""
        return (type(other) is type(self.destination)
                and dataclasses.replace(other, prefix="") == dataclasses.replace(self.destination, prefix=""))

    def locate(self, artifact_uri: str | None) -> tuple[str, ...] | str:
        """The run's directory as checked segments below the root, or the reason it is not read."""
        parts = urlsplit(artifact_uri or "")
        if parts.scheme == "mlflow-artifacts":
            inner = unquote(parts.path).strip("/")
        elif parts.scheme == self.scheme:
            found = parse_store_uri(artifact_uri)
            if found is None or not self._same_store(found):
                return OUTSIDE
            root = self.destination.prefix
            if root and found.prefix != root and not found.prefix.startswith(root + "/"):
                return OUTSIDE
            inner = found.prefix[len(root):].strip("/")
        else:
            return (f"their artifacts are not in the --artifacts store (a '{parts.scheme or 'local'}' location); "
                    "import them with that location as --artifacts")
        try:
            return split_relative_path(inner) if inner else ()
        except MlflowError:
            return OUTSIDE

    def files(self, location: tuple[str, ...], skip: Callable[[str], None]) -> Iterator[SourceFile]:
        """Every object below the run's directory whose name is a path mlgate accepts."""
        for relative, size in self.repository.walk(location):
            if relative.endswith("/") and size == 0:
                continue  # a "folder" placeholder some consoles create; not a file
            try:
                segments = split_relative_path(relative)
            except MlflowError:
                skip(SKIPPED_NAME)
                continue
            yield SourceFile(relative, size, lambda full=(*location, *segments): self.repository.open_segments(full))


def open_artifact_tree(root: str | None) -> LocalArtifactTree | StoreArtifactTree | None:
    """The tree for ``--artifacts``: a local directory or an object store URI; None when not given."""
    if root is None:
        return None
    scheme = store_scheme(root)
    if scheme in (None, "file"):
        return LocalArtifactTree(root[len("file://"):] if scheme == "file" else root)
    return StoreArtifactTree(root)
