"""The local repository: atomic uploads, listings, deletes, and symlinks that are never followed."""

from __future__ import annotations

import os

import pytest

from tracking.artifacts.local import LocalArtifactRepository
from tracking.artifacts.paths import TEMP_PREFIX, parse_artifact_path
from tracking.artifacts.repository import ArtifactEntry
from tracking.errors import MlflowError

RUN = "0123456789abcdef0123456789abcdef"
BASE = f"1/{RUN}/artifacts"


@pytest.fixture
def root(tmp_path):
    path = tmp_path / "root"
    path.mkdir()
    return path


@pytest.fixture
def outside(tmp_path):
    """A secret file and a directory outside the root that symlinks will point at."""
    secret_dir = tmp_path / "outside"
    secret_dir.mkdir()
    (secret_dir / "secret.txt").write_text("top secret")
    return secret_dir


@pytest.fixture
def repo(root):
    return LocalArtifactRepository(str(root))


def at(path: str):
    return parse_artifact_path(f"{BASE}/{path}" if path else BASE)


def write(repo, path: str, data: bytes) -> None:
    writer = repo.open_writer(at(path))
    writer.write(data)
    writer.commit()


def read(repo, path: str) -> bytes:
    reader = repo.open_reader(at(path))
    try:
        return reader.read(1 << 30)
    finally:
        reader.close()


def test_write_creates_parents_and_reads_back(repo, root):
    write(repo, "a/b/c.bin", b"\x00\x01payload")
    assert (root / BASE / "a/b/c.bin").read_bytes() == b"\x00\x01payload"
    assert read(repo, "a/b/c.bin") == b"\x00\x01payload"
    assert repo.open_reader(at("a/b/c.bin")).size == 9


def test_nothing_is_visible_before_commit_and_abort_cleans_up(repo, root):
    write(repo, "keep.txt", b"old")
    writer = repo.open_writer(at("keep.txt"))
    writer.write(b"new but unfinished")
    assert read(repo, "keep.txt") == b"old"
    writer.abort()
    writer.abort()
    assert read(repo, "keep.txt") == b"old"
    assert os.listdir(root / BASE) == ["keep.txt"]


def test_abort_removes_directories_the_upload_created(repo, root):
    writer = repo.open_writer(at("new/deeper/file.txt"))
    writer.write(b"x")
    writer.abort()
    assert not (root / "1").exists()


def test_commit_replaces_an_existing_file(repo):
    write(repo, "f.txt", b"one")
    write(repo, "f.txt", b"two")
    assert read(repo, "f.txt") == b"two"


def test_listing_is_sorted_with_sizes_and_hides_uploads_in_progress(repo, root):
    write(repo, "z.txt", b"zz")
    write(repo, "a/inner.txt", b"i")
    writer = repo.open_writer(at("pending.txt"))
    assert repo.list_dir(at("")) == [ArtifactEntry("a", True, None), ArtifactEntry("z.txt", False, 2)]
    assert any(name.startswith(TEMP_PREFIX) for name in os.listdir(root / BASE))
    writer.abort()
    assert repo.list_dir(at("a")) == [ArtifactEntry("inner.txt", False, 1)]


def test_listing_a_file_or_a_missing_path_is_empty(repo):
    write(repo, "f.txt", b"x")
    assert repo.list_dir(at("f.txt")) == []
    assert repo.list_dir(at("missing")) == []
    assert repo.list_dir(at("f.txt/below")) == []


def test_reading_missing_and_directory_paths(repo):
    write(repo, "d/f.txt", b"x")
    with pytest.raises(MlflowError) as info:
        repo.open_reader(at("nope.txt"))
    assert (info.value.status, info.value.error_code) == (404, "RESOURCE_DOES_NOT_EXIST")
    with pytest.raises(MlflowError) as info:
        repo.open_reader(at("d"))
    assert info.value.status == 400
    assert info.value.message == "Artifact path refers to a directory, not a file: 'd'"
    with pytest.raises(MlflowError) as info:
        repo.open_reader(at("d/f.txt/x"))
    assert info.value.status == 404


def test_writing_over_a_directory_or_below_a_file_is_refused(repo):
    write(repo, "d/f.txt", b"x")
    with pytest.raises(MlflowError) as info:
        repo.open_writer(at("d"))
    assert info.value.message == "Artifact path refers to a directory, not a file: 'd'"
    with pytest.raises(MlflowError) as info:
        repo.open_writer(at("d/f.txt/child"))
    assert info.value.message == "Invalid path: a parent of the destination is a file."


