"""Choose the artifact repository for a configured artifact root."""

from __future__ import annotations

from functools import lru_cache

from tracking.artifacts.local import LocalArtifactRepository
from tracking.artifacts.repository import ArtifactRepository
from tracking.errors import MlflowError


@lru_cache(maxsize=16)
def repository_for_root(root: str) -> ArtifactRepository:
    """The repository serving ``root``: a local directory (``file://`` or a path); others are not built yet."""
    if root.startswith("file://"):
        root = root[len("file://"):]
    elif "://" in root:
        scheme = root.split("://", 1)[0]
        raise MlflowError(f"Artifact storage with the '{scheme}' scheme is not supported by this server yet.",
                          "NOT_IMPLEMENTED")
    return LocalArtifactRepository(root)
