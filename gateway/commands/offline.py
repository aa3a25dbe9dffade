"""Admin operations on the database itself (``--db``): bootstrap the first admin, recover a locked-out one.

The same rules as the server apply (:class:`auth.accounts.Accounts`, the grant store with its policy
generation bump), and every change is audited with the actor ``offline-cli:<os user>``, so the log
shows it bypassed the server. Running servers notice through the generation counters.
"""

from __future__ import annotations

import getpass
import secrets
from dataclasses import replace

from sqlalchemy import select

from auth import audit_chain
from auth import roles as role_store
from auth.accounts import Accounts
from auth.errors import AuthError
from auth.grants import list_grants, policy_grants, put_grant, revoke_grant
from auth.principal import Principal
from auth.store import now_ms
from gateway.commands.output import EXIT_ERROR, EXIT_NOT_FOUND, EXIT_USAGE, CliError, error_from_code
from gateway.grant_selectors import UnknownResource, stored_selector
from gateway.routes import admin_policy, admin_store
from gateway.settings import Settings
from policies.decide import compile_policy
from policies.file import PolicyFile, PolicyFileError, load_policy_file
from policies.model import ResourceSelector, SubjectRef
from policies.routes import Lookup
from tracking.errors import MlflowError
from tracking.scope import DEFAULT_WORKSPACE

_LOOKUPS = {"experiment_id": Lookup.EXPERIMENT_ID, "experiment_name": Lookup.EXPERIMENT_NAME,
            "model": Lookup.MODEL_NAME}


def _guarded(func):
    """Translate domain errors into CliErrors with the matching exit code."""

    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except AuthError as exc:
            raise error_from_code(exc.code, exc.message) from None
        except MlflowError as exc:
            raise error_from_code(exc.error_code, exc.message) from None
        except ValueError as exc:
            raise CliError(str(exc)) from None

    wrapper.__doc__ = func.__doc__
    return wrapper


def _roles(call):
    try:
        return call()
    except role_store.RoleError as exc:
        raise error_from_code(exc.code, str(exc)) from None


