"""Artifacts in an Azure Blob Storage container, through azure-storage-blob (``pip install 'mlgate[azure]'``).

Keys are ``<prefix>/<canonical artifact path>``, built only from paths that passed
:mod:`tracking.artifacts.paths`, exactly as in :mod:`tracking.artifacts.s3`. Uploads are streamed: a small
file is one Put Blob; a larger one is staged block by block (Put Block; memory stays at about one block) and
becomes visible only with the final Put Block List. Azure has no call that discards staged blocks: an
aborted upload commits nothing, and its uncommitted blocks are deleted by the service (after 7 days at the
latest, or at the blob's next commit). Downloads read ranges of one blob version (the SDK pins every range
to the first answer's ETag) one chunk at a time. The SDK is blocking; the endpoints call these methods on
worker threads.

Credentials, in MLflow's order: ``AZURE_STORAGE_CONNECTION_STRING`` (which may carry an account key or a
SAS, and names the endpoint: Azurite in tests), ``AZURE_STORAGE_ACCESS_KEY`` (the account's key),
``AZURE_STORAGE_SAS_TOKEN``, else ``DefaultAzureCredential`` (managed identity, workload identity, the
``AZURE_CLIENT_*`` variables, ``az login``; needs azure-identity). None is ever logged or put in an error.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import re
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from tracking.artifacts.object_store import (
    ObjectStoreRepository,
    parsed_or_raise,
    prefixed_key,
    store_unavailable,
    translated,
    uri_prefix_problems,
)
from tracking.errors import MlflowError

CONNECTION_STRING_ENV = "AZURE_STORAGE_CONNECTION_STRING"
ACCESS_KEY_ENV = "AZURE_STORAGE_ACCESS_KEY"
SAS_TOKEN_ENV = "AZURE_STORAGE_SAS_TOKEN"  # noqa: S105 (a variable name, not a token)
DEFAULT_BLOCK_BYTES = 8 * 1024 * 1024
# Ranges read per request: also the first request's size (the SDK's default first read is 32 MiB).
READ_CHUNK_BYTES = 4 * 1024 * 1024
MAX_NAME_BYTES = 1024  # blob names: at most 1,024 characters
# Public Azure, Azure China and Azure Government blob endpoints (as MLflow accepts them).
_HOST = re.compile(r"(?P<account>[a-z0-9]{3,24})\.(?P<suffix>blob\.core\.(?:windows\.net|chinacloudapi\.cn|"
                   r"usgovcloudapi\.net))")
# learn.microsoft.com/rest/api/storageservices/naming-and-referencing-containers--blobs--and-metadata
_CONTAINER = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")

logger = logging.getLogger("mlgate.artifacts.azure")


@dataclass(frozen=True)
class AzureDestination:
    """A storage account, a container and a key prefix, from ``wasbs://container@account.blob.../prefix``."""

    account: str
    endpoint_suffix: str
    container: str
    prefix: str

    @property
    def account_url(self) -> str:
        """The account's blob endpoint."""
        return f"https://{self.account}.{self.endpoint_suffix}"

    def key(self, relative: str) -> str:
        """The blob name of a canonical root-relative path."""
        return prefixed_key(self.prefix, relative)


def parse_azure_destination(uri: str) -> tuple[AzureDestination | None, list[str]]:
    """The destination named by ``wasbs://container@account.blob.core.windows.net[/prefix]``, or every problem."""
    parts = urlsplit(uri)
    if parts.scheme == "abfss":
        return None, ["abfss:// (ADLS Gen2) is not supported; name the same account's blob endpoint instead: "
                      "wasbs://<container>@<account>.blob.core.windows.net/<prefix>"]
    if parts.scheme != "wasbs":
        return None, ["the URI must start with wasbs:// (wasb://, without TLS, is refused)"]
    problems = []
    container, at, host = parts.netloc.rpartition("@")
    match = _HOST.fullmatch(host)
    # The netloc is echoed only when it is plainly a container and an account name (never a password).
    if not at or ":" in parts.netloc or container.count("@"):
        problems.append("expected wasbs://<container>@<account>.blob.core.windows.net/<prefix> "
                        "(credentials do not belong in the URI; set AZURE_STORAGE_* variables)")
    else:
        if match is None:
            problems.append("the host must be <account>.blob.core.windows.net (or the Azure China or Azure "
                            "Government blob endpoint), with a 3-24 character lowercase account name")
        if not _CONTAINER.fullmatch(container):
            problems.append("the container name must be 3-63 lowercase letters, digits and single hyphens")
    prefix, more = uri_prefix_problems(parts, query_hint=f" (give a SAS in {SAS_TOKEN_ENV})")
    problems += more
    if problems:
        return None, problems
    return AzureDestination(match["account"], match["suffix"], container, prefix), []


