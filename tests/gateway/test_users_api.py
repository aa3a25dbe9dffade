"""The MLflow-compatible user API and the token API: fields, errors, and who may do what."""

from __future__ import annotations

import pytest

from tests.conftest import TEST_ADMIN_PASSWORD, TEST_ADMIN_TOKEN
from tests.gateway.authn_support import ADMIN, USER_PASSWORD, basic, bearer, create_token, create_user, make_client

U = "/api/2.0/mlflow/users"
ALICE = basic("alice", USER_PASSWORD)


@pytest.fixture
def client(app_factory, tmp_path):
    with make_client(app_factory, tmp_path) as c:
        create_user(c, "alice")
        create_user(c, "bob")
        yield c


def _error(response, status: int, code: str, message: str | None = None):
    assert response.status_code == status, response.text
    assert response.json()["error_code"] == code
    if message is not None:
        assert response.json()["message"] == message


def test_create_returns_mlflows_user_json(client):
    response = client.post(f"{U}/create", json={"username": "carol", "password": USER_PASSWORD}, headers=ADMIN)
    user = response.json()["user"]
    assert set(user) == {"id", "username", "is_admin"}
    assert user["username"] == "carol"
    assert user["is_admin"] is False
    assert "password" not in response.text


@pytest.mark.parametrize(("body", "status", "code", "message"), [
    ({"username": "alice", "password": USER_PASSWORD}, 400, "RESOURCE_ALREADY_EXISTS",
     "User (username=alice) already exists."),
    ({"username": "", "password": USER_PASSWORD}, 400, "INVALID_PARAMETER_VALUE",
     "Username and password cannot be empty."),
    ({"username": "dan"}, 400, "INVALID_PARAMETER_VALUE", "Username and password cannot be empty."),
    ({"username": "dan", "password": "short"}, 400, "INVALID_PARAMETER_VALUE",
     "The password must be at least 12 characters long."),
    ({"username": "dan", "password": "password1234"}, 400, "INVALID_PARAMETER_VALUE", None),
    ({"username": "dan:x", "password": USER_PASSWORD}, 400, "INVALID_PARAMETER_VALUE", None),
    ({"username": 5, "password": USER_PASSWORD}, 400, "INVALID_PARAMETER_VALUE", None),
    ({"username": "dan", "password": USER_PASSWORD, "is_admin": "maybe"}, 400, "INVALID_PARAMETER_VALUE", None),
])
def test_create_refuses_bad_input_and_changes_nothing(client, body, status, code, message):
    before = client.get(f"{U}/list", headers=ADMIN).json()["users"]
    _error(client.post(f"{U}/create", json=body, headers=ADMIN), status, code, message)
    assert client.get(f"{U}/list", headers=ADMIN).json()["users"] == before


def test_only_admins_create_list_promote_or_delete(client):
    _error(client.post(f"{U}/create", json={"username": "eve", "password": USER_PASSWORD}, headers=ALICE),
           403, "PERMISSION_DENIED")
    _error(client.get(f"{U}/list", headers=ALICE), 403, "PERMISSION_DENIED")
    _error(client.patch(f"{U}/update-admin", json={"username": "alice", "is_admin": True}, headers=ALICE),
           403, "PERMISSION_DENIED")
    _error(client.request("DELETE", f"{U}/delete", json={"username": "bob"}, headers=ALICE), 403, "PERMISSION_DENIED")
    assert client.get(f"{U}/get", params={"username": "bob"}, headers=ADMIN).status_code == 200


def test_get_self_or_as_admin(client):
    assert client.get(f"{U}/get", params={"username": "alice"}, headers=ALICE).json()["user"]["username"] == "alice"
    _error(client.get(f"{U}/get", params={"username": "bob"}, headers=ALICE), 403, "PERMISSION_DENIED")
    _error(client.get(f"{U}/get", params={"username": "zed"}, headers=ADMIN), 404, "RESOURCE_DOES_NOT_EXIST",
           "User with username=zed not found")
    _error(client.get(f"{U}/get", headers=ADMIN), 400, "INVALID_PARAMETER_VALUE")


def test_own_password_change_needs_the_current_password(client):
    body = {"username": "alice", "password": "fresh-password-value-3"}
    _error(client.patch(f"{U}/update-password", json=body, headers=ALICE), 400, "INVALID_PARAMETER_VALUE",
           "Current password is required when changing your own password.")
    _error(client.patch(f"{U}/update-password", json={**body, "current_password": "not-it-at-all-1"}, headers=ALICE),
           400, "INVALID_PARAMETER_VALUE", "Current password does not match.")
    _error(client.patch(f"{U}/update-password", json={"username": "alice", "password": USER_PASSWORD,
                                                      "current_password": USER_PASSWORD}, headers=ALICE),
           400, "INVALID_PARAMETER_VALUE", "New password must differ from the current password.")
    ok = client.patch(f"{U}/update-password", json={**body, "current_password": USER_PASSWORD}, headers=ALICE)
    assert ok.status_code == 200
    assert ok.json() == {}
    assert client.get(f"{U}/current", headers=basic("alice", "fresh-password-value-3")).status_code == 200
    assert client.get(f"{U}/current", headers=ALICE).status_code == 401


def test_users_cannot_change_others_passwords_but_admins_can(client):
    body = {"username": "bob", "password": "taken-over-value-1"}
    _error(client.patch(f"{U}/update-password", json=body, headers=ALICE), 403, "PERMISSION_DENIED")
    assert client.get(f"{U}/current", headers=basic("bob", USER_PASSWORD)).status_code == 200
    assert client.patch(f"{U}/update-password", json=body, headers=ADMIN).status_code == 200
    assert client.get(f"{U}/current", headers=basic("bob", "taken-over-value-1")).status_code == 200


