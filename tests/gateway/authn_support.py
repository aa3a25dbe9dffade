"""Shared helpers for the authentication tests: apps with a given auth: section, users, tokens."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml
from starlette.testclient import TestClient

from tests.conftest import TEST_ADMIN_TOKEN

BASE_URL = "http://127.0.0.1:5000"
USER_PASSWORD = "saffron-meadow-kettle-7"
# Cheap hashing and room for the failures a test makes on purpose.
FAST_AUTH = {"passwords": {"hash_rounds": 10},
             "lockout": {"user_max_failures": 50, "address_max_failures": 500}}


def basic(username: str, password: str) -> dict[str, str]:
    """An Authorization header for HTTP Basic."""
    raw = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def bearer(token: str) -> dict[str, str]:
    """An Authorization header for a bearer token."""
    return {"Authorization": f"Bearer {token}"}


ADMIN = bearer(TEST_ADMIN_TOKEN)


def policy_file(tmp_path: Path, auth: dict) -> str:
    """Write a policy file with this ``auth:`` section; returns its path."""
    path = tmp_path / f"policy-{abs(hash(repr(auth)))}.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "auth": auth}))
    return str(path)


def make_client(app_factory, tmp_path: Path, auth: dict | None = None, *, client_addr=("testclient", 50000),
                base_url: str = BASE_URL, **overrides) -> TestClient:
    """A TestClient (enter it with ``with``) over an app with this auth: section; no credentials by default."""
    merged = {**FAST_AUTH, **(auth or {})}
    app = app_factory(policy_file=policy_file(tmp_path, merged), **overrides)
    return TestClient(app, base_url=base_url, client=client_addr, follow_redirects=False)


def create_user(client: TestClient, username: str, password: str = USER_PASSWORD, **extra) -> dict:
    """Create a user through the API as the test administrator."""
    response = client.post("/api/2.0/mlflow/users/create", json={"username": username, "password": password, **extra},
                           headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()["user"]


def create_token(client: TestClient, headers: dict, **fields) -> str:
    """Issue a token with ``headers`` as the caller; returns the secret."""
    body = {"name": "test", "expires_in_days": 7, **fields}
    response = client.post("/api/2.0/mlflow/users/tokens/create", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["token"]
