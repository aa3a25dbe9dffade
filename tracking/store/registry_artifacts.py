"""Serving one file of a model version's artifacts (GET /model-versions/get-artifact).

Only versions stored under this server's artifact root (``mlflow-artifacts:`` locations) are served.
The version's location and the client's path are both validated by the artifact engineer's path
rules (no ``..``, no encoded or double-encoded traversal, no absolute or drive paths), joined as
segments, and the file is opened by walking directory descriptors with ``O_NOFOLLOW``, so a symlink
under the root can never lead outside it.
"""

from __future__ import annotations

from starlette.responses import StreamingResponse

from tracking.artifacts.download import download_response
from tracking.artifacts.paths import parse_artifact_path, split_relative_path
from tracking.artifacts.storage import repository_for_root
from tracking.errors import invalid_parameter
from tracking.store.registry_source import proxied_parts


def send_version_artifact(artifact_root: str, location: str, path: str) -> StreamingResponse:
    """Stream ``path`` (relative to the version's artifacts) when the version lives under ``artifact_root``."""
    relative = split_relative_path(path)
    if not relative:
        raise invalid_parameter("Invalid path: a file inside the model version's artifacts is required.")
    base = proxied_parts(location)
    if base is None:
        raise invalid_parameter("This model version's artifacts are not stored on this server; download them "
                                "from the location given by get-download-uri.")
    located = parse_artifact_path("/".join(base + relative))
    reader = repository_for_root(artifact_root).open_reader(located)
    return download_response(reader, located.name)
