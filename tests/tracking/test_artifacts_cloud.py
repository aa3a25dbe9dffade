"""The GCS and Azure Blob repositories against their real local emulators (gcp-storage-emulator, Azurite):
uploads in chunks, nothing visible before the commit, aborts, listing, deletes, and keys only under the prefix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from tests.services import azurite_server, gcs_server
from tracking.artifacts.paths import parse_artifact_path
from tracking.artifacts.repository import ArtifactEntry
from tracking.errors import MlflowError

RUN = "0123456789abcdef0123456789abcdef"
BASE = f"1/{RUN}/artifacts"
PREFIX = "team/mlgate"
CHUNK = 512 * 1024  # small chunks (a multiple of GCS's 256 KiB), so a multi-chunk upload needs only a few MiB


@dataclass
class Store:
    """One backend under test: the repository and a view of the bucket or container behind its back."""

    kind: str
    repo: object
    keys: callable  # every object name in the bucket/container
    put_raw: callable  # (name, bytes): write behind the repository's back
    blocks: callable  # (name) -> committed block count (Azure), or None


@pytest.fixture(scope="module", params=["gcs", "azure"])
def emulator(request):
    start = gcs_server if request.param == "gcs" else azurite_server
    with start() as server:
        yield request.param, server


@pytest.fixture
def store(emulator, monkeypatch) -> Store:
    kind, server = emulator
    for name, value in server.env.items():
        monkeypatch.setenv(name, value)
    if kind == "gcs":
        from tracking.artifacts.gcs import GcsArtifactRepository, GcsDestination, make_client

        bucket = server.new_bucket()
        client = server.client()
        return Store(kind, GcsArtifactRepository(GcsDestination(bucket, PREFIX), make_client(), chunk_bytes=CHUNK),
                     lambda: sorted(b.name for b in client.list_blobs(bucket)),
                     lambda name, data: client.bucket(bucket).blob(name).upload_from_string(data),
                     lambda name: None)
    from tracking.artifacts.azure import AzureBlobArtifactRepository

    container_name = server.new_container()
    container = server.client().get_container_client(container_name)
    repo = AzureBlobArtifactRepository.from_uri(server.uri(container_name, PREFIX))
    repo.block_bytes = CHUNK

    def blocks(name):
        committed, _ = container.get_blob_client(name).get_block_list("all")
        return len(committed)

    return Store(kind, repo, lambda: sorted(b.name for b in container.list_blobs()),
                 lambda name, data: container.upload_blob(name, data, overwrite=True), blocks)


def at(path: str):
    return parse_artifact_path(f"{BASE}/{path}" if path else BASE)


def write(repo, path: str, data: bytes) -> None:
    writer = repo.open_writer(at(path))
    writer.write(data)
    writer.commit()


def read(repo, path: str) -> bytes:
    reader = repo.open_reader(at(path))
    try:
        chunks = []
        while chunk := reader.read(1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        reader.close()


def test_small_file_is_one_object_under_the_prefix(store):
    write(store.repo, "a/b/c.bin", b"\x00\x01payload")
    assert store.keys() == [f"{PREFIX}/{BASE}/a/b/c.bin"]
    assert read(store.repo, "a/b/c.bin") == b"\x00\x01payload"
    reader = store.repo.open_reader(at("a/b/c.bin"))
    assert reader.size == 9
    reader.close()


def test_large_file_goes_up_in_chunks_and_reads_back(store):
    data = os.urandom(5 * CHUNK + 12345)
    writer = store.repo.open_writer(at("big.bin"))
    for start in range(0, len(data), 100_000):  # uneven pieces, as the endpoint's batches arrive
        writer.write(data[start:start + 100_000])
    # Nothing is visible before the commit: the chunks sit in an open session / as uncommitted blocks.
    assert store.keys() == []
    writer.commit()
    assert store.keys() == [f"{PREFIX}/{BASE}/big.bin"]
    if store.kind == "azure":
        assert store.blocks(f"{PREFIX}/{BASE}/big.bin") == 6  # five full blocks and the rest
    assert read(store.repo, "big.bin") == data
    assert store.repo.open_reader(at("big.bin")).size == len(data)


def test_empty_file_and_exact_chunk_multiples(store):
    write(store.repo, "empty.txt", b"")
    assert read(store.repo, "empty.txt") == b""
    data = os.urandom(2 * CHUNK)
    write(store.repo, "two-chunks.bin", data)
    assert read(store.repo, "two-chunks.bin") == data


def test_abort_leaves_no_object_and_the_old_one_intact(store):
    write(store.repo, "keep.txt", b"old")
    writer = store.repo.open_writer(at("keep.txt"))
    writer.write(os.urandom(3 * CHUNK + 10))  # chunks already sent
    writer.abort()
    writer.abort()
    assert read(store.repo, "keep.txt") == b"old"
    writer = store.repo.open_writer(at("new.bin"))
    writer.write(os.urandom(3 * CHUNK + 10))
    writer.abort()
    assert store.keys() == [f"{PREFIX}/{BASE}/keep.txt"]


def test_listing_shows_directories_and_sizes(store):
    write(store.repo, "top.txt", b"12345")
    write(store.repo, "dir/inner.txt", b"x")
    write(store.repo, "dir/deeper/leaf.txt", b"y")
    assert store.repo.list_dir(at("")) == [ArtifactEntry("dir", True, None), ArtifactEntry("top.txt", False, 5)]
    assert store.repo.list_dir(at("dir")) == [ArtifactEntry("deeper", True, None),
                                              ArtifactEntry("inner.txt", False, 1)]
    assert store.repo.list_dir(at("top.txt")) == []
    assert store.repo.list_dir(at("missing")) == []


def test_folder_placeholders_written_by_other_tools_are_not_files(store):
    store.put_raw(f"{PREFIX}/{BASE}/made-by-console/", b"")
    store.put_raw(f"{PREFIX}/{BASE}/made-by-console/f.txt", b"f")
    assert store.repo.list_dir(at("")) == [ArtifactEntry("made-by-console", True, None)]
    assert store.repo.list_dir(at("made-by-console")) == [ArtifactEntry("f.txt", False, 1)]


def test_missing_file_is_404_and_directory_is_400(store):
    write(store.repo, "dir/inner.txt", b"x")
    with pytest.raises(MlflowError) as missing:
        store.repo.open_reader(at("nope.txt"))
    assert missing.value.status == 404
    with pytest.raises(MlflowError) as directory:
        store.repo.open_reader(at("dir"))
    assert directory.value.status == 400


def test_file_and_directory_names_cannot_collide(store):
    write(store.repo, "dir/inner.txt", b"x")
    write(store.repo, "file.txt", b"x")
    with pytest.raises(MlflowError, match="directory"):
        store.repo.open_writer(at("dir"))
    with pytest.raises(MlflowError, match="parent of the destination is a file"):
        store.repo.open_writer(at("file.txt/below.txt"))


def test_delete_file_and_tree(store):
    write(store.repo, "keep.txt", b"k")
    write(store.repo, "tree/a.txt", b"a")
    write(store.repo, "tree/sub/b.txt", b"b")
    write(store.repo, "tree-sibling.txt", b"s")  # shares the name prefix "tree" but is not inside tree/
    store.repo.delete(at("tree"))
    store.repo.delete(at("keep.txt"))
    store.repo.delete(at("absent"))
    assert store.keys() == [f"{PREFIX}/{BASE}/tree-sibling.txt"]


def test_names_longer_than_the_store_allows_are_refused_before_any_call(store):
    with pytest.raises(MlflowError, match="1024") as raised:
        store.repo.open_writer(at("/".join(["d" * 200] * 5) + "/f"))
    assert raised.value.status == 400
    assert store.keys() == []


def test_walk_lists_every_object_below_a_directory_for_the_import(store):
    write(store.repo, "a.txt", b"a")
    write(store.repo, "d/e/f.bin", b"fff")
    store.put_raw(f"{PREFIX}/outside.txt", b"no")
    assert sorted(store.repo.walk(tuple(BASE.split("/")))) == [("a.txt", 1), ("d/e/f.bin", 3)]
    reader = store.repo.open_segments((*BASE.split("/"), "d", "e", "f.bin"))
    assert (reader.size, reader.read(10)) == (3, b"fff")
    reader.close()


def test_storage_outage_is_503_without_details(emulator, monkeypatch):
    kind, server = emulator
    for name, value in server.env.items():
        monkeypatch.setenv(name, value)
    if kind == "gcs":
        from tracking.artifacts.gcs import GcsArtifactRepository

        repo = GcsArtifactRepository.from_uri("gs://no-such-bucket-here/x")
    else:
        from tracking.artifacts.azure import AzureBlobArtifactRepository

        repo = AzureBlobArtifactRepository.from_uri(server.uri("no-such-container", "x"))
    with pytest.raises(MlflowError) as raised:
        repo.list_dir(at(""))
    assert raised.value.status == 503
    assert raised.value.message == "The artifact store is temporarily unavailable."
