"""Choose the artifact repository for a configured artifact root, and check a destination at startup."""

from __future__ import annotations

from functools import lru_cache

from tracking.artifacts.local import LocalArtifactRepository
from tracking.artifacts.object_store import KeyedDestination
from tracking.artifacts.repository import ArtifactRepository
from tracking.errors import MlflowError

DESTINATION_OPTION = "--artifacts-destination / MLGATE_ARTIFACTS_DESTINATION"
# Schemes recognised even when written without '//' (s3:bucket is a typo, not a local directory).
_STORE_SCHEMES = ("s3", "gs", "wasbs", "wasb", "abfss")
SUPPORTED = "a directory, s3://bucket/prefix, gs://bucket/prefix or wasbs://container@account.blob.core.windows.net/prefix"


def store_scheme(uri: str) -> str | None:
    """The URI's scheme in lower case, or None for a local path (``s3:bucket`` counts as an s3 typo)."""
    if "://" in uri:
        return uri.split("://", 1)[0].lower()
    head = uri.split(":", 1)[0].lower() if ":" in uri else None
    return head if head in _STORE_SCHEMES else None


@lru_cache(maxsize=16)
def repository_for_root(root: str) -> ArtifactRepository:
    """The repository serving ``root``: an object store URI or a local directory (``file://`` or a path)."""
    scheme = store_scheme(root)
    if scheme == "s3":
        from tracking.artifacts.s3 import S3ArtifactRepository

        return S3ArtifactRepository.from_uri(root)
    if scheme == "gs":
        from tracking.artifacts.gcs import GcsArtifactRepository

        return GcsArtifactRepository.from_uri(root)
    if scheme == "wasbs":
        from tracking.artifacts.azure import AzureBlobArtifactRepository

        return AzureBlobArtifactRepository.from_uri(root)
    if scheme == "file":
        root = root[len("file://"):]
    elif scheme is not None:
        raise MlflowError(f"Artifact storage with the '{scheme[:20]}' scheme is not supported by this server yet.",
                          "NOT_IMPLEMENTED")
    return LocalArtifactRepository(root)


def parse_store_uri(uri: str) -> KeyedDestination | None:
    """The bucket or container destination an ``s3://``, ``gs://`` or ``wasbs://`` URI names, or None.

    Parsing only (no SDK, no network): the same checks as for a configured destination.
    """
    scheme = store_scheme(uri)
    if scheme == "s3":
        from tracking.artifacts.s3 import parse_s3_destination as parse
    elif scheme == "gs":
        from tracking.artifacts.gcs import parse_gcs_destination as parse
    elif scheme == "wasbs":
        from tracking.artifacts.azure import parse_azure_destination as parse
    else:
        return None
    return parse(uri)[0]


def root_problems(destination: str) -> list[str]:
    """Every problem with an artifact root (object stores: contacts the bucket or container)."""
    scheme = store_scheme(destination)
    if scheme == "s3":
        from tracking.artifacts.s3 import destination_problems as problems
    elif scheme == "gs":
        from tracking.artifacts.gcs import destination_problems as problems
    elif scheme in ("wasbs", "wasb", "abfss"):
        from tracking.artifacts.azure import destination_problems as problems
    elif scheme is not None and scheme != "file":
        return [f"the '{scheme[:20]}' scheme is not supported (use {SUPPORTED})"]
    else:
        return []
    return problems(destination)


def destination_problems(destination: str) -> list[str]:
    """Every problem with the configured artifact destination, each naming the option (object stores:
    contacts the bucket or container with the credentials the server will use)."""
    return [f"{DESTINATION_OPTION}: {problem}" for problem in root_problems(destination)]
