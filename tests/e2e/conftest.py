"""End-to-end fixtures: one real server per backend per session, driven by the real mlflow client."""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import BACKENDS, LiveServer, start_server
from tests.e2e.jwt_auth import JwtAuth, start_jwt_auth
from tests.services import S3Server, azurite_server, fresh_postgres_database, gcs_server, s3_server

E2E_AUTH = os.environ.get("MLGATE_E2E_AUTH", "basic")
# MLGATE_E2E_USER=member runs the client as an ordinary user instead of the administrator (who bypasses every
# check): it holds what it creates (owner grants) and what its group is granted (see e2e_member), nothing else.
# Tests of admin-only APIs keep using the administrator's credentials explicitly. MLGATE_E2E_AUTH=jwt has its
# own non-admin service account and ignores this switch.
E2E_USER = os.environ.get("MLGATE_E2E_USER", "admin")
if E2E_USER not in ("admin", "member"):
    raise pytest.UsageError(f"MLGATE_E2E_USER must be admin or member, got {E2E_USER!r}")
MEMBER = "e2e-member"
MEMBER_GROUP = "e2e-team"
MEMBER_PASSWORD = "member-" + secrets.token_urlsafe(18)
# The group's grants: EDIT on every experiment named e2e-shared/..., READ on one experiment the admin made.
SHARED_PREFIX = "e2e-shared/"
ADMINS_EXPERIMENT = "e2e-admins-experiment"
AS_MEMBER = E2E_USER == "member" and E2E_AUTH != "jwt"
# MLGATE_E2E_ARTIFACTS=s3 runs the e2e servers with their artifacts on a local S3 API server (moto); gcs on a
# local GCS emulator (gcp-storage-emulator); azure on Azurite, Microsoft's Azure Storage emulator.
E2E_ARTIFACTS = os.environ.get("MLGATE_E2E_ARTIFACTS", "local")
if E2E_ARTIFACTS not in ("local", "s3", "gcs", "azure"):
    raise pytest.UsageError(f"MLGATE_E2E_ARTIFACTS must be local, s3, gcs or azure, got {E2E_ARTIFACTS!r}")
E2E_S3_PREFIX = "e2e/artifacts"
# MLGATE_E2E_BACKENDS=sqlite (or postgresql, or both comma-separated; default both): the databases the real-client
# servers run on. CI's extra passes (another user, token, JWT or object store) each take one backend, since the
# first pass already ran every client test on both.
E2E_BACKENDS = [name.strip() for name in os.environ.get("MLGATE_E2E_BACKENDS", ",".join(BACKENDS)).split(",")]
if not E2E_BACKENDS or any(name not in BACKENDS for name in E2E_BACKENDS):
    raise pytest.UsageError(f"MLGATE_E2E_BACKENDS must name some of {BACKENDS}, got {E2E_BACKENDS!r}")
_admin_tokens: dict[str, str] = {}


def admin_token(server: LiveServer) -> str:
    """A personal access token of the server's administrator (made once per server)."""
    if server.url not in _admin_tokens:
        response = httpx.post(f"{server.url}/api/2.0/mlflow/users/tokens/create", auth=server.admin_auth,
                              json={"name": "e2e", "expires_in_days": 1}, timeout=30)
        response.raise_for_status()
        _admin_tokens[server.url] = response.json()["token"]
    return _admin_tokens[server.url]


@dataclass(frozen=True)
class ObjectStore:
    """The object store of MLGATE_E2E_ARTIFACTS: its emulator, and how a server is pointed at a fresh bucket."""

    kind: str
    emulator: object

    def destination(self) -> str:
        """A fresh bucket or container, as an ``--artifacts-destination`` URI."""
        if self.kind == "s3":
            return f"s3://{self.emulator.new_bucket()}/{E2E_S3_PREFIX}"
        if self.kind == "gcs":
            return f"gs://{self.emulator.new_bucket()}/{E2E_S3_PREFIX}"
        return self.emulator.uri(self.emulator.new_container(), E2E_S3_PREFIX)


@pytest.fixture(scope="session")
def e2e_store() -> Iterator[ObjectStore | None]:
    """With ``MLGATE_E2E_ARTIFACTS=s3|gcs|azure``: one local emulator of that store for the session's servers."""
    if E2E_ARTIFACTS == "local":
        yield None
        return
    start = {"s3": s3_server, "gcs": gcs_server, "azure": azurite_server}[E2E_ARTIFACTS]
    with start() as emulator:
        yield ObjectStore(E2E_ARTIFACTS, emulator)


@pytest.fixture(scope="session", params=E2E_BACKENDS)
def e2e_server(request, tmp_path_factory, e2e_store, e2e_jwt) -> Iterator[LiveServer]:
    """A real ``mlgate server`` on SQLite, then on PostgreSQL, shared by the e2e tests of a session."""
    workdir = tmp_path_factory.mktemp(f"e2e-{request.param}")
    args, env = [], None
    if e2e_store is not None:  # artifacts in a fresh bucket instead of workdir/artifacts
        args, env = ["--artifacts-destination", e2e_store.destination()], e2e_store.emulator.env
    if e2e_jwt is not None:  # MLGATE_E2E_AUTH=jwt: a policy trusting the session's IdP
        args = [*args, *e2e_jwt.server_args(workdir)]
    if request.param == "postgresql":
        with fresh_postgres_database() as uri:
            server = start_server(workdir, uri, *args, env=env)
            yield server
            server.stop()
    else:
        server = start_server(workdir, f"sqlite:///{workdir / 'mlgate.db'}", *args, env=env)
        yield server
        server.stop()


