"""The one place where a client-given artifact path becomes a safe, canonical location.

MLflow's server has had a long series of path-traversal advisories (``..`` segments, encoded and
double-encoded dots and slashes, absolute and Windows paths, symlinks). Every artifact endpoint and
the authorization layer call :func:`parse_artifact_path` / :func:`artifact_owner`, so a path means
the same thing to the access check and to the handler, and there is a single canonical spelling of it.

The rules are deliberately strict: a path is refused instead of "repaired" whenever it could mean
something other than its plain reading. Symlinks are handled by the repository, which never follows
one (see :mod:`tracking.artifacts.local`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from tracking.errors import MlflowError, invalid_parameter

OwnerKind = Literal["run", "model", "trace"]

# Linux limits: PATH_MAX is 4096 bytes, NAME_MAX 255 bytes per component. Refusing longer paths up
# front keeps ENAMETOOLONG from surfacing as a 500.
MAX_PATH_BYTES = 4096
MAX_SEGMENT_BYTES = 255
# The local store holds one open directory descriptor per level while it walks a path; a bound on depth
# keeps one request from exhausting the process's descriptors.
MAX_SEGMENTS = 64

# Upload temp files live next to their destination; clients may not name a file like one.
TEMP_PREFIX = ".mlgate-upload-"

# Experiment ids are integers; one spelling only ("01" would name another directory than "1" while
# an access check would read both as experiment 1).
_EXPERIMENT_ID = re.compile(r"(?:0|[1-9][0-9]{0,18})")
# Run, logged-model and trace ids as MLflow generates them (hex, "m-<hex>", "tr-<hex>"), with
# MLflow's own id rule as the outer bound.
_OWNER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,255}")
# A percent-escape that survived the framework's single decoding pass means the client encoded twice
# (``%252e%252e`` arrives as ``%2e%2e``). MLflow decodes until stable; refusing is simpler and leaves
# exactly one reading of every path.
_RESIDUAL_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_WINDOWS_DRIVE = re.compile(r"[A-Za-z]:")
_SUB_KINDS: dict[str, OwnerKind] = {"models": "model", "traces": "trace"}

LAYOUT_HELP = (
    "Artifact paths must look like <experiment_id>/<run_id>/artifacts/..., "
    "<experiment_id>/models/<model_id>/artifacts/... or <experiment_id>/traces/<trace_id>/artifacts/..., "
    "optionally under workspaces/<workspace>/"
)
# Experiments of a workspace other than 'default' keep their artifacts under workspaces/<name>/ (one
# prefix per team, for storage policies and quotas); 'default' keeps the layout it always had.
WORKSPACES_SEGMENT = "workspaces"
_WORKSPACE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def invalid_path(detail: str) -> MlflowError:
    """400 INVALID_PARAMETER_VALUE for an unsafe or malformed path (the path itself is not echoed)."""
    return invalid_parameter(f"Invalid path: {detail}.")


def _has_control_character(text: str) -> bool:
    return any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in text)


def split_relative_path(raw: str, *, allow_trailing_slash: bool = False) -> tuple[str, ...]:
    """The segments of a client-given relative path, or 400 when it is unsafe or ambiguous.

    ``.`` segments are dropped; ``..``, empty segments, backslashes, absolute and drive paths,
    control characters (NUL included), ``#`` and leftover percent-escapes are refused.
    """
    if not isinstance(raw, str):
        raise invalid_path("expected a string")
    if len(raw.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise invalid_path(f"longer than {MAX_PATH_BYTES} bytes")
    if _has_control_character(raw):
        raise invalid_path("control characters are not allowed")
    if "\\" in raw:
        raise invalid_path("backslashes are not allowed")
    if "#" in raw:
        raise invalid_path("'#' is not allowed")
    if _RESIDUAL_ESCAPE.search(raw):
        raise invalid_path("percent-encoded characters must be encoded once, not twice")
    if raw.startswith("/"):
        raise invalid_path("absolute paths are not allowed")
    if _WINDOWS_DRIVE.match(raw):
        raise invalid_path("drive letters are not allowed")
    if raw == "":
        return ()
    text = raw[:-1] if allow_trailing_slash and raw.endswith("/") else raw
    segments = []
    for segment in text.split("/"):
        if segment == "":
            raise invalid_path("empty path segments are not allowed")
        if segment == "..":
            raise invalid_path("'..' segments are not allowed")
        if segment == ".":
            continue
        if len(segment.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES:
            raise invalid_path(f"a segment is longer than {MAX_SEGMENT_BYTES} bytes")
        segments.append(segment)
    if len(segments) > MAX_SEGMENTS:
        raise invalid_path(f"deeper than {MAX_SEGMENTS} levels")
    return tuple(segments)


@dataclass(frozen=True)
class ArtifactOwner:
    """Who an artifact path belongs to: a run, a logged model or a trace, inside an experiment."""

    experiment_id: str
    kind: OwnerKind
    owner_id: str


@dataclass(frozen=True)
class ArtifactPath:
    """A validated location: its canonical root-relative segments, its owner, and the part inside it."""

    segments: tuple[str, ...]
    owner: ArtifactOwner
    # How many leading segments name the owner's artifact directory (3 for runs, 4 otherwise; 2 more
    # under a workspace prefix).
    owner_depth: int
    # The workspace the path's prefix names (workspaces/<name>/...), None for an unprefixed path.
    workspace: str | None = None

    @property
    def path(self) -> str:
        """The canonical root-relative path."""
        return "/".join(self.segments)

    @property
    def inner(self) -> str:
        """The path inside the owner's ``artifacts`` directory ("" for the directory itself)."""
        return "/".join(self.segments[self.owner_depth:])

    @property
    def name(self) -> str:
        """The last segment (the file name a download is offered as)."""
        return self.segments[-1]

    def child(self, relative: tuple[str, ...]) -> ArtifactPath:
        """This location extended by already-validated relative segments (stays inside the owner)."""
        return ArtifactPath(self.segments + relative, self.owner, self.owner_depth, self.workspace)