class OfflineOps:
    """The methods of :class:`~gateway.commands.remote.RemoteOps`, done on the database directly."""

    def __init__(self, uri: str):
        from gateway.db import current_revision, head_revision
        from gateway.identity import auth_config_of, build_identity
        from tracking.db.engine import make_engine

        self.engine = make_engine(uri)
        try:
            at, head = current_revision(self.engine), head_revision()
        except Exception as exc:
            raise CliError(f"cannot open the database: {exc.__class__.__name__}. Check the --db URI.") from None
        if at != head:
            raise CliError(f"the database schema is at {at or 'nothing'}, not {head}: run "
                           f"`mlgate db upgrade --backend-store-uri URI` first.", EXIT_ERROR)
        # Sessions are never issued here; the key only satisfies the identity layer's constructor.
        settings = Settings(backend_store_uri=uri, secret_key=secrets.token_urlsafe(48))
        self.identity, _ = build_identity(settings, auth_config_of(None), self.engine)
        self.accounts = Accounts(self.identity)
        self.actor_name = f"offline-cli:{getpass.getuser()}"
        self.actor = Principal(id=0, kind="user", name=self.actor_name, is_admin=True, groups=frozenset(),
                               auth_method="offline")

    def _audit(self, action: str, target: str, reason: str | None = None) -> None:
        # Workspace and role changes name their workspace first in the target ("workspace:team-a role:3").
        workspace = target.split()[0].removeprefix("workspace:") if target.startswith("workspace:") else None
        self.identity.auditor.record(action, "success", actor=self.actor_name, target=target, client=None,
                                     reason=f"offline (--db){': ' + reason if reason else ''}", workspace=workspace)

    # --- accounts --------------------------------------------------------------------------------
    @_guarded
    def list_users(self, kind: str | None = None) -> list[dict]:
        """Accounts with kind, flags and groups."""
        with self.engine.connect() as conn:
            return admin_store.list_accounts(conn, kind=kind)

    @_guarded
    def get_user(self, username: str) -> dict:
        """One account."""
        with self.engine.connect() as conn:
            return admin_store.get_account(conn, username)

    @_guarded
    def create_user(self, username: str, password: str | None, *, is_admin: bool = False,
                    service_account: bool = False) -> dict:
        """Create a user or service account."""
        self.accounts.create_user(self.actor, username, password, client=None, is_admin=is_admin,
                                  service_account=service_account)
        return self.get_user(username)

    @_guarded
    def set_disabled(self, username: str, disabled: bool) -> None:
        """Disable or enable an account."""
        self.accounts.set_disabled(self.actor, username, disabled, client=None)

    @_guarded
    def delete_user(self, username: str) -> None:
        """Delete an account."""
        self.accounts.delete_user(self.actor, username, client=None)

    @_guarded
    def set_password(self, username: str, password: str) -> None:
        """Reset a password (also the way back in for a locked-out administrator)."""
        self.accounts.change_password(self.actor, username, password, None, client=None)

    @_guarded
    def set_admin(self, username: str, is_admin: bool) -> None:
        """Grant or remove administrator rights."""
        self.accounts.set_admin(self.actor, username, is_admin, client=None)

    # --- tokens ----------------------------------------------------------------------------------
    @_guarded
    def list_tokens(self, username: str | None) -> list[dict]:
        """Tokens of ``username`` (offline mode has no "self")."""
        if username is None:
            raise CliError("Offline mode has no signed-in user: name the account with --for.", EXIT_USAGE)
        return [t.to_json() for t in self.accounts.list_tokens(self.actor, username)]

    @_guarded
    def create_token(self, name: str, days: int, username: str | None, read_only: bool,
                     scope: list[str] | None = None, cidrs: list[str] | None = None) -> dict:
        """Issue a token for ``username``."""
        if username is None:
            raise CliError("Offline mode has no signed-in user: name the account with --for.", EXIT_USAGE)
        issued = self.accounts.create_token(self.actor, name, days, username=username, read_only=read_only,
                                            scope=scope, cidrs=cidrs)
        return {"token": issued.token, "token_info": issued.row.to_json()}

    @_guarded
    def revoke_token(self, token_id: str) -> None:
        """Revoke a token by id."""
        self.accounts.revoke_token(self.actor, token_id)

    # --- groups ----------------------------------------------------------------------------------
    @_guarded
    def list_groups(self) -> list[dict]:
        """Groups with members."""
        with self.engine.connect() as conn:
            return admin_store.list_groups(conn)

    @_guarded
    def create_group(self, name: str) -> dict:
        """Create a group."""
        with self.engine.begin() as conn:
            group = admin_store.create_group(conn, name)
        self._audit("group.create", name)
        return group

    @_guarded
    def delete_group(self, name: str) -> None:
        """Delete a group with its memberships and grants."""
        with self.engine.begin() as conn:
            admin_store.delete_group(conn, name)
        self._audit("group.delete", name)

    @_guarded
    def add_member(self, group: str, username: str) -> None:
        """Add an account to a group."""
        with self.engine.begin() as conn:
            admin_store.add_member(conn, group, username)
        self._audit("group.add_member", f"{group} {username}")

    @_guarded
    def remove_member(self, group: str, username: str) -> None:
        """Remove an account from a group."""
        with self.engine.begin() as conn:
            admin_store.remove_member(conn, group, username)
        self._audit("group.remove_member", f"{group} {username}")

    # --- grants ----------------------------------------------------------------------------------
    @_guarded
    def list_grants(self, subject: str | None, resource: str | None) -> list[dict]:
        """Stored grants, filtered."""
        subject = SubjectRef.parse(subject).key if subject else None
        resource = ResourceSelector.parse(resource).text if resource else None
        with self.engine.connect() as conn:
            try:
                stored = stored_selector(conn, resource) if resource else None
            except UnknownResource:
                return []
            return admin_store.grants_json(conn, list_grants(conn, subject=subject, resource=stored))

    @_guarded
    def put_grant(self, subject: str, resource: str, permission: str, *, expires_in_seconds: int | None = None,
                  break_glass: bool = False) -> dict:
        """Create or replace a grant (the subject must exist)."""
        now = now_ms()
        expires_at = None if expires_in_seconds is None else now + expires_in_seconds * 1000
        ref = SubjectRef.parse(subject)
        with self.engine.begin() as conn:
            if ref.kind == "group":
                if not admin_store.group_exists(conn, ref.name):
                    raise CliError(f"Group {ref.name} not found", EXIT_NOT_FOUND)
            elif admin_store.subject_key(conn, ref.name) != ref.key:
                raise CliError(f"{ref.name} is not a {ref.kind} account.")
            try:
                stored = stored_selector(conn, resource, granting=True)
            except UnknownResource as exc:
                raise CliError(str(exc), EXIT_NOT_FOUND) from None
            row = admin_store.grants_json(conn, [put_grant(conn, ref.key, stored, permission,
                                                           created_by=self.actor_name, expires_at=expires_at,
                                                           break_glass=break_glass, now=now)])[0]
        until = f", expires at {expires_at} (epoch ms)" if expires_at is not None else ""
        self._audit("grant.break_glass" if break_glass else "grant", f"{row['subject']} {row['resource']}",
                    f"permission {row['permission']}{until}")
        return row

    @_guarded
    def revoke_grant(self, subject: str, resource: str) -> None:
        """Remove a grant."""
        with self.engine.begin() as conn:
            try:
                stored = stored_selector(conn, resource)
            except UnknownResource:
                stored = None
            if stored is None or not revoke_grant(conn, subject, stored):
                raise CliError(f"No permission of {subject} on {resource} exists", EXIT_NOT_FOUND)
        self._audit("revoke", f"{subject} {resource}")

    @_guarded
    def explain(self, username: str, field: str, value: str, action: str, policy_path: str | None,
                alias: str | None = None, workspace: str | None = None) -> dict:
        """The decision under ``policy_path`` (or the defaults) plus the stored grants; with ``workspace``, as
        a request naming that workspace would get it."""
        from gateway.authz import ResourceResolver, resource_tags
        from gateway.workspaces import (
            explained_as_requested_in,
            explained_model_workspace,
            in_resource_workspace,
            workspace_name_problem,
        )

        if workspace is not None and (problem := workspace_name_problem(workspace)) is not None:
            raise CliError(problem, EXIT_USAGE)
        try:
            policy_file = load_policy_file(policy_path) if policy_path else PolicyFile()
        except PolicyFileError as exc:
            raise CliError("invalid policy file:\n" + "\n".join(f"  - {p}" for p in exc.problems)) from None
        with self.engine.connect() as conn:
            subject = admin_store.account_subject(conn, username)
            # A model name means one workspace's model (names are unique per workspace): which one, as the
            # admin API decides it.
            named_in = explained_model_workspace(conn, value, workspace) if _LOOKUPS[field] is Lookup.MODEL_NAME \
                else None
            resource = ResourceResolver(self.engine).resolve(conn, _LOOKUPS[field], value, None, named_in)
            if resource is None:
                raise CliError(f"No resource with {field}={value} exists", EXIT_NOT_FOUND)
            # Decided as in the resource's workspace: with the roles the account holds there.
            subject, where = in_resource_workspace(conn, subject, resource)
            policy = compile_policy(policy_file, policy_grants(conn))
            resource = replace(resource, tags=resource_tags(conn, resource) if policy.needs_tags else None,
                               alias=alias)
        explained = explained_as_requested_in({**admin_store.explain(policy, subject, resource, action), **where},
                                              workspace, admin=policy.is_admin(subject))
        if explained is None:
            raise CliError(f"No resource with {field}={value} exists in workspace '{workspace}'", EXIT_NOT_FOUND)
        return explained

    # --- workspaces and roles -----------------------------------------------------------------------
    @_guarded
    def list_workspaces(self) -> list[dict]:
        """Every workspace."""
        from tracking.db.workspace_tables import workspaces

        with self.engine.connect() as conn:
            return [{"name": r.name, "description": r.description or ""}
                    for r in conn.execute(select(workspaces).order_by(workspaces.c.name))]

    @_guarded
    def create_workspace(self, name: str, description: str | None) -> dict:
        """Create a workspace (the server's rules for its name)."""
        from gateway.workspaces import check_workspace_name

        if name == DEFAULT_WORKSPACE:
            raise CliError(f"The '{DEFAULT_WORKSPACE}' workspace always exists.")
        check_workspace_name(name)
        with self.engine.begin() as conn:
            if any(w["name"] == name for w in self.list_workspaces()):
                raise CliError(f"Workspace '{name}' already exists.")
            admin_policy.apply_workspace_change(conn, admin_policy.Change("add", "workspace", workspace=name,
                                                                          description=description), self.actor_name)
        self._audit("workspace.create", f"workspace:{name}")
        return {"name": name, "description": description or ""}

    def _workspace(self, name: str) -> dict:
        found = next((w for w in self.list_workspaces() if w["name"] == name), None)
        if found is None:
            raise CliError(f"Workspace '{name}' not found.", EXIT_NOT_FOUND)
        return found

    @_guarded
    def update_workspace(self, name: str, description: str) -> dict:
        """Change a workspace's description."""
        self._workspace(name)
        with self.engine.begin() as conn:
            admin_policy.apply_workspace_change(conn, admin_policy.Change("change", "workspace", workspace=name,
                                                                          description=description), self.actor_name)
        self._audit("workspace.update", f"workspace:{name}")
        return {"name": name, "description": description}

    @_guarded
    def delete_workspace(self, name: str) -> None:
        """Delete an empty workspace and its roles."""
        if name == DEFAULT_WORKSPACE:
            raise CliError(f"The '{DEFAULT_WORKSPACE}' workspace cannot be deleted.")
        self._workspace(name)
        with self.engine.begin() as conn:
            if (held := admin_policy.held_objects(conn, name)):
                raise CliError(f"Workspace '{name}' still holds {held} experiments or models (deleted ones "
                               "included); it cannot be deleted.")
            admin_policy.apply_workspace_change(conn, admin_policy.Change("remove", "workspace", workspace=name),
                                                self.actor_name)
        self._audit("workspace.delete", f"workspace:{name}")

    def _role_json(self, conn, role) -> dict:
        return {"id": role.id, "workspace": role.workspace, "name": role.name, "description": role.description,
                "permissions": [{"id": p.id, "role_id": p.role_id, "resource_type": p.resource_type,
                                 "resource_pattern": p.resource_pattern, "permission": p.permission}
                                for p in role_store.list_permissions(conn, role.id)]}

    def _stored_role(self, conn, role_id: int):
        role = role_store.get_role(conn, role_id)
        if role is None:
            raise CliError(f"Role with id={role_id} not found.", EXIT_NOT_FOUND)
        return role

    @_guarded
    def get_role(self, role_id: int) -> dict:
        """One role with its permissions."""
        with self.engine.connect() as conn:
            return self._role_json(conn, self._stored_role(conn, role_id))

    @_guarded
    def list_roles(self, workspace: str | None) -> list[dict]:
        """Roles of one workspace, or every role."""
        with self.engine.connect() as conn:
            return [self._role_json(conn, r) for r in role_store.list_roles(conn, workspace)]

    @_guarded
    def create_role(self, workspace: str, name: str, description: str | None) -> dict:
        """A new role in ``workspace``."""
        if workspace != DEFAULT_WORKSPACE:
            self._workspace(workspace)
        with self.engine.begin() as conn:
            role = _roles(lambda: role_store.create_role(conn, workspace, name, description))
            out = self._role_json(conn, role)
        self._audit("role.create", f"workspace:{workspace} role:{role.id}")
        return out

    @_guarded
    def delete_role(self, role_id: int) -> None:
        """Delete a role, its grants and assignments."""
        with self.engine.begin() as conn:
            role = self._stored_role(conn, role_id)
            role_store.delete_role(conn, role)
        self._audit("role.delete", f"workspace:{role.workspace} role:{role.id}")

    @_guarded
    def add_role_permission(self, role_id: int, resource_type: str, pattern: str, permission: str) -> dict:
        """Give a role a permission (a grant to its group)."""
        with self.engine.begin() as conn:
            role = self._stored_role(conn, role_id)
            added = _roles(lambda: role_store.add_permission(conn, role, resource_type, pattern, permission,
                                                             self.actor_name))
        self._audit("role.permission.add", f"workspace:{role.workspace} role:{role.id} {resource_type}:{pattern} "
                    f"{permission}")
        return {"id": added.id, "role_id": role.id, "resource_type": resource_type, "resource_pattern": pattern,
                "permission": permission}

    def _stored_permission(self, conn, permission_id: int):
        found = role_store.get_permission(conn, permission_id)
        if found is None:
            raise CliError(f"Role permission with id={permission_id} not found.", EXIT_NOT_FOUND)
        return found, self._stored_role(conn, found.role_id)

    @_guarded
    def update_role_permission(self, permission_id: int, permission: str) -> dict:
        """Change a role permission's level."""
        with self.engine.begin() as conn:
            found, role = self._stored_permission(conn, permission_id)
            updated = _roles(lambda: role_store.update_permission(conn, found, permission, self.actor_name))
        self._audit("role.permission.update", f"workspace:{role.workspace} role:{role.id} permission:{found.id} "
                    f"{permission}")
        return {"id": updated.id, "role_id": role.id, "resource_type": updated.resource_type,
                "resource_pattern": updated.resource_pattern, "permission": permission}

    @_guarded
    def remove_role_permission(self, permission_id: int) -> None:
        """Take a permission from a role."""
        with self.engine.begin() as conn:
            found, role = self._stored_permission(conn, permission_id)
            role_store.remove_permission(conn, found)
        self._audit("role.permission.remove", f"workspace:{role.workspace} role:{role.id} permission:{found.id}")

    def _member_key(self, conn, member: str) -> str:
        if member.startswith("group:"):
            return SubjectRef.parse(member).key
        key = admin_store.subject_key(conn, member.partition(":")[2] if ":" in member else member)
        if key is None:
            raise CliError(f"User with username={member} not found.", EXIT_NOT_FOUND)
        return key

    @_guarded
    def assign_role(self, role_id: int, member: str) -> None:
        """Give an account or group:<name> the role."""
        with self.engine.begin() as conn:
            role = self._stored_role(conn, role_id)
            key = self._member_key(conn, member)
            _roles(lambda: role_store.assign(conn, role, key))
        self._audit("role.assign", f"workspace:{role.workspace} role:{role.id} {key}")

    @_guarded
    def unassign_role(self, role_id: int, member: str) -> None:
        """Take the role from an account or group:<name>."""
        with self.engine.begin() as conn:
            role = self._stored_role(conn, role_id)
            key = self._member_key(conn, member)
            if not role_store.unassign(conn, role, key):
                raise CliError(f"{key} does not hold role {role.name}.", EXIT_NOT_FOUND)
        self._audit("role.unassign", f"workspace:{role.workspace} role:{role.id} {key}")

    @_guarded
    def role_members(self, role: dict) -> list[str]:
        """Who holds a role."""
        with self.engine.connect() as conn:
            return sorted(a.subject.removeprefix("user:")
                          for a in role_store.list_assignments(conn, role_id=role["id"]))

    # --- audit -----------------------------------------------------------------------------------
    @_guarded
    def audit(self, **filters) -> list[dict]:
        """Audit records matching the filters, oldest first."""
        with self.engine.connect() as conn:
            return admin_store.audit_records(conn, **{k: v for k, v in filters.items() if v is not None})

    @_guarded
    def verify_audit(self, verifier=None, checkpoints=()) -> dict:
        """Recompute the audit hash chain on the database (against signed checkpoints, given the keys)."""
        with self.engine.connect() as conn:
            return audit_chain.verify(conn, verifier, checkpoints).to_json()

    def _keeper(self, signer, checkpoint_file: str | None = None):
        from auth.audit_keeper import AuditKeeper, KeeperPlan

        if signer is None:
            raise CliError("offline checkpoints and pruning need the signing key: --signing-key-file FILE "
                           "(or MLGATE_AUDIT_SIGNING_KEY_FILE)", EXIT_USAGE)
        return AuditKeeper(self.engine, self.identity.auditor, KeeperPlan(signer, checkpoint_file=checkpoint_file))

    def audit_checkpoint(self, signer=None, checkpoint_file: str | None = None) -> dict | None:
        """Sign the chain's head with the operator's key."""
        try:
            signed = self._keeper(signer, checkpoint_file).checkpoint("manual")
        except audit_chain.ChainBroken as exc:
            raise CliError(f"not signed: the audit chain does not verify ({exc})", EXIT_ERROR) from None
        if signed is not None:
            self._audit("audit.checkpoint", f"record {signed.seq}", f"signed by key {signed.key_id}")
        return signed.to_json() if signed is not None else None

    def audit_checkpoints(self, after_id: int = 0, limit: int = 1000) -> list[dict]:
        """Stored checkpoints, oldest first."""
        with self.engine.connect() as conn:
            return audit_chain.stored_checkpoint_rows(conn, after_id, limit)

    def prune_audit(self, older_than_days: int, signer=None, checkpoint_file: str | None = None) -> dict:
        """Delete records older than the given days, anchored by a new signed checkpoint; audited."""
        before = now_ms() - older_than_days * 86_400_000
        try:
            pruned = self._keeper(signer, checkpoint_file).prune(
                actor=self.actor_name, before=before,
                reason=f"offline (--db): pruned older than {older_than_days} day(s)")
        except audit_chain.ChainBroken as exc:
            raise CliError(f"nothing pruned: the audit chain does not verify ({exc})", EXIT_ERROR) from None
        if pruned is None:
            return {"pruned": 0}
        return {"pruned": pruned.deleted, "first_id": pruned.first_id, "last_id": pruned.last_id,
                "anchor": pruned.anchor.to_json()}

    # --- policy ----------------------------------------------------------------------------------
    @_guarded
    def export_policy(self, owner_grants: bool = False) -> dict:
        """Stored groups and API grants (and creators' grants, if asked) as an ``access`` section, the
        workspaces with their roles, and ``names``: the experiment names of the grants (for comments)."""
        with self.engine.connect() as conn:
            access = admin_policy.export_access(conn, owner_grants=owner_grants)
            document = {"access": access, "names": admin_policy.export_names(conn, access)}
            if (workspaces := admin_policy.export_workspaces(conn)):
                document["workspaces"] = workspaces
            return document

    @_guarded
    def apply_policy(self, document: dict, dry_run: bool, owner_grants: bool = False) -> dict:
        """Plan or apply in one database transaction (a file's conflicts are checked by a server only)."""
        try:
            with self.engine.begin() as conn:
                changes = admin_policy.plan(conn, document.get("access"), owner_grants=owner_grants,
                                            workspaces=document.get("workspaces"),
                                            templates=document.get("workspace_templates"))
                if not dry_run:
                    admin_policy.apply(conn, changes, self.actor_name)
        except PolicyFileError as exc:
            raise CliError("invalid policy, nothing changed:\n" + "\n".join(f"  - {p}" for p in exc.problems)) \
                from None
        if not dry_run and changes:
            self._audit("policy.apply", f"{len(changes)} change(s)")
        return {"changes": [c.to_json() for c in changes], "applied": not dry_run}