def make_service_client(destination: AzureDestination, **options):
    """A BlobServiceClient with the first credential found; returns (client, the credential's source)."""
    from azure.storage.blob import BlobServiceClient

    options = {"max_single_get_size": READ_CHUNK_BYTES, "max_chunk_get_size": READ_CHUNK_BYTES,
               "connection_timeout": 10, "read_timeout": 60, **options}
    connection_string = os.environ.get(CONNECTION_STRING_ENV)
    if connection_string:
        return BlobServiceClient.from_connection_string(connection_string, **options), CONNECTION_STRING_ENV
    if os.environ.get(ACCESS_KEY_ENV):
        credential = {"account_name": destination.account, "account_key": os.environ[ACCESS_KEY_ENV]}
        return BlobServiceClient(destination.account_url, credential=credential, **options), ACCESS_KEY_ENV
    if os.environ.get(SAS_TOKEN_ENV):
        from azure.core.credentials import AzureSasCredential

        credential = AzureSasCredential(os.environ[SAS_TOKEN_ENV].lstrip("?"))
        return BlobServiceClient(destination.account_url, credential=credential, **options), SAS_TOKEN_ENV
    from azure.identity import DefaultAzureCredential

    credential = DefaultAzureCredential()
    return BlobServiceClient(destination.account_url, credential=credential, **options), "DefaultAzureCredential"


def _unavailable(action: str, exc: Exception) -> MlflowError:
    """503 for a storage failure; the class of the error goes to the log, never a URL or credential."""
    return store_unavailable(logger, f"Azure Blob {action}", exc)


def destination_problems(uri: str) -> list[str]:
    """Every problem with a ``wasbs://`` destination: its syntax, its credentials, whether the container lists."""
    destination, problems = parse_azure_destination(uri)
    if destination is None:
        return problems
    try:
        from azure.core import exceptions as core
    except ImportError:
        return ["wasbs:// needs the Azure Blob Storage SDK: pip install 'mlgate[azure]'"]
    try:
        # No retries: an unreachable endpoint is reported at once, not after the SDK's ten attempts.
        service, source = make_service_client(destination, retry_total=0)
    except ImportError:
        return ["no Azure credentials were given and DefaultAzureCredential needs azure-identity: "
                f"set {CONNECTION_STRING_ENV}, {ACCESS_KEY_ENV} or {SAS_TOKEN_ENV}, or pip install 'mlgate[azure]'"]
    except ValueError as exc:  # a malformed connection string; its text may hold the key, so only the class
        return [f"{CONNECTION_STRING_ENV} cannot be used ({type(exc).__name__}); check its format"]
    if service.account_name != destination.account:
        return [f"{CONNECTION_STRING_ENV} is for another storage account than '{destination.account}' "
                "named by the destination"]
    where = f"storage account '{destination.account}'"
    container = f"container '{destination.container}' in {where}"
    try:
        pages = service.get_container_client(destination.container).list_blobs(
            name_starts_with=destination.key("")).by_page()
        next(iter(next(pages)), None)
    except core.ResourceNotFoundError:
        return [f"{container} does not exist"]
    except core.ClientAuthenticationError as exc:
        if type(exc).__name__ == "CredentialUnavailableError":
            return ["no Azure credentials found (set AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_ACCESS_KEY or "
                    "AZURE_STORAGE_SAS_TOKEN, or configure a managed identity for DefaultAzureCredential)"]
        return [f"the credentials from {source} were refused by {where}"]
    except core.HttpResponseError as exc:
        if exc.status_code in (401, 403):
            return [f"access to {container} was denied for the credentials from {source} (they need to list, "
                    "read, write and delete blobs)"]
        return [f"{container} answered with error {exc.status_code or 'unknown'}"]
    except (core.ServiceRequestError, core.ServiceResponseError, OSError) as exc:
        return [f"the blob endpoint of {where} is not reachable ({type(exc).__name__}); check the network"
                + (f" and {CONNECTION_STRING_ENV}" if source == CONNECTION_STRING_ENV else "")]
    except core.AzureError as exc:
        return [f"{container} could not be checked ({type(exc).__name__})"]
    finally:
        service.close()
    return []


