"""User and token management with its rules: who may change whom, and what every change invalidates."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from auth.errors import InvalidInput, NotFound, PermissionDenied, Unauthenticated
from auth.grants import revoke_subjects
from auth.identity import Identity
from auth.principal import Principal
from auth.roles import unassign_subjects
from auth.store import TokenRow, UserRow, delete_account_rows, now_ms, username_problem
from auth.tokens import new_token, new_token_id, token_hash
from policies.token_scope import parse_scope

MAX_TOKEN_NAME = 255


@dataclass(frozen=True)
class IssuedToken:
    """A new token: the secret is returned exactly once and never stored."""

    token: str
    row: TokenRow


def validate_username(username: str) -> None:
    """Refuse names that cannot round-trip through Basic auth or logs."""
    if (problem := username_problem(username)) is not None:
        raise InvalidInput(problem)


def _require_writer(actor: Principal) -> None:
    if actor.read_only:
        raise PermissionDenied("A read-only token cannot change users or tokens.")
    if actor.token_scope is not None:
        # A scoped token must not mint a broader credential (or change the account behind it).
        raise PermissionDenied("A scoped token cannot change users or tokens.")


def _require_admin(actor: Principal) -> None:
    _require_writer(actor)
    if not actor.is_admin:
        raise PermissionDenied("Only administrators can do this.")


class Accounts:
    """The operations behind the user and token API; each is audited."""

    def __init__(self, identity: Identity, *, grants_changed: Callable[[], None] | None = None):
        self.identity = identity
        self.store = identity.store
        # Called after a change to stored grants commits (the gateway recompiles its policy and tells the
        # other processes); without it, other processes notice through the policy generation.
        self._grants_changed = grants_changed

    def grants_changed(self) -> None:
        """Recompile the policy here and tell the other processes (after a change to stored grants commits)."""
        if self._grants_changed is not None:
            self._grants_changed()

    def _audit(self, action: str, actor: Principal | None, target: str | None, client: str | None,
               outcome: str = "success", reason: str | None = None) -> None:
        self.identity.auditor.record(action, outcome, actor=actor.name if actor else None, target=target,
                                     client=client, reason=reason)

    def create_user(self, actor: Principal | None, username: str, password: str | None, *, client: str | None,
                    is_admin: bool = False, service_account: bool = False) -> UserRow:
        """Create a user (admins only; ``actor`` None is the first-start bootstrap)."""
        if actor is not None:
            _require_admin(actor)
        validate_username(username)
        if service_account:
            if password:
                raise InvalidInput("A service account has no password; it authenticates with tokens.")
            user = self.store.create_user(username, None, kind="service", is_admin=is_admin)
        else:
            if not password:
                raise InvalidInput("Username and password cannot be empty.")
            self.identity.hasher.check_strength(password, username)
            user = self.store.create_user(username, self.identity.hasher.hash(password), is_admin=is_admin)
        self._audit("user.create", actor, username, client,
                    reason="service account" if service_account else ("admin" if is_admin else None))
        return user

    def get_user(self, actor: Principal, username: str) -> UserRow:
        """A user's public fields (admins, or the user themself)."""
        if not actor.is_admin and actor.name != username:
            raise PermissionDenied("Only administrators can look up other users.")
        return self.store.require_user(username)

    def list_users(self, actor: Principal) -> list[UserRow]:
        """Every user (admins only)."""
        if not actor.is_admin:
            raise PermissionDenied("Only administrators can list users.")
        return self.store.list_users()

    def change_password(self, actor: Principal, username: str, password: str, current_password: str | None,
                        *, client: str | None) -> None:
        """Set a new password: admins for anyone; a user for themself, proving the current password."""
        _require_writer(actor)
        if not password:
            raise InvalidInput("Missing value for required parameter 'password'.")
        if self.store.source_of(username) == "ldap":
            # A local password would never be checked for it (auth.ldap_accounts): refuse rather than pretend.
            raise InvalidInput("This account signs in with its directory (LDAP) password; change it there.")
        if actor.name == username:
            if not current_password:
                raise InvalidInput("Current password is required when changing your own password.")
            try:
                self.identity.password_login(username, current_password, client, method="password_change")
            except Unauthenticated:
                self._audit("user.password", actor, username, client, "failure", "current password mismatch")
                raise InvalidInput("Current password does not match.") from None
            if password == current_password:
                raise InvalidInput("New password must differ from the current password.")
        elif not actor.is_admin:
            raise PermissionDenied("Only administrators can change another user's password.")
        user = self.store.require_user(username)
        if user.kind != "user":
            raise InvalidInput("A service account has no password; it authenticates with tokens.")
        self.identity.hasher.check_strength(password, username)
        self.store.update_user(user.id, password_hash=self.identity.hasher.hash(password))
        self.identity.user_changed(user.id)
        self._audit("user.password", actor, username, client)

    def set_admin(self, actor: Principal, username: str, is_admin: bool, *, client: str | None) -> None:
        """Grant or remove administrator rights (admins only; not on oneself, to keep an admin)."""
        _require_admin(actor)
        user = self.store.require_user(username)
        if user.id == actor.id and not is_admin:
            raise InvalidInput("Administrators cannot remove their own admin rights. Ask another admin.")
        self.store.update_user(user.id, is_admin=is_admin)
        self.identity.user_changed(user.id)
        self._audit("user.admin", actor, username, client, reason=f"is_admin={is_admin}")

    def set_disabled(self, actor: Principal, username: str, disabled: bool, *, client: str | None) -> None:
        """Disable or re-enable a user (admins only); disabling ends its sessions, tokens and cached logins."""
        _require_admin(actor)
        user = self.store.require_user(username)
        if user.id == actor.id:
            raise InvalidInput("Administrators cannot disable themselves.")
        self.store.update_user(user.id, disabled=disabled)
        self.identity.user_changed(user.id)
        self._audit("user.disable" if disabled else "user.enable", actor, username, client)

    def delete_user(self, actor: Principal, username: str, *, client: str | None) -> None:
        """Delete an account with everything that names it (admins only; not oneself).

        One transaction removes the account, its tokens, sessions, memberships and provider links, and every
        stored grant naming it (both ``user:`` and ``service:`` forms of the name, owner grants included), so
        a later account of the same name, made by hand or by single sign-on from a claimed name, starts
        with nothing. Account ids are never reused (revision 0005); every process forgets the account's
        cached credentials (pushed with Redis, else on its next database check) and recompiles its policy.
        """
        _require_admin(actor)
        user = self.store.require_user(username)
        if user.id == actor.id:
            raise InvalidInput(
                "Users cannot delete their own account. Ask another admin to delete this user instead.")
        reason = self.delete_account(user)
        self._audit("user.delete", actor, username, client, reason=reason)

    def delete_account(self, user: UserRow) -> str | None:
        """Delete ``user`` with everything naming it (see :meth:`delete_user`; no permission check here, the
        caller made it); returns what was removed besides the account, for the audit record."""
        with self.store.engine.begin() as conn:
            if not delete_account_rows(conn, user.id):
                raise NotFound(f"User with username={user.username} not found")
            subjects = [f"user:{user.username}", f"service:{user.username}"]
            removed = revoke_subjects(conn, subjects)
            unassigned = unassign_subjects(conn, subjects)  # a workspace role is a grant through a group
        self.identity.user_changed(user.id)
        if (removed or unassigned) and self._grants_changed is not None:
            self._grants_changed()
        what = [f"{removed} grant(s) removed"] if removed else []
        what += [f"{unassigned} role assignment(s) removed"] if unassigned else []
        return ", ".join(what) or None

    # --- tokens ----------------------------------------------------------------------------------
    def _token_owner(self, actor: Principal, username: str | None) -> UserRow:
        if username is None or username == actor.name:
            user = self.store.user_by_id(actor.id)
            if user is None:
                raise NotFound(f"User with username={actor.name} not found")
            return user
        if not actor.is_admin:
            raise PermissionDenied("Only administrators can manage another account's tokens.")
        return self.store.require_user(username)

    def create_token(self, actor: Principal, name: str, expires_in_days: int, *, username: str | None = None,
                     read_only: bool = False, client: str | None = None, scope: list[str] | None = None,
                     cidrs: list[str] | None = None) -> IssuedToken:
        """Issue a token for oneself, or (admins) for another account such as a service account.

        ``scope`` and ``cidrs`` limit it (policies.token_scope): it then never does more than its owner may
        and the scope allows, and only from those networks.
        """
        _require_writer(actor)
        try:
            limits = parse_scope(scope or [], cidrs or [])
        except ValueError as exc:
            raise InvalidInput(f"Invalid token scope: {exc}") from None
        owner = self._token_owner(actor, username)
        if not name or len(name) > MAX_TOKEN_NAME or any(ord(c) < 0x20 for c in name):
            raise InvalidInput(f"Token name must be 1 to {MAX_TOKEN_NAME} printable characters.")
        limit = self.identity.config.tokens.max_lifetime_days
        if not 1 <= expires_in_days <= limit:
            raise InvalidInput(f"expires_in_days must be between 1 and {limit}.")
        token = new_token()
        created_at = now_ms()
        row = self.store.create_token(new_token_id(), owner.id, name, token_hash(token), read_only=read_only,
                                      expires_at=created_at + expires_in_days * 86_400_000, created_by=actor.id,
                                      created_at=created_at, scope=None if limits is None else limits.to_json())
        notes = (["read-only"] if read_only else []) + ([f"scope: {limits.describe()}"] if limits else [])
        self._audit("token.create", actor, f"{owner.username}/{row.id}", client, reason="; ".join(notes) or None)
        return IssuedToken(token, row)

    def list_tokens(self, actor: Principal, username: str | None = None) -> list[TokenRow]:
        """Tokens of oneself, or (admins) of another account."""
        return self.store.tokens_of(self._token_owner(actor, username).id)

    def revoke_token(self, actor: Principal, token_id: str, *, client: str | None = None) -> None:
        """Revoke a token: the owner or an admin; takes effect on every process within seconds."""
        _require_writer(actor)
        row = self.store.token_by_id(token_id)
        if row is None or (row.user_id != actor.id and not actor.is_admin):
            raise NotFound(f"Token with id={token_id} not found")
        self.store.revoke_token(token_id)
        self.identity.user_changed(row.user_id)
        self._audit("token.revoke", actor, token_id, client)
