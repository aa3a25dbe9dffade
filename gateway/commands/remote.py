"""Admin operations over a server's REST API, so authorization, audit and invalidation apply as for the UI."""

from __future__ import annotations

import httpx

from gateway.commands.output import EXIT_ERROR, EXIT_USAGE, CliError, error_from_code

MLFLOW = "/api/2.0/mlflow"
MLGATE = "/api/2.0/mlgate"


class RemoteOps:
    """Each method is one REST call; errors become :class:`CliError` with the exit code of their kind."""

    def __init__(self, server: str, token: str | None, *, auth: tuple[str, str] | None = None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.server = server
        self.http = httpx.Client(base_url=server, headers=headers, auth=auth, timeout=30.0)

    def call(self, method: str, path: str, *, params: dict | None = None, body: dict | None = None) -> dict:
        """Send one request; the JSON answer, or a CliError naming what to do next."""
        params = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self.http.request(method, path, params=params or None, json=body)
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach {self.server}: {exc.__class__.__name__}. Is the server running and "
                           "the URL right?", EXIT_ERROR) from None
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.is_success:
            return data if isinstance(data, dict) else {}
        if isinstance(data, dict) and "error_code" in data:
            raise error_from_code(str(data["error_code"]), str(data.get("message", "")))
        raise CliError(f"{self.server} answered HTTP {response.status_code} to {method} {path}; is it an mlgate "
                       "server?", EXIT_ERROR)

    # --- accounts --------------------------------------------------------------------------------
    def list_users(self, kind: str | None = None) -> list[dict]:
        """Accounts with kind, flags and groups."""
        return self.call("GET", f"{MLGATE}/users/list", params={"kind": kind})["users"]

    def get_user(self, username: str) -> dict:
        """One account."""
        return self.call("GET", f"{MLGATE}/users/get", params={"username": username})["user"]

    def create_user(self, username: str, password: str | None, *, is_admin: bool = False,
                    service_account: bool = False) -> dict:
        """Create a user or service account; the listing's view of it."""
        self.call("POST", f"{MLFLOW}/users/create", body={
            "username": username, "password": password, "is_admin": is_admin, "service_account": service_account})
        return self.get_user(username)

    def set_disabled(self, username: str, disabled: bool) -> None:
        """Disable or enable an account."""
        self.call("PATCH", f"{MLFLOW}/users/update-disabled", body={"username": username, "disabled": disabled})

    def delete_user(self, username: str) -> None:
        """Delete an account."""
        self.call("DELETE", f"{MLFLOW}/users/delete", params={"username": username})

    def set_password(self, username: str, password: str) -> None:
        """Set a user's password (as an administrator)."""
        self.call("PATCH", f"{MLFLOW}/users/update-password", body={"username": username, "password": password})

    def set_admin(self, username: str, is_admin: bool) -> None:
        """Grant or remove administrator rights."""
        self.call("PATCH", f"{MLFLOW}/users/update-admin", body={"username": username, "is_admin": is_admin})

    def current_user(self) -> dict:
        """Who the token belongs to."""
        return self.call("GET", f"{MLFLOW}/users/current")

    # --- tokens ----------------------------------------------------------------------------------
    def list_tokens(self, username: str | None) -> list[dict]:
        """Tokens of the caller or (admins) of ``username``."""
        return self.call("GET", f"{MLFLOW}/users/tokens/list", params={"username": username})["tokens"]

    def create_token(self, name: str, days: int, username: str | None, read_only: bool) -> dict:
        """A new token: ``{"token": secret, "token_info": {...}}``."""
        return self.call("POST", f"{MLFLOW}/users/tokens/create", body={
            "name": name, "expires_in_days": days, "username": username, "read_only": read_only})

    def revoke_token(self, token_id: str) -> None:
        """Revoke a token by id."""
        self.call("POST", f"{MLFLOW}/users/tokens/revoke", body={"token_id": token_id})

    # --- groups ----------------------------------------------------------------------------------
    def list_groups(self) -> list[dict]:
        """Groups with members."""
        return self.call("GET", f"{MLGATE}/groups/list")["groups"]

    def create_group(self, name: str) -> dict:
        """Create a group."""
        return self.call("POST", f"{MLGATE}/groups/create", body={"name": name})["group"]

    def delete_group(self, name: str) -> None:
        """Delete a group (its grants too)."""
        self.call("POST", f"{MLGATE}/groups/delete", body={"name": name})

    def add_member(self, group: str, username: str) -> None:
        """Add an account to a group."""
        self.call("POST", f"{MLGATE}/groups/add-member", body={"group": group, "username": username})

    def remove_member(self, group: str, username: str) -> None:
        """Remove an account from a group."""
        self.call("POST", f"{MLGATE}/groups/remove-member", body={"group": group, "username": username})

    # --- grants ----------------------------------------------------------------------------------
    def list_grants(self, subject: str | None, resource: str | None) -> list[dict]:
        """Stored grants, filtered."""
        return self.call("GET", f"{MLGATE}/grants/list", params={"subject": subject, "resource": resource})["grants"]

    def put_grant(self, subject: str, resource: str, permission: str) -> dict:
        """Create or replace a grant."""
        return self.call("POST", f"{MLGATE}/grants/put", body={
            "subject": subject, "resource": resource, "permission": permission})["grant"]

    def revoke_grant(self, subject: str, resource: str) -> None:
        """Remove a grant."""
        self.call("POST", f"{MLGATE}/grants/revoke", body={"subject": subject, "resource": resource})

    def explain(self, username: str, field: str, value: str, action: str, policy_path: str | None) -> dict:
        """The server's decision with its reason and rule (the server's own policy file applies)."""
        if policy_path:
            raise CliError("--policy applies to offline mode only; a server explains with its own policy.",
                           EXIT_USAGE)
        return self.call("GET", f"{MLGATE}/perms/explain",
                         params={"username": username, field: value, "action": action})

    # --- audit -----------------------------------------------------------------------------------
    def audit(self, **filters) -> list[dict]:
        """Audit records matching the filters, oldest first."""
        return self.call("GET", f"{MLGATE}/audit/list", params=filters)["records"]

    # --- policy ----------------------------------------------------------------------------------
    def export_policy(self, owner_grants: bool = False) -> dict:
        """``{"access": <stored groups and API grants (creators' too, if asked)>, "names": <experiment names>}``."""
        params = {"owner_grants": "true"} if owner_grants else None
        answer = self.call("GET", f"{MLGATE}/policy/export", params=params)
        return {"access": answer["access"], "names": answer.get("names") or {}}

    def apply_policy(self, access: dict, dry_run: bool, owner_grants: bool = False) -> dict:
        """Plan (``dry_run``) or apply an ``access`` section in one server transaction."""
        body = {"access": access, "dry_run": dry_run}
        if owner_grants:
            body["owner_grants"] = True
        return self.call("POST", f"{MLGATE}/policy/apply", body=body)