def _owner_of(segments: tuple[str, ...]) -> tuple[ArtifactOwner, int]:
    if len(segments) >= 4 and segments[1] in _SUB_KINDS and segments[3] == "artifacts":
        kind, owner_id, depth = _SUB_KINDS[segments[1]], segments[2], 4
    elif len(segments) >= 3 and segments[1] not in _SUB_KINDS and segments[2] == "artifacts":
        kind, owner_id, depth = "run", segments[1], 3
    else:
        raise invalid_parameter(f"Invalid path: {LAYOUT_HELP}")
    if not _EXPERIMENT_ID.fullmatch(segments[0]):
        raise invalid_parameter(f"Invalid path: the experiment id must be a number. {LAYOUT_HELP}")
    if not _OWNER_ID.fullmatch(owner_id):
        raise invalid_parameter(f"Invalid path: malformed {kind} id. {LAYOUT_HELP}")
    return ArtifactOwner(segments[0], kind, owner_id), depth


def parse_artifact_path(raw: str, *, for_write: bool = False, allow_trailing_slash: bool = False) -> ArtifactPath:
    """Validate a root-relative artifact path and find its owner; 400 on anything unsafe or malformed.

    A write must name a file strictly inside the owner's ``artifacts`` directory and may not use the
    names reserved for in-progress uploads.
    """
    segments = split_relative_path(raw, allow_trailing_slash=allow_trailing_slash)
    workspace = None
    if segments and segments[0] == WORKSPACES_SEGMENT:
        if len(segments) < 2 or not _WORKSPACE_NAME.fullmatch(segments[1]):
            raise invalid_parameter(f"Invalid path: malformed workspace name. {LAYOUT_HELP}")
        workspace = segments[1]
    skip = 0 if workspace is None else 2
    owner, depth = _owner_of(segments[skip:])
    located = ArtifactPath(segments, owner, depth + skip, workspace)
    if for_write:
        if len(segments) == depth:
            raise invalid_path(f"a file name inside the {owner.kind}'s artifacts directory is required")
        if located.name.startswith(TEMP_PREFIX):
            raise invalid_path(f"names starting with '{TEMP_PREFIX}' are reserved")
    return located


def artifact_owner(path: str) -> ArtifactOwner:
    """The run, logged model or trace that owns a root-relative artifact path; MlflowError if malformed."""
    return parse_artifact_path(path, allow_trailing_slash=True).owner