class _BlobReader:
    """A blob downloaded range by range, every range of the version first seen."""

    def __init__(self, downloader, size: int):
        self._chunks = downloader.chunks()
        self._pending = b""
        self.size = size

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes."""
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return b""
            self._pending = chunk
        out, self._pending = self._pending[:n], self._pending[n:]
        return out

    def close(self) -> None:
        """Stop downloading."""
        self._chunks = iter(())
        self._pending = b""


class _BlockWriter:
    """Buffers up to one block; stages blocks once the data outgrows it; commits the block list."""

    def __init__(self, blob, block_bytes: int):
        self._blob = blob
        self._block_bytes = block_bytes
        self._buffer = bytearray()
        # Block ids of one blob must all have the same length; a random part keeps two concurrent
        # uploads to the same name from committing each other's blocks.
        self._upload = secrets.token_hex(16)
        self._blocks: list[str] = []
        self._finished = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append bytes, staging every full block."""
        self._buffer += data
        while len(self._buffer) >= self._block_bytes:
            self._stage(bytes(self._buffer[:self._block_bytes]))
            del self._buffer[:self._block_bytes]

    def _stage(self, data: bytes) -> None:
        block_id = base64.b64encode(f"{self._upload}-{len(self._blocks):08d}".encode()).decode()
        try:
            self._blob.stage_block(block_id, data, length=len(data))
        except Exception as exc:
            raise _unavailable("upload", exc) from None
        self._blocks.append(block_id)

    def commit(self) -> None:
        """Publish the blob: one Put Blob, or the last block and Put Block List."""
        from azure.storage.blob import BlobBlock

        with translated(_unavailable, "upload"):
            if not self._blocks:
                self._blob.upload_blob(bytes(self._buffer), overwrite=True, length=len(self._buffer))
            else:
                if self._buffer:
                    self._stage(bytes(self._buffer))
                self._blob.commit_block_list([BlobBlock(block_id) for block_id in self._blocks])
        self._buffer = bytearray()
        self._finished = True

    def abort(self) -> None:
        """Drop the buffer; nothing was committed, and the service deletes the staged blocks."""
        self._finished = True
        self._buffer = bytearray()
        self._blocks = []


class AzureBlobArtifactRepository(ObjectStoreRepository):
    """Artifacts stored under one prefix of an Azure Blob container; directories are name prefixes."""

    def __init__(self, destination: AzureDestination, service, *, block_bytes: int = DEFAULT_BLOCK_BYTES):
        if block_bytes <= 0:
            raise ValueError("the block size must be positive")
        self.destination = destination
        self.service = service
        self.container = service.get_container_client(destination.container)
        self.block_bytes = block_bytes

    @classmethod
    def from_uri(cls, uri: str) -> AzureBlobArtifactRepository:
        """The repository for ``wasbs://container@account.blob.core.windows.net/prefix``."""
        destination = parsed_or_raise(parse_azure_destination(uri))
        service, _ = make_service_client(destination)
        return cls(destination, service)

    def _unavailable(self, action: str, exc: BaseException) -> MlflowError:
        return _unavailable(action, exc)

    def _key_problem(self, key: str) -> str | None:
        if len(key) > MAX_NAME_BYTES:
            return f"longer than the {MAX_NAME_BYTES} characters a blob name may have"
        return None

    def _sdk_children(self, prefix: str):
        from azure.storage.blob import BlobPrefix

        for item in self.container.walk_blobs(name_starts_with=prefix, delimiter="/"):
            is_dir = isinstance(item, BlobPrefix)
            yield item.name, is_dir, None if is_dir else int(item.size)

    def _sdk_below(self, prefix: str):
        for blob in self.container.list_blobs(name_starts_with=prefix or None):
            yield blob.name, int(blob.size)

    def _sdk_any_below(self, prefix: str) -> bool:
        page = next(self.container.list_blobs(name_starts_with=prefix, results_per_page=1).by_page())
        return next(iter(page), None) is not None

    def _sdk_exists(self, key: str) -> bool:
        return self.container.get_blob_client(key).exists()

    def _sdk_open(self, key: str) -> _BlobReader | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            downloader = self.container.get_blob_client(key).download_blob(max_concurrency=1)
        except ResourceNotFoundError:
            return None
        return _BlobReader(downloader, int(downloader.size))

    def _sdk_writer(self, key: str) -> _BlockWriter:
        return _BlockWriter(self.container.get_blob_client(key), self.block_bytes)

    def _sdk_remove(self, keys) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        for key in keys:
            with contextlib.suppress(ResourceNotFoundError):  # removed concurrently
                self.container.delete_blob(key)