def stored_artifact(server: LiveServer, path: str) -> bytes:
    """The bytes the server stored for a root-relative artifact path, read from its disk, bucket or container."""
    if "--artifacts-destination" not in server.args:
        return (server.workdir / "artifacts" / path).read_bytes()
    uri = server.args[server.args.index("--artifacts-destination") + 1]
    if uri.startswith("gs://"):
        from tests.services import GcsServer
        from tracking.artifacts.gcs import parse_gcs_destination

        destination, _ = parse_gcs_destination(uri)
        client = GcsServer(server.env["STORAGE_EMULATOR_HOST"], None).client()
        return client.bucket(destination.bucket).blob(destination.key(path)).download_as_bytes()
    if uri.startswith("wasbs://"):
        from azure.storage.blob import BlobServiceClient

        from tracking.artifacts.azure import parse_azure_destination

        destination, _ = parse_azure_destination(uri)
        client = BlobServiceClient.from_connection_string(server.env["AZURE_STORAGE_CONNECTION_STRING"])
        return client.get_blob_client(destination.container, destination.key(path)).download_blob().readall()
    from tracking.artifacts.s3 import parse_s3_destination

    destination, _ = parse_s3_destination(uri)
    client = S3Server(server.env["MLFLOW_S3_ENDPOINT_URL"], None).client()
    return client.get_object(Bucket=destination.bucket, Key=destination.key(path))["Body"].read()


@dataclass(frozen=True)
class Member:
    """The ordinary user of MLGATE_E2E_USER=member on one server, and what its group was granted."""

    username: str
    password: str
    token: str
    admins_experiment_id: str  # the group may READ it, not change it


_members: dict[str, Member] = {}


def e2e_member(server: LiveServer) -> Member:
    """The member account on ``server``, made once: a user in one group, and the group's two grants."""
    if server.url in _members:
        return _members[server.url]

    def as_admin(path: str, body: dict) -> dict:
        response = httpx.post(f"{server.url}{path}", auth=server.admin_auth, json=body, timeout=30)
        response.raise_for_status()
        return response.json()

    as_admin("/api/2.0/mlflow/users/create", {"username": MEMBER, "password": MEMBER_PASSWORD})
    as_admin("/api/2.0/mlgate/groups/create", {"name": MEMBER_GROUP})
    as_admin("/api/2.0/mlgate/groups/add-member", {"group": MEMBER_GROUP, "username": MEMBER})
    as_admin("/api/2.0/mlgate/grants/put", {"subject": f"group:{MEMBER_GROUP}",
                                           "resource": f"experiment-name:{SHARED_PREFIX}*", "permission": "EDIT"})
    experiment_id = as_admin("/api/2.0/mlflow/experiments/create", {"name": ADMINS_EXPERIMENT})["experiment_id"]
    as_admin("/api/2.0/mlgate/grants/put", {"subject": f"group:{MEMBER_GROUP}",
                                           "resource": f"experiment:{experiment_id}", "permission": "READ"})
    # The member makes its own token, as a user would on the account page.
    response = httpx.post(f"{server.url}/api/2.0/mlflow/users/tokens/create", auth=(MEMBER, MEMBER_PASSWORD),
                          json={"name": "e2e", "expires_in_days": 1}, timeout=30)
    response.raise_for_status()
    _members[server.url] = Member(MEMBER, MEMBER_PASSWORD, response.json()["token"], experiment_id)
    return _members[server.url]


@pytest.fixture(scope="session")
def e2e_jwt(tmp_path_factory) -> Iterator[JwtAuth | None]:
    """With ``MLGATE_E2E_AUTH=jwt``: one real IdP for the session, whose JWT access tokens the servers accept."""
    if E2E_AUTH != "jwt":
        yield None
        return
    jwt = start_jwt_auth(tmp_path_factory.mktemp("e2e-idp"))
    yield jwt
    jwt.idp.stop()


@pytest.fixture
def mlflow_client(e2e_server: LiveServer, e2e_jwt: JwtAuth | None, monkeypatch):
    """The real ``mlflow`` client pointed at the e2e server through the standard environment variable."""
    import mlflow
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", e2e_server.url)
    # The server requires authentication. By default the client sends the administrator's HTTP Basic
    # credentials; MLGATE_E2E_AUTH=token runs the same suite with a personal access token instead.
    # MLGATE_E2E_USER=member: the same, as an ordinary user (e2e_member) instead of the administrator.
    member = e2e_member(e2e_server) if AS_MEMBER else None
    if E2E_AUTH == "token":
        monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
        monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", member.token if member else admin_token(e2e_server))
    elif E2E_AUTH == "jwt":  # a client-credentials JWT from the IdP, for a service account with grants only
        monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
        monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", e2e_jwt.token())
    else:
        monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", member.username if member else e2e_server.admin_username)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", member.password if member else e2e_server.admin_password)
    mlflow.set_tracking_uri(e2e_server.url)
    # The tracer provider keeps the exporter of the first server it saw; the e2e server changes
    # between backends, so start each test with a fresh provider.
    mlflow.tracing.reset()
    yield MlflowClient(e2e_server.url)
    if mlflow.active_run() is not None:
        mlflow.end_run()


@pytest.fixture
def unique_name() -> str:
    """A name no other test uses (the e2e server is shared)."""
    return f"e2e-{uuid.uuid4().hex[:10]}"
