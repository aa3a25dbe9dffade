"""Admin operations over a server's REST API, so authorization, audit and invalidation apply as for the UI."""

from __future__ import annotations

import httpx

from gateway.commands.output import EXIT_ERROR, EXIT_USAGE, CliError, error_from_code

MLFLOW = "/api/2.0/mlflow"
MLGATE = "/api/2.0/mlgate"
MLFLOW3 = "/api/3.0/mlflow"


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

    def create_token(self, name: str, days: int, username: str | None, read_only: bool,
                     scope: list[str] | None = None, cidrs: list[str] | None = None) -> dict:
        """A new token: ``{"token": secret, "token_info": {...}}``."""
        body = {"name": name, "expires_in_days": days, "username": username, "read_only": read_only}
        if scope:
            body["scope"] = scope
        if cidrs:
            body["cidrs"] = cidrs
        return self.call("POST", f"{MLFLOW}/users/tokens/create", body=body)

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

    def put_grant(self, subject: str, resource: str, permission: str, *, expires_in_seconds: int | None = None,
                  break_glass: bool = False) -> dict:
        """Create or replace a grant (expiring after ``expires_in_seconds``, by the server's clock)."""
        body: dict = {"subject": subject, "resource": resource, "permission": permission}
        if expires_in_seconds is not None:
            body["expires_in_seconds"] = expires_in_seconds
        if break_glass:
            body["break_glass"] = True
        return self.call("POST", f"{MLGATE}/grants/put", body=body)["grant"]

    def revoke_grant(self, subject: str, resource: str) -> None:
        """Remove a grant."""
        self.call("POST", f"{MLGATE}/grants/revoke", body={"subject": subject, "resource": resource})

    def explain(self, username: str, field: str, value: str, action: str, policy_path: str | None,
                alias: str | None = None, workspace: str | None = None) -> dict:
        """The server's decision with its reason and rule (the server's own policy file applies)."""
        if policy_path:
            raise CliError("--policy applies to offline mode only; a server explains with its own policy.",
                           EXIT_USAGE)
        return self.call("GET", f"{MLGATE}/perms/explain",
                         params={"username": username, field: value, "action": action, "alias": alias,
                                 "workspace": workspace})

    # --- workspaces and roles (MLflow 3's APIs) ----------------------------------------------------------
    def list_workspaces(self) -> list[dict]:
        """The workspaces the caller is a member of (administrators: all)."""
        return self.call("GET", f"{MLFLOW3}/workspaces")["workspaces"]

    def create_workspace(self, name: str, description: str | None) -> dict:
        """Create a workspace."""
        return self.call("POST", f"{MLFLOW3}/workspaces", body={"name": name, "description": description})["workspace"]

    def update_workspace(self, name: str, description: str) -> dict:
        """Change a workspace's description."""
        return self.call("PATCH", f"{MLFLOW3}/workspaces/{name}", body={"description": description})["workspace"]

    def delete_workspace(self, name: str) -> None:
        """Delete an empty workspace."""
        self.call("DELETE", f"{MLFLOW3}/workspaces/{name}")

    def get_role(self, role_id: int) -> dict:
        """One role with its permissions."""
        return self.call("GET", f"{MLFLOW3}/roles/get", params={"role_id": role_id})["role"]

    def list_roles(self, workspace: str | None) -> list[dict]:
        """Roles of one workspace (every role: administrators)."""
        return self.call("GET", f"{MLFLOW3}/roles/list", params={"workspace": workspace})["roles"]

    def create_role(self, workspace: str, name: str, description: str | None) -> dict:
        """A new role in ``workspace``."""
        return self.call("POST", f"{MLFLOW3}/roles/create",
                         body={"workspace": workspace, "name": name, "description": description})["role"]

    def delete_role(self, role_id: int) -> None:
        """Delete a role."""
        self.call("DELETE", f"{MLFLOW3}/roles/delete", body={"role_id": role_id})

    def add_role_permission(self, role_id: int, resource_type: str, pattern: str, permission: str) -> dict:
        """Give a role a permission."""
        return self.call("POST", f"{MLFLOW3}/roles/permissions/add", body={
            "role_id": role_id, "resource_type": resource_type, "resource_pattern": pattern,
            "permission": permission})["role_permission"]

    def update_role_permission(self, permission_id: int, permission: str) -> dict:
        """Change a role permission's level."""
        return self.call("PATCH", f"{MLFLOW3}/roles/permissions/update", body={
            "role_permission_id": permission_id, "permission": permission})["role_permission"]

    def remove_role_permission(self, permission_id: int) -> None:
        """Take a permission from a role."""
        self.call("DELETE", f"{MLFLOW3}/roles/permissions/remove", body={"role_permission_id": permission_id})

    def _username(self, member: str) -> str:
        kind, sep, name = member.partition(":")
        if not sep:
            return member
        if kind == "group":
            raise CliError("The roles API assigns roles to accounts; assign a group in the policy file "
                           "(workspaces.<name>.roles.<role>.members) or offline (--db).", EXIT_USAGE)
        return name

    def assign_role(self, role_id: int, member: str) -> None:
        """Give an account a role."""
        self.call("POST", f"{MLFLOW3}/roles/assign", body={"role_id": role_id, "username": self._username(member)})

    def unassign_role(self, role_id: int, member: str) -> None:
        """Take a role from an account."""
        self.call("DELETE", f"{MLFLOW3}/roles/unassign", body={"role_id": role_id, "username": self._username(member)})

    def role_members(self, role: dict) -> list[str]:
        """Who holds a role, by name (the server's export: administrators)."""
        exported = self.export_policy().get("workspaces", {})
        return exported.get(role["workspace"], {}).get("roles", {}).get(role["name"], {}).get("members", [])

    # --- audit -----------------------------------------------------------------------------------
    def audit(self, **filters) -> list[dict]:
        """Audit records matching the filters, oldest first."""
        return self.call("GET", f"{MLGATE}/audit/list", params=filters)["records"]

    def verify_audit(self) -> dict:
        """The server's check of the audit hash chain."""
        return self.call("GET", f"{MLGATE}/audit/verify")["verification"]

    def audit_checkpoint(self) -> dict | None:
        """Ask the server to sign the chain's head with its key."""
        return self.call("POST", f"{MLGATE}/audit/checkpoint", body={})["checkpoint"]

    def audit_checkpoints(self, after_id: int = 0, limit: int = 1000) -> list[dict]:
        """The server's stored checkpoints, oldest first."""
        return self.call("GET", f"{MLGATE}/audit/checkpoints", params={"after_id": after_id,
                                                                        "limit": limit})["checkpoints"]

    def prune_audit(self, older_than_days: int | None) -> dict:
        """Ask the server to prune records older than the given days (default: its retention)."""
        body = {} if older_than_days is None else {"older_than_days": older_than_days}
        return self.call("POST", f"{MLGATE}/audit/prune", body=body)

    # --- policy ----------------------------------------------------------------------------------
    def export_policy(self, owner_grants: bool = False) -> dict:
        """Stored groups and API grants (and creators' grants, if asked) as an ``access`` section, the
        workspaces with their roles (``workspaces``) when the server has any, and ``names``: the experiment
        names of the grants (for comments)."""
        params = {"owner_grants": "true"} if owner_grants else None
        answer = self.call("GET", f"{MLGATE}/policy/export", params=params)
        document = {k: answer[k] for k in ("access", "workspaces") if k in answer}
        document["names"] = answer.get("names") or {}
        return document

    def apply_policy(self, document: dict, dry_run: bool, owner_grants: bool = False) -> dict:
        """Plan (``dry_run``) or apply ``access`` (and ``workspaces``, ``workspace_templates``) in one server
        transaction."""
        body = {**document, "dry_run": dry_run}
        if owner_grants:
            body["owner_grants"] = True
        return self.call("POST", f"{MLGATE}/policy/apply", body=body)
