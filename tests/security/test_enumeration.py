"""Advisory class: user enumeration. A user who manages a resource may read and remove other users' grants on it;
the answers must not tell whether an arbitrary username belongs to an account.

alice owns (so manages) an experiment and a registered model; carol is an account with no grant on either; the
unknown name belongs to no account. Every permission route that takes a username answers the same for both
(the name itself aside), and nothing changes in the database.
"""

from __future__ import annotations

import secrets

import httpx
import pytest

from tests.security.conftest import A, Unchanged, make_user

# The server follows MLGATE_TEST_BACKEND: CI runs this module again on PostgreSQL.
pytestmark = pytest.mark.backend_switch

A3 = "/api/3.0/mlflow"


@pytest.fixture(scope="module")
def world(server):
    """alice's experiment and model, an account without grants and an unused name of the same length."""
    alice = httpx.Client(base_url=server.url, headers=make_user(server, "alice-en").headers, timeout=30)
    exp = alice.post(f"{A}/experiments/create", json={"name": "alice-en-exp"}).json()["experiment_id"]
    assert alice.post(f"{A}/registered-models/create", json={"name": "alice-en-model"}).status_code == 200
    real = "carol-" + secrets.token_hex(4)
    make_user(server, real)
    unknown = "nobod-" + secrets.token_hex(4)
    yield alice, exp, real, unknown
    alice.close()


def _requests(exp: str, username: str) -> list[tuple[str, str, dict]]:
    """(method, path, query-or-body) of every permission route that reads or removes a named user's grant."""
    return [
        ("GET", f"{A3}/users/permissions/get", {"resource_type": "experiment", "resource_id": exp,
                                                "username": username}),
        ("GET", f"{A3}/users/permissions/get", {"resource_type": "registered_model", "resource_id": "alice-en-model",
                                                "username": username}),
        ("GET", f"{A}/experiments/permissions/get", {"experiment_id": exp, "username": username}),
        ("GET", f"{A}/registered-models/permissions/get", {"name": "alice-en-model", "username": username}),
        ("DELETE", f"{A}/experiments/permissions/delete", {"experiment_id": exp, "username": username}),
        ("POST", f"{A}/experiments/permissions/delete", {"experiment_id": exp, "username": username}),
        ("DELETE", f"{A}/registered-models/permissions/delete", {"name": "alice-en-model", "username": username}),
        ("POST", f"{A3}/users/permissions/revoke", {"resource_type": "experiment", "resource_id": exp,
                                                    "username": username}),
        ("POST", f"{A3}/users/permissions/revoke", {"resource_type": "registered_model",
                                                    "resource_id": "alice-en-model", "username": username}),
    ]


def _answer(client: httpx.Client, method: str, path: str, args: dict, username: str) -> tuple[int, str]:
    if method == "GET":
        response = client.get(path, params=args)
    else:
        response = client.request(method, path, json=args)
    return response.status_code, response.text.replace(username, "<name>")


def test_user_enumeration_by_a_resource_manager(server, world):
    alice, exp, real, unknown = world
    unchanged = Unchanged(server)
    for (method, path, for_real), (_, _, for_unknown) in zip(_requests(exp, real), _requests(exp, unknown),
                                                             strict=True):
        about_real = _answer(alice, method, path, for_real, real)
        about_unknown = _answer(alice, method, path, for_unknown, unknown)
        assert about_real == about_unknown, (method, path)
        assert about_real[0] in (200, 404), (method, path, about_real)
        assert "exist" in about_real[1] or '"NO_PERMISSIONS"' in about_real[1], (method, path, about_real)
    unchanged.check()


def test_a_granted_permission_is_still_answered(server, world):
    # Control: the routes above do answer about a real grant, so equal answers are not equal blanks.
    alice, exp, real, _ = world
    made = alice.post(f"{A}/experiments/permissions/create", json={"experiment_id": exp, "username": real,
                                                                   "permission": "EDIT"})
    assert made.status_code == 200, made.text
    try:
        got = alice.get(f"{A}/experiments/permissions/get", params={"experiment_id": exp, "username": real})
        assert got.status_code == 200
        assert got.json()["experiment_permission"]["permission"] == "EDIT"
        effective = alice.get(f"{A3}/users/permissions/get", params={"resource_type": "experiment",
                                                                    "resource_id": exp, "username": real})
        assert effective.json() == {"allowed": True, "permission": "EDIT"}
    finally:
        assert alice.request("DELETE", f"{A}/experiments/permissions/delete",
                             json={"experiment_id": exp, "username": real}).status_code == 200
