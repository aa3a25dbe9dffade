"""The admin API under /api/2.0/mlgate: admin-only, bad input is a 4xx that changes nothing."""

from __future__ import annotations

A = "/api/2.0/mlgate"
M = "/api/2.0/mlflow"


def _token(client, username: str | None = None, read_only: bool = False) -> str:
    body = {"name": "t", "expires_in_days": 1, "read_only": read_only}
    if username:
        body["username"] = username
    response = client.post(f"{M}/users/tokens/create", json=body)
    assert response.status_code == 200, response.text
    return response.json()["token"]


BAD_REQUESTS = [
    ("post", "/groups/create", {"json": {"name": "has space"}}, "INVALID_PARAMETER_VALUE"),
    ("post", "/groups/create", {"json": {"name": "a:b"}}, "INVALID_PARAMETER_VALUE"),
    ("post", "/groups/create", {"json": {}}, "INVALID_PARAMETER_VALUE"),
    ("post", "/groups/delete", {"json": {"name": "missing"}}, "RESOURCE_DOES_NOT_EXIST"),
    ("post", "/groups/add-member", {"json": {"group": "missing", "username": "admin"}}, "RESOURCE_DOES_NOT_EXIST"),
    ("post", "/grants/put", {"json": {"subject": "alice", "resource": "experiment:0", "permission": "READ"}},
     "INVALID_PARAMETER_VALUE"),
    ("post", "/grants/put", {"json": {"subject": "user:admin", "resource": "experiment:x", "permission": "READ"}},
     "INVALID_PARAMETER_VALUE"),
    ("post", "/grants/put", {"json": {"subject": "user:admin", "resource": "experiment:0", "permission": "WRITE"}},
     "INVALID_PARAMETER_VALUE"),
    ("post", "/grants/put", {"json": {"subject": "user:ghost", "resource": "experiment:0", "permission": "READ"}},
     "RESOURCE_DOES_NOT_EXIST"),
    ("post", "/grants/put", {"json": {"subject": "service:admin", "resource": "experiment:0",
                                      "permission": "READ"}}, "INVALID_PARAMETER_VALUE"),
    ("post", "/grants/put", {"json": {"subject": "group:team", "resource": "experiment-name:a*",
                                      "permission": "NO_PERMISSIONS"}}, "RESOURCE_DOES_NOT_EXIST"),
    ("post", "/grants/revoke", {"json": {"subject": "user:admin", "resource": "model:none"}},
     "RESOURCE_DOES_NOT_EXIST"),
    ("get", "/perms/explain", {"params": {"username": "admin", "experiment_id": "abc", "action": "READ"}},
     "RESOURCE_DOES_NOT_EXIST"),
    ("get", "/perms/explain", {"params": {"username": "admin", "experiment_id": "99999999999999999999999",
                                          "action": "READ"}}, "RESOURCE_DOES_NOT_EXIST"),
    ("get", "/perms/explain", {"params": {"username": "admin", "action": "READ"}}, "INVALID_PARAMETER_VALUE"),
    ("get", "/perms/explain", {"params": {"username": "admin", "experiment_id": "0", "model": "m",
                                          "action": "READ"}}, "INVALID_PARAMETER_VALUE"),
    ("get", "/perms/explain", {"params": {"username": "admin", "experiment_id": "0", "action": "FLY"}},
     "INVALID_PARAMETER_VALUE"),
    ("get", "/audit/list", {"params": {"since": "-1"}}, "INVALID_PARAMETER_VALUE"),
    ("get", "/audit/list", {"params": {"limit": "100000"}}, "INVALID_PARAMETER_VALUE"),
    ("get", "/users/list", {"params": {"kind": "robot"}}, "INVALID_PARAMETER_VALUE"),
    ("post", "/policy/apply", {"json": {"access": "everything"}}, "INVALID_PARAMETER_VALUE"),
    ("post", "/policy/apply", {"json": {"access": {"grants": [{"principal": "user:admin"}]}}},
     "INVALID_PARAMETER_VALUE"),
]


def test_bad_input_is_a_4xx_and_changes_nothing(client):
    # One app for every case: building an app per case would dominate the run time.
    before = (client.get(f"{A}/groups/list").json(), client.get(f"{A}/grants/list").json())
    for method, path, kwargs, code in BAD_REQUESTS:
        response = getattr(client, method)(A + path, **kwargs)
        assert 400 <= response.status_code < 500, (path, kwargs, response.text)
        assert response.json()["error_code"] == code, (path, kwargs, response.text)
    assert (client.get(f"{A}/groups/list").json(), client.get(f"{A}/grants/list").json()) == before


def test_only_administrators_and_never_a_read_only_token(client):
    made = client.post(f"{M}/users/create", json={"username": "plain", "password": "Unrelated-pass-1"})
    assert made.status_code == 200, made.text
    plain = _token(client, "plain")
    read_only = _token(client, read_only=True)
    for token in (plain, read_only):
        headers = {"Authorization": f"Bearer {token}"}
        created = client.post(f"{A}/groups/create", json={"name": "nope"}, headers=headers)
        assert created.status_code == 403
        assert created.json()["error_code"] == "PERMISSION_DENIED"
    assert client.get(f"{A}/users/list", headers={"Authorization": f"Bearer {plain}"}).status_code == 403
    # A read-only admin token may still read.
    assert client.get(f"{A}/users/list", headers={"Authorization": f"Bearer {read_only}"}).status_code == 200
    assert "nope" not in [g["name"] for g in client.get(f"{A}/groups/list").json()["groups"]]


def test_deleting_a_group_removes_its_grants_so_a_new_group_of_that_name_starts_empty(client):
    client.post(f"{A}/groups/create", json={"name": "old"})
    client.post(f"{A}/grants/put", json={"subject": "group:old", "resource": "experiment:0", "permission": "EDIT"})
    assert client.post(f"{A}/groups/delete", json={"name": "old"}).status_code == 200
    client.post(f"{A}/groups/create", json={"name": "old"})
    assert client.get(f"{A}/grants/list", params={"subject": "group:old"}).json() == {"grants": []}


def test_a_grant_on_an_experiment_id_not_yet_made_is_refused(client):
    # Attack: a grant on experiment:<the next id> waits for whoever creates that experiment, and then gives
    # its holder the newcomer's experiment (ids are never reused, so only a future id can be named this way).
    made = client.post(f"{M}/users/create", json={"username": "early", "password": "Unrelated-pass-1"})
    assert made.status_code == 200, made.text
    probe = client.post(f"{M}/experiments/create", json={"name": "probe-for-next-id"}).json()["experiment_id"]
    future = str(int(probe) + 1)
    for path, body in ((f"{A}/grants/put", {"subject": "user:early", "resource": f"experiment:{future}",
                                            "permission": "READ"}),
                       (f"{M}/experiments/permissions/create", {"username": "early", "experiment_id": future,
                                                                "permission": "READ"})):
        refused = client.post(path, json=body)
        assert refused.status_code == 404, (path, refused.text)
        assert refused.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    applied = client.post(f"{A}/policy/apply", json={"access": {"grants": [
        {"principal": "user:early", "resource": f"experiment:{future}", "permission": "READ"}]}})
    assert applied.status_code == 400, applied.text
    assert f"access.grants[0].resource: Experiment '{future}' does not exist" in applied.json()["message"]
    created = client.post(f"{M}/experiments/create", json={"name": "newcomer"}).json()["experiment_id"]
    assert created == future
    assert client.get(f"{A}/grants/list", params={"subject": "user:early"}).json() == {"grants": []}
