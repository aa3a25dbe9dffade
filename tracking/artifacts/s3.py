"""Artifacts in an S3 bucket (AWS or any S3-compatible store such as MinIO), through boto3.

Keys are ``<prefix>/<canonical artifact path>``: the path has already passed
:mod:`tracking.artifacts.paths`, so no ``..``, empty, absolute or encoded segment ever reaches a key,
and every key stays under the configured prefix. Uploads are streamed: a small file becomes one
``PutObject``; a larger one a multipart upload sent part by part (memory stays at about one part)
and aborted on any failure, so no half-written object and no orphaned parts remain. Downloads stream
the ``GetObject`` body. boto3 is blocking; the endpoints call these methods on worker threads.

The endpoint comes from ``MLFLOW_S3_ENDPOINT_URL`` (as with MLflow's server); credentials and the
region are whatever boto3 finds (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``,
instance roles...). Neither is ever part of an error message.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from tracking.artifacts.object_store import (
    BucketDestination,
    ObjectStoreRepository,
    bucket_netloc_problems,
    parsed_or_raise,
    store_unavailable,
    translated,
    uri_prefix_problems,
)
from tracking.errors import MlflowError

ENDPOINT_ENV = "MLFLOW_S3_ENDPOINT_URL"
# S3 parts must be at least 5 MiB (except the last); 8 MiB parts keep memory low and allow files of
# 80 GiB within S3's 10,000-part limit, far above the server's upload limit.
DEFAULT_PART_BYTES = 8 * 1024 * 1024
_DELETE_BATCH = 1000  # DeleteObjects accepts at most 1,000 keys per call
# DNS-compatible bucket names (the rule AWS enforces for new buckets).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})

logger = logging.getLogger("mlgate.artifacts.s3")


@dataclass(frozen=True)
class S3Destination(BucketDestination):
    """A bucket and a key prefix ('' for the bucket's top level), from ``s3://bucket/prefix``."""


def _bucket_problem(name: str) -> str | None:
    if _BUCKET.fullmatch(name) and ".." not in name:
        return None
    return f"'{name}' is not a valid bucket name (3-63 lowercase letters, digits, '.', '-')"


def parse_s3_destination(uri: str) -> tuple[S3Destination | None, list[str]]:
    """The destination named by ``s3://bucket[/prefix]``, or None and every problem with the URI."""
    parts = urlsplit(uri)
    if parts.scheme != "s3":
        return None, ["the URI must start with s3://"]
    problems = bucket_netloc_problems(
        parts.netloc, bucket_problem=_bucket_problem,
        credentials=f"credentials and ports do not belong in an s3:// URI; set AWS_* variables and {ENDPOINT_ENV} "
                    "instead",
        missing="the bucket name is missing (expected s3://<bucket>/<prefix>)")
    prefix, more = uri_prefix_problems(parts)
    problems += more
    if problems:
        return None, problems
    return S3Destination(parts.netloc, prefix), []


def make_client(endpoint_url: str | None = None):
    """A boto3 S3 client for ``endpoint_url`` (None: AWS), credentials and region as boto3 finds them."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
        # Enough connections for the server's worker threads to stream concurrently.
        max_pool_connections=50,
        # Path-style addressing works with every S3-compatible server (MinIO, moto, Ceph).
        s3={"addressing_style": "path"} if endpoint_url else {},
        # botocore 1.36 started adding CRC checksums to every upload, which several S3-compatible
        # servers reject; with a custom endpoint, send them only where the API requires one.
        request_checksum_calculation="when_required" if endpoint_url else "when_supported",
        response_checksum_validation="when_required" if endpoint_url else "when_supported",
    )
    session = boto3.session.Session()
    return session.client("s3", endpoint_url=endpoint_url or None, config=config,
                          region_name=session.region_name or "us-east-1")


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _unavailable(action: str, exc: Exception) -> MlflowError:
    """503 for a storage failure; the error's class and S3 error code go to the log, not to the client.

    Never the exception's text: botocore's connection errors quote the endpoint URL, user info included.
    """
    return store_unavailable(logger, f"S3 {action}", exc, _error_code(exc) or None)


def destination_problems(uri: str, *, client=None) -> list[str]:
    """Every problem with an ``s3://`` destination: its syntax, then whether the bucket answers."""
    destination, problems = parse_s3_destination(uri)
    if destination is None:
        return problems
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    endpoint = os.environ.get(ENDPOINT_ENV) or None
    where = f"the S3 endpoint {_safe_endpoint(endpoint)}" if endpoint else "AWS S3"
    try:
        (client or make_client(endpoint)).head_bucket(Bucket=destination.bucket)
    except NoCredentialsError:
        return ["no S3 credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"]
    except ClientError as exc:
        code = _error_code(exc)
        if code in ("404", "NoSuchBucket", "NotFound"):
            return [f"bucket '{destination.bucket}' does not exist at {where}"]
        if code in ("403", "AccessDenied", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return [f"access to bucket '{destination.bucket}' at {where} was denied (check the AWS_* credentials)"]
        return [f"bucket '{destination.bucket}' at {where} answered with error {code or 'unknown'}"]
    except (BotoCoreError, ValueError) as exc:
        return [f"{where} is not reachable ({type(exc).__name__}); check {ENDPOINT_ENV} and the network"]
    return []


def _safe_endpoint(endpoint: str) -> str:
    """The endpoint without any user:password part."""
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


class _ObjectReader:
    """A ``GetObject`` body being streamed."""

    def __init__(self, body, size: int):
        self._body = body
        self.size = size

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes."""
        return self._body.read(n)

    def close(self) -> None:
        """Release the HTTP connection."""
        self._body.close()


class _ObjectWriter:
    """Buffers up to one part; switches to a multipart upload when the data outgrows it."""

    def __init__(self, client, bucket: str, key: str, part_bytes: int):
        self._client = client
        self._bucket = bucket
        self._key = key
        self._part_bytes = part_bytes
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict] = []
        self._finished = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append bytes, sending every full part."""
        self._buffer += data
        while len(self._buffer) >= self._part_bytes:
            part = bytes(self._buffer[:self._part_bytes])
            del self._buffer[:self._part_bytes]
            self._send_part(part)

    def _send_part(self, data: bytes) -> None:
        try:
            if self._upload_id is None:
                created = self._client.create_multipart_upload(Bucket=self._bucket, Key=self._key)
                self._upload_id = created["UploadId"]
            number = len(self._parts) + 1
            sent = self._client.upload_part(Bucket=self._bucket, Key=self._key, UploadId=self._upload_id,
                                            PartNumber=number, Body=data)
        except Exception as exc:
            raise _unavailable("upload", exc) from None
        self._parts.append({"PartNumber": number, "ETag": sent["ETag"]})

    def commit(self) -> None:
        """Publish the object: one PutObject, or the last part and CompleteMultipartUpload."""
        with translated(_unavailable, "upload"):
            if self._upload_id is None:
                self._client.put_object(Bucket=self._bucket, Key=self._key, Body=bytes(self._buffer))
            else:
                if self._buffer:
                    self._send_part(bytes(self._buffer))
                self._client.complete_multipart_upload(Bucket=self._bucket, Key=self._key,
                                                       UploadId=self._upload_id,
                                                       MultipartUpload={"Parts": self._parts})
        self._buffer = bytearray()
        self._finished = True

    def abort(self) -> None:
        """Drop the buffer and abort the multipart upload, so S3 keeps no parts."""
        if self._finished:
            return
        self._finished = True
        self._buffer = bytearray()
        if self._upload_id is not None:
            try:
                self._client.abort_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=self._upload_id)
            except Exception as exc:
                # A bucket lifecycle rule (AbortIncompleteMultipartUpload) is the backstop.
                logger.warning("S3 abort of a multipart upload failed: %s", type(exc).__name__)


class S3ArtifactRepository(ObjectStoreRepository):
    """Artifacts stored under one prefix of an S3 bucket; directories are key prefixes."""

    def __init__(self, destination: S3Destination, client, *, part_bytes: int = DEFAULT_PART_BYTES):
        if part_bytes < 5 * 1024 * 1024:
            raise ValueError("S3 multipart parts must be at least 5 MiB")
        self.destination = destination
        self.client = client
        self.part_bytes = part_bytes

    @classmethod
    def from_uri(cls, uri: str) -> S3ArtifactRepository:
        """The repository for ``s3://bucket/prefix`` with the endpoint from ``MLFLOW_S3_ENDPOINT_URL``."""
        return cls(parsed_or_raise(parse_s3_destination(uri)), make_client(os.environ.get(ENDPOINT_ENV) or None))

    def _unavailable(self, action: str, exc: BaseException) -> MlflowError:
        return _unavailable(action, exc)

    def _pages(self, prefix: str, *, delimiter: str | None = None):
        args = {"Bucket": self.destination.bucket, "Prefix": prefix}
        if delimiter:
            args["Delimiter"] = delimiter
        yield from self.client.get_paginator("list_objects_v2").paginate(**args)

    def _sdk_children(self, prefix: str):
        for page in self._pages(prefix, delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                yield common["Prefix"], True, None
            for item in page.get("Contents", []):
                yield item["Key"], False, int(item["Size"])

    def _sdk_below(self, prefix: str):
        for page in self._pages(prefix):
            for item in page.get("Contents", []):
                yield item["Key"], int(item["Size"])

    def _sdk_any_below(self, prefix: str) -> bool:
        found = self.client.list_objects_v2(Bucket=self.destination.bucket, Prefix=prefix, MaxKeys=1)
        return found.get("KeyCount", 0) > 0

    def _sdk_exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.destination.bucket, Key=key)
        except Exception as exc:
            if _error_code(exc) in _MISSING:
                return False
            raise
        return True

    def _sdk_open(self, key: str) -> _ObjectReader | None:
        try:
            found = self.client.get_object(Bucket=self.destination.bucket, Key=key)
        except Exception as exc:
            if _error_code(exc) in _MISSING:
                return None
            raise
        return _ObjectReader(found["Body"], int(found["ContentLength"]))

    def _sdk_writer(self, key: str) -> _ObjectWriter:
        return _ObjectWriter(self.client, self.destination.bucket, key, self.part_bytes)

    def _sdk_remove(self, keys) -> None:
        batch: list[dict] = []
        for key in keys:
            batch.append({"Key": key})
            if len(batch) == _DELETE_BATCH:
                self._delete_batch(batch)
                batch = []
        if batch:
            self._delete_batch(batch)

    def _delete_batch(self, batch: list[dict]) -> None:
        answer = self.client.delete_objects(Bucket=self.destination.bucket, Delete={"Objects": batch, "Quiet": True})
        if answer.get("Errors"):
            raise _unavailable("delete", RuntimeError(answer["Errors"][0].get("Code", "error")))