def test_promotion_takes_effect_on_the_next_request(client):
    assert client.get(f"{U}/current", headers=ALICE).json()["user"]["is_admin"] is False
    client.patch(f"{U}/update-admin", json={"username": "alice", "is_admin": True}, headers=ADMIN).raise_for_status()
    assert client.get(f"{U}/current", headers=ALICE).json()["user"]["is_admin"] is True
    assert client.get(f"{U}/list", headers=ALICE).status_code == 200


def test_admins_cannot_delete_or_demote_themselves(client):
    admin = basic("admin", TEST_ADMIN_PASSWORD)
    _error(client.request("DELETE", f"{U}/delete", json={"username": "admin"}, headers=admin),
           400, "INVALID_PARAMETER_VALUE")
    _error(client.patch(f"{U}/update-admin", json={"username": "admin", "is_admin": False}, headers=admin),
           400, "INVALID_PARAMETER_VALUE")


def test_delete_ends_access_and_tokens(client):
    token = create_token(client, basic("bob", USER_PASSWORD))
    client.request("DELETE", f"{U}/delete", json={"username": "bob"}, headers=ADMIN).raise_for_status()
    assert client.get(f"{U}/current", headers=basic("bob", USER_PASSWORD)).status_code == 401
    assert client.get(f"{U}/current", headers=bearer(token)).status_code == 401
    _error(client.request("DELETE", f"{U}/delete", json={"username": "bob"}, headers=ADMIN),
           404, "RESOURCE_DOES_NOT_EXIST")


def test_current_describes_the_caller(client):
    body = client.get(f"{U}/current", headers=ALICE).json()
    assert body["user"]["username"] == "alice"
    assert body["kind"] == "user"
    assert body["auth_method"] == "basic"
    assert body["read_only"] is False
    assert "csrf_token" not in body


def test_ajax_prefix_serves_the_same_api(client):
    assert client.get("/ajax-api/2.0/mlflow/users/current", headers=ALICE).json()["user"]["username"] == "alice"


# --- tokens ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "message"), [
    ({"name": "t"}, None),
    ({"name": "t", "expires_in_days": 0}, "expires_in_days must be between 1 and 365."),
    ({"name": "t", "expires_in_days": 366}, "expires_in_days must be between 1 and 365."),
    ({"name": "", "expires_in_days": 5}, None),
    ({"name": "t", "expires_in_days": "soon"}, None),
])
def test_token_creation_requires_a_name_and_a_bounded_expiry(client, body, message):
    _error(client.post(f"{U}/tokens/create", json=body, headers=ALICE), 400, "INVALID_PARAMETER_VALUE", message)
    assert client.get(f"{U}/tokens/list", headers=ALICE).json()["tokens"] == []


def test_token_is_shown_once_and_listed_without_secret(client):
    response = client.post(f"{U}/tokens/create", json={"name": "ci", "expires_in_days": 30, "read_only": True},
                           headers=ALICE).json()
    assert response["token"].startswith("mlg_")
    listed = client.get(f"{U}/tokens/list", headers=ALICE).json()["tokens"]
    assert [t["name"] for t in listed] == ["ci"]
    assert listed[0]["read_only"] is True
    assert listed[0]["revoked"] is False
    assert response["token"] not in str(listed)
    assert listed[0]["expires_at"] - listed[0]["created_at"] == 30 * 86_400_000


def test_admin_issues_tokens_for_a_service_account(client):
    made = client.post(f"{U}/create", json={"username": "ci-bot", "service_account": True}, headers=ADMIN)
    assert made.status_code == 200, made.text
    token = create_token(client, ADMIN, username="ci-bot")
    body = client.get(f"{U}/current", headers=bearer(token)).json()
    assert body["kind"] == "service"
    assert body["user"]["username"] == "ci-bot"
    _error(client.post(f"{U}/tokens/create", json={"name": "x", "expires_in_days": 1, "username": "ci-bot"},
                       headers=ALICE), 403, "PERMISSION_DENIED")


def test_tokens_of_others_are_invisible(client):
    token = create_token(client, basic("bob", USER_PASSWORD))
    bob_tokens = client.get(f"{U}/tokens/list", headers=bearer(token)).json()["tokens"]
    _error(client.get(f"{U}/tokens/list", params={"username": "bob"}, headers=ALICE), 403, "PERMISSION_DENIED")
    _error(client.post(f"{U}/tokens/revoke", json={"token_id": bob_tokens[0]["id"]}, headers=ALICE),
           404, "RESOURCE_DOES_NOT_EXIST")
    assert client.get(f"{U}/current", headers=bearer(token)).status_code == 200


def test_read_only_token_cannot_manage_users_or_tokens(client):
    token = create_token(client, ALICE, read_only=True)
    _error(client.post(f"{U}/tokens/create", json={"name": "y", "expires_in_days": 1}, headers=bearer(token)),
           403, "PERMISSION_DENIED")
    _error(client.patch(f"{U}/update-password", json={"username": "alice", "password": "x" * 20,
                                                      "current_password": USER_PASSWORD}, headers=bearer(token)),
           403, "PERMISSION_DENIED")


def test_changes_are_audited_without_secrets(client):
    token = create_token(client, ALICE)
    client.get(f"{U}/current", headers=bearer(token))
    records = client.app.state.identity.store.audit_records()
    actions = {r["action"] for r in records}
    assert {"user.create", "token.create", "token.use", "login"} <= actions
    text = repr(records)
    for secret in (USER_PASSWORD, token, TEST_ADMIN_TOKEN):
        assert secret not in text
