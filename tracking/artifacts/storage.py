"""Choose the artifact repository for a configured artifact root, and check a destination at startup."""

from __future__ import annotations

from functools import lru_cache

from tracking.artifacts.local import LocalArtifactRepository
from tracking.artifacts.repository import ArtifactRepository
from tracking.errors import MlflowError

DESTINATION_OPTION = "--artifacts-destination / MLGATE_ARTIFACTS_DESTINATION"


@lru_cache(maxsize=16)
def repository_for_root(root: str) -> ArtifactRepository:
    """The repository serving ``root``: an ``s3://bucket/prefix`` or a local directory (``file://`` or a path)."""
    if root.startswith("s3://"):
        from tracking.artifacts.s3 import S3ArtifactRepository

        return S3ArtifactRepository.from_uri(root)
    if root.startswith("file://"):
        root = root[len("file://"):]
    elif "://" in root:
        scheme = root.split("://", 1)[0]
        raise MlflowError(f"Artifact storage with the '{scheme}' scheme is not supported by this server yet.",
                          "NOT_IMPLEMENTED")
    return LocalArtifactRepository(root)


def destination_problems(destination: str) -> list[str]:
    """Every problem with the configured artifact destination, each naming the option (S3: contacts the bucket)."""
    if destination.startswith("s3:"):
        from tracking.artifacts.s3 import destination_problems as s3_problems

        return [f"{DESTINATION_OPTION}: {problem}" for problem in s3_problems(destination)]
    if "://" in destination and not destination.startswith("file://"):
        scheme = destination.split("://", 1)[0][:20]
        return [f"{DESTINATION_OPTION}: the '{scheme}' scheme is not supported (use a directory or s3://bucket/prefix)"]
    return []
