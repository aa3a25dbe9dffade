"""The S3 repository against a real S3 API (moto's standalone server): uploads, multipart, listing, deletes."""

from __future__ import annotations

import os

import pytest

from tests.services import s3_server
from tracking.artifacts.paths import parse_artifact_path
from tracking.artifacts.repository import ArtifactEntry
from tracking.artifacts.s3 import S3ArtifactRepository, S3Destination, make_client
from tracking.errors import MlflowError

RUN = "0123456789abcdef0123456789abcdef"
BASE = f"1/{RUN}/artifacts"
PART = 5 * 1024 * 1024  # the smallest part S3 accepts, so a multipart test needs only a few MiB


@pytest.fixture(scope="module")
def s3():
    with s3_server() as server:
        yield server


@pytest.fixture
def bucket(s3):
    return s3.new_bucket()


@pytest.fixture
def repo(s3, bucket, monkeypatch):
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    return S3ArtifactRepository(S3Destination(bucket, "team/mlgate"), make_client(s3.endpoint_url), part_bytes=PART)


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


def keys(s3, bucket) -> list[str]:
    return sorted(item["Key"] for item in s3.client().list_objects_v2(Bucket=bucket).get("Contents", []))


def test_small_file_is_one_object_under_the_prefix(repo, s3, bucket):
    write(repo, "a/b/c.bin", b"\x00\x01payload")
    assert keys(s3, bucket) == [f"team/mlgate/{BASE}/a/b/c.bin"]
    assert read(repo, "a/b/c.bin") == b"\x00\x01payload"
    reader = repo.open_reader(at("a/b/c.bin"))
    assert reader.size == 9
    reader.close()


def test_large_file_goes_up_in_parts_and_reads_back(repo, s3, bucket):
    data = os.urandom(2 * PART + 12345)
    writer = repo.open_writer(at("big.bin"))
    for start in range(0, len(data), 1 << 20):  # as the endpoint feeds it: 1 MiB batches
        writer.write(data[start:start + (1 << 20)])
    # Nothing is visible before the commit: the parts are pending in an open multipart upload.
    assert keys(s3, bucket) == []
    assert len(s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])) == 1
    writer.commit()
    head = s3.client().head_object(Bucket=bucket, Key=f"team/mlgate/{BASE}/big.bin")
    assert head["ETag"].strip('"').endswith("-3")  # S3 marks a multipart object with its part count
    assert head["ContentLength"] == len(data)
    assert read(repo, "big.bin") == data
    assert s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_abort_leaves_no_object_and_no_parts(repo, s3, bucket):
    write(repo, "keep.txt", b"old")
    writer = repo.open_writer(at("keep.txt"))
    writer.write(os.urandom(PART + 10))  # one part already sent
    assert len(s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])) == 1
    writer.abort()
    writer.abort()
    assert read(repo, "keep.txt") == b"old"
    assert s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert keys(s3, bucket) == [f"team/mlgate/{BASE}/keep.txt"]


def test_failed_commit_is_reported_and_aborted(repo, s3, bucket):
    writer = repo.open_writer(at("lost.bin"))
    writer.write(os.urandom(PART + 10))
    # The upload disappears on the server side (an operator's cleanup): completing it fails cleanly.
    upload = s3.client().list_multipart_uploads(Bucket=bucket)["Uploads"][0]
    s3.client().abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    with pytest.raises(MlflowError) as raised:
        writer.commit()
    assert raised.value.status == 503
    assert "mlgate-test" not in raised.value.message
    writer.abort()
    assert keys(s3, bucket) == []


def test_listing_shows_directories_and_sizes_across_pages(repo):
    write(repo, "top.txt", b"12345")
    write(repo, "dir/inner.txt", b"x")
    write(repo, "dir/deeper/leaf.txt", b"y")
    assert repo.list_dir(at("")) == [ArtifactEntry("dir", True, None), ArtifactEntry("top.txt", False, 5)]
    assert repo.list_dir(at("dir")) == [ArtifactEntry("deeper", True, None), ArtifactEntry("inner.txt", False, 1)]
    assert repo.list_dir(at("top.txt")) == []
    assert repo.list_dir(at("missing")) == []


def test_listing_follows_continuation_tokens(repo, s3, bucket):
    client = s3.client()
    # More than one ListObjectsV2 page (1,000 keys): written directly, the repository must page through.
    for i in range(1005):
        client.put_object(Bucket=bucket, Key=f"team/mlgate/{BASE}/many/f{i:04d}", Body=b"")
    names = [entry.name for entry in repo.list_dir(at("many"))]
    assert len(names) == 1005
    assert names[0] == "f0000"
    assert names[-1] == "f1004"


def test_missing_file_is_404_and_directory_is_400(repo):
    write(repo, "dir/inner.txt", b"x")
    with pytest.raises(MlflowError) as missing:
        repo.open_reader(at("nope.txt"))
    assert missing.value.status == 404
    with pytest.raises(MlflowError) as directory:
        repo.open_reader(at("dir"))
    assert directory.value.status == 400


def test_file_and_directory_names_cannot_collide(repo):
    write(repo, "dir/inner.txt", b"x")
    write(repo, "file.txt", b"x")
    with pytest.raises(MlflowError, match="directory"):
        repo.open_writer(at("dir"))
    with pytest.raises(MlflowError, match="parent of the destination is a file"):
        repo.open_writer(at("file.txt/below.txt"))


def test_delete_file_and_tree(repo, s3, bucket):
    write(repo, "keep.txt", b"k")
    write(repo, "tree/a.txt", b"a")
    write(repo, "tree/sub/b.txt", b"b")
    write(repo, "tree-sibling.txt", b"s")  # shares the key prefix "tree" but is not inside tree/
    repo.delete(at("tree"))
    repo.delete(at("keep.txt"))
    repo.delete(at("absent"))
    assert keys(s3, bucket) == [f"team/mlgate/{BASE}/tree-sibling.txt"]


def test_storage_outage_is_503_without_details(s3, bucket):
    repo = S3ArtifactRepository(S3Destination("no-such-bucket-here", ""), make_client(s3.endpoint_url))
    with pytest.raises(MlflowError) as raised:
        repo.list_dir(at(""))
    assert raised.value.status == 503
    assert raised.value.message == "The artifact store is temporarily unavailable."


def test_parts_below_the_s3_minimum_are_refused():
    with pytest.raises(ValueError, match="5 MiB"):
        S3ArtifactRepository(S3Destination("b", ""), client=None, part_bytes=1024)


def test_an_unreachable_endpoint_with_credentials_in_its_url_logs_no_secret(monkeypatch, caplog):
    """botocore's connection errors quote the endpoint URL, user info included: only the error class is logged."""
    from tests.services import free_port

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test-key-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
    client = make_client(f"http://admin:SECRETpw@127.0.0.1:{free_port()}")  # nothing listens there
    repo = S3ArtifactRepository(S3Destination("bucket", "p"), client)
    with caplog.at_level("WARNING", logger="mlgate.artifacts.s3"), pytest.raises(MlflowError) as raised:
        repo.list_dir(at(""))
    assert raised.value.status == 503
    assert "S3 listing failed: EndpointConnectionError" in caplog.text
    assert "SECRETpw" not in caplog.text
    assert "SECRETpw" not in raised.value.message
