"""What an artifact store must offer the endpoints; the local filesystem is one implementation.

Every method takes an already-validated :class:`~tracking.artifacts.paths.ArtifactPath`, never a raw
client string, so a store cannot be handed an unchecked path. The S3 store (:mod:`tracking.artifacts.s3`)
implements the same protocol: ``open_writer`` becomes a PutObject or a multipart upload, ``open_reader``
a streamed GetObject. :class:`MultipartUploads` describes MLflow's presigned multipart protocol, which
the endpoints do not offer (presigned URLs would bypass the gateway).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from tracking.artifacts.paths import ArtifactPath


@dataclass(frozen=True)
class ArtifactEntry:
    """One listing entry: a name inside the listed directory, and the file size (None for directories)."""

    name: str
    is_dir: bool
    file_size: int | None


class ArtifactReader(Protocol):
    """An open artifact being downloaded."""

    size: int

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes; ``b""`` at the end."""

    def close(self) -> None:
        """Release the underlying file or connection."""


class ArtifactWriter(Protocol):
    """An upload in progress: nothing is visible at the destination until :meth:`commit`."""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append bytes."""

    def commit(self) -> None:
        """Publish the upload atomically at its destination (replacing an older file)."""

    def abort(self) -> None:
        """Discard everything written; safe to call after a failed commit or twice."""


class ArtifactRepository(Protocol):
    """Artifact storage addressed by validated root-relative paths."""

    def list_dir(self, location: ArtifactPath) -> list[ArtifactEntry]:
        """The entries of a directory, sorted by name; empty for a file or a missing path."""

    def open_reader(self, location: ArtifactPath) -> ArtifactReader:
        """Open a file for download; 404 when missing, 400 for a directory."""

    def open_writer(self, location: ArtifactPath) -> ArtifactWriter:
        """Start an upload to a file location; 400 if the location is a directory."""

    def delete(self, location: ArtifactPath) -> None:
        """Remove a file or a directory tree; nothing happens when the path does not exist."""


@runtime_checkable
class MultipartUploads(Protocol):
    """MLflow's multipart upload protocol (presigned part URLs), offered by object stores only."""

    def create_multipart_upload(self, location: ArtifactPath, num_parts: int) -> dict:
        """Start an upload; MLflow's ``CreateMultipartUpload.Response`` as a dict."""

    def complete_multipart_upload(self, location: ArtifactPath, upload_id: str, parts: list[dict]) -> None:
        """Assemble the uploaded parts."""

    def abort_multipart_upload(self, location: ArtifactPath, upload_id: str) -> None:
        """Discard the uploaded parts."""
