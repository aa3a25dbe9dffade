"""The one parser of client-given artifact paths: canonical forms, refusals with exact messages, owners."""

from __future__ import annotations

import pytest

from tracking.artifacts.paths import (
    LAYOUT_HELP,
    ArtifactOwner,
    artifact_owner,
    parse_artifact_path,
    split_relative_path,
)
from tracking.errors import MlflowError

RUN = "0123456789abcdef0123456789abcdef"

ACCEPTED = [
    ("", ()),
    ("a", ("a",)),
    ("a/b.txt", ("a", "b.txt")),
    ("./a/./b", ("a", "b")),
    ("dir with space/naïve 文件.txt", ("dir with space", "naïve 文件.txt")),
    ("100%.txt", ("100%.txt",)),
    ("a..b/..c/c..", ("a..b", "..c", "c..")),
    ("file:/etc", ("file:", "etc")),  # a directory named "file:", never a URI
]


@pytest.mark.parametrize(("raw", "segments"), ACCEPTED)
def test_safe_relative_paths_are_split_into_segments(raw, segments):
    assert split_relative_path(raw) == segments


REFUSED = [
    ("..", "Invalid path: '..' segments are not allowed."),
    ("a/../b", "Invalid path: '..' segments are not allowed."),
    ("a/..", "Invalid path: '..' segments are not allowed."),
    ("%2e%2e/x", "Invalid path: percent-encoded characters must be encoded once, not twice."),
    ("a%2Fb", "Invalid path: percent-encoded characters must be encoded once, not twice."),
    ("%252e%252e", "Invalid path: percent-encoded characters must be encoded once, not twice."),
    ("a\\..\\b", "Invalid path: backslashes are not allowed."),
    ("..\\x", "Invalid path: backslashes are not allowed."),
    ("/etc/passwd", "Invalid path: absolute paths are not allowed."),
    ("//server/share", "Invalid path: absolute paths are not allowed."),
    ("C:\\Windows", "Invalid path: backslashes are not allowed."),
    ("C:/Windows", "Invalid path: drive letters are not allowed."),
    ("c:x", "Invalid path: drive letters are not allowed."),
    ("a\x00b", "Invalid path: control characters are not allowed."),
    ("a\nb", "Invalid path: control characters are not allowed."),
    ("a\x85b", "Invalid path: control characters are not allowed."),
    ("a//b", "Invalid path: empty path segments are not allowed."),
    ("a/", "Invalid path: empty path segments are not allowed."),
    ("a#b", "Invalid path: '#' is not allowed."),
    ("x" * 256, "Invalid path: a segment is longer than 255 bytes."),
    ("a/" * 2100, "Invalid path: longer than 4096 bytes."),
    ("a/" * 64 + "b", "Invalid path: deeper than 64 levels."),
]


@pytest.mark.parametrize(("raw", "message"), REFUSED)
def test_unsafe_relative_paths_are_refused_with_exact_messages(raw, message):
    with pytest.raises(MlflowError) as info:
        split_relative_path(raw)
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    assert info.value.status == 400
    assert info.value.message == message


def test_one_trailing_slash_is_tolerated_only_when_asked():
    assert split_relative_path("a/b/", allow_trailing_slash=True) == ("a", "b")
    with pytest.raises(MlflowError):
        split_relative_path("a/b//", allow_trailing_slash=True)


OWNERS = [
    (f"1/{RUN}/artifacts", ArtifactOwner("1", "run", RUN), ""),
    (f"1/{RUN}/artifacts/model/MLmodel", ArtifactOwner("1", "run", RUN), "model/MLmodel"),
    ("0/models/m-abc123/artifacts/model.pkl", ArtifactOwner("0", "model", "m-abc123"), "model.pkl"),
    ("42/traces/tr-9f8e/artifacts/traces.json", ArtifactOwner("42", "trace", "tr-9f8e"), "traces.json"),
    (f"7/./{RUN}/artifacts/a", ArtifactOwner("7", "run", RUN), "a"),
]


@pytest.mark.parametrize(("raw", "owner", "inner"), OWNERS)
def test_owner_and_inner_path_of_each_layout(raw, owner, inner):
    located = parse_artifact_path(raw)
    assert located.owner == owner
    assert located.inner == inner
    assert artifact_owner(raw) == owner


BAD_LAYOUTS = [
    "",
    "1",
    f"1/{RUN}",
    f"1/{RUN}/other/x",
    f"{RUN}/artifacts/x",
    "1/models/artifacts/x",  # "models" is never a run id
    "1/traces/artifacts",
    "1/models/m-1/x/artifacts",
    "mlruns/0/abc/artifacts/x",
]


@pytest.mark.parametrize("raw", BAD_LAYOUTS)
def test_other_layouts_have_no_owner(raw):
    with pytest.raises(MlflowError) as info:
        artifact_owner(raw)
    assert info.value.message == f"Invalid path: {LAYOUT_HELP}"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (f"01/{RUN}/artifacts/x", f"Invalid path: the experiment id must be a number. {LAYOUT_HELP}"),
        (f"-1/{RUN}/artifacts/x", f"Invalid path: the experiment id must be a number. {LAYOUT_HELP}"),
        (f"abc/{RUN}/artifacts/x", f"Invalid path: the experiment id must be a number. {LAYOUT_HELP}"),
        ("1/-run/artifacts/x", f"Invalid path: malformed run id. {LAYOUT_HELP}"),
        ("1/models/m.1/artifacts/x", f"Invalid path: malformed model id. {LAYOUT_HELP}"),
        ("1/traces/tr:1/artifacts/x", f"Invalid path: malformed trace id. {LAYOUT_HELP}"),
    ],
)
def test_malformed_ids_are_refused(raw, message):
    with pytest.raises(MlflowError) as info:
        artifact_owner(raw)
    assert info.value.message == message


def test_a_write_needs_a_file_name_inside_the_owner_directory():
    with pytest.raises(MlflowError) as info:
        parse_artifact_path(f"1/{RUN}/artifacts", for_write=True)
    assert info.value.message == "Invalid path: a file name inside the run's artifacts directory is required."
    with pytest.raises(MlflowError) as info:
        parse_artifact_path(f"1/{RUN}/artifacts/.mlgate-upload-1234", for_write=True)
    assert info.value.message == "Invalid path: names starting with '.mlgate-upload-' are reserved."
    assert parse_artifact_path(f"1/{RUN}/artifacts/a/b", for_write=True).path == f"1/{RUN}/artifacts/a/b"


def test_owner_check_and_handler_read_the_same_canonical_path():
    located = parse_artifact_path(f"3/./{RUN}/artifacts/./a/b.txt")
    assert located.path == f"3/{RUN}/artifacts/a/b.txt"
    assert located.child(("c",)).path == f"3/{RUN}/artifacts/a/b.txt/c"
    assert located.name == "b.txt"