def test_delete_file_tree_and_missing(repo, root):
    write(repo, "t/a.txt", b"a")
    write(repo, "t/sub/b.txt", b"b")
    write(repo, "f.txt", b"f")
    repo.delete(at("f.txt"))
    repo.delete(at("t"))
    repo.delete(at("never/existed"))
    assert os.listdir(root / BASE) == []


SYMLINK_MESSAGE = "Invalid path: it passes through a symbolic link, which this server does not follow."


@pytest.mark.parametrize("operation", ["list", "read", "write", "delete"])
def test_a_symlinked_directory_inside_the_root_is_never_followed(repo, root, outside, operation):
    (root / BASE).mkdir(parents=True)
    os.symlink(outside, root / BASE / "escape")
    attempts = {
        "list": lambda: repo.list_dir(at("escape")),
        "read": lambda: repo.open_reader(at("escape/secret.txt")),
        "write": lambda: repo.open_writer(at("escape/planted.txt")),
        "delete": lambda: repo.delete(at("escape/secret.txt")),
    }
    with pytest.raises(MlflowError) as info:
        attempts[operation]()
    assert info.value.message == SYMLINK_MESSAGE
    assert sorted(os.listdir(outside)) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "top secret"


@pytest.mark.parametrize("operation", ["read", "write", "delete"])
def test_a_symlinked_file_inside_the_root_is_never_followed(repo, root, outside, operation):
    (root / BASE).mkdir(parents=True)
    os.symlink(outside / "secret.txt", root / BASE / "link.txt")
    attempts = {
        "read": lambda: repo.open_reader(at("link.txt")),
        "write": lambda: repo.open_writer(at("link.txt")),
        "delete": lambda: repo.delete(at("link.txt")),
    }
    with pytest.raises(MlflowError) as info:
        attempts[operation]()
    assert info.value.message == SYMLINK_MESSAGE
    assert (outside / "secret.txt").read_text() == "top secret"
    assert os.path.islink(root / BASE / "link.txt")


def test_symlinks_are_left_out_of_listings(repo, root, outside):
    write(repo, "real.txt", b"r")
    os.symlink(outside / "secret.txt", root / BASE / "link.txt")
    assert repo.list_dir(at("")) == [ArtifactEntry("real.txt", False, 1)]


def test_a_symlinked_experiment_directory_is_refused(repo, root, outside):
    os.symlink(outside, root / "1")
    with pytest.raises(MlflowError) as info:
        repo.open_writer(at("x.txt"))
    assert info.value.message == SYMLINK_MESSAGE
    assert sorted(os.listdir(outside)) == ["secret.txt"]


def test_deleting_a_tree_unlinks_symlinks_inside_without_following(repo, root, outside):
    write(repo, "t/a.txt", b"a")
    os.symlink(outside, root / BASE / "t" / "escape")
    repo.delete(at("t"))
    assert not (root / BASE / "t").exists()
    assert (outside / "secret.txt").read_text() == "top secret"


def test_a_fifo_is_refused_without_blocking(repo, root):
    (root / BASE).mkdir(parents=True)
    os.mkfifo(root / BASE / "pipe")
    with pytest.raises(MlflowError) as info:
        repo.open_reader(at("pipe"))
    assert info.value.message == "Invalid path: not a regular file."
    with pytest.raises(MlflowError):
        repo.open_writer(at("pipe"))


def test_concurrent_uploads_to_one_path_leave_one_whole_file(repo, root):
    first = repo.open_writer(at("same/file.bin"))
    second = repo.open_writer(at("same/file.bin"))
    first.write(b"A" * 1000)
    second.write(b"B" * 500)
    first.write(b"A" * 1000)
    second.commit()
    first.commit()
    assert read(repo, "same/file.bin") == b"A" * 2000
    assert os.listdir(root / BASE / "same") == ["file.bin"]


def test_a_download_in_progress_keeps_reading_the_version_it_opened(repo):
    write(repo, "model.bin", b"old" * 1000)
    reader = repo.open_reader(at("model.bin"))
    write(repo, "model.bin", b"new")
    try:
        assert reader.read(1 << 20) == b"old" * 1000
    finally:
        reader.close()
    assert read(repo, "model.bin") == b"new"
