"""Database access for identities: users, groups, tokens, sessions and the audit log (SQLAlchemy Core)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, and_, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from auth import audit_chain
from auth.errors import AlreadyExists, NotFound
from auth.tables import (
    access_tokens,
    audit_log,
    group_members,
    groups,
    oidc_identities,
    oidc_sessions,
    sessions,
    users,
)

MAX_USERNAME = 255


def username_problem(username: str) -> str | None:
    """Why ``username`` cannot be an account's name (None: it can), whichever source names the account."""
    if not username:
        return "Username and password cannot be empty."
    if len(username) > MAX_USERNAME:
        return f"Username is longer than {MAX_USERNAME} characters."
    # RFC 7617 section 2: the user-id cannot contain a colon; control characters would forge log lines.
    if ":" in username or any(ord(c) < 0x20 or ord(c) == 0x7F for c in username) or username != username.strip():
        return "Username must not contain ':', control characters or surrounding spaces."
    return None


def now_ms() -> int:
    """The current time in epoch milliseconds."""
    return int(time.time() * 1000)


@dataclass(frozen=True)
class AccountStamp:
    """What a cached credential must still find in the account's row: the same account, unchanged.

    The id alone is not enough: on a database that reused ids (SQLite before revision 0005 reused the
    highest deleted one) a new account could carry a deleted account's id and generation.
    """

    generation: int
    username: str
    created_at: int


@dataclass(frozen=True)
class UserRow:
    """One user as stored."""

    id: int
    username: str
    kind: str
    password_hash: str | None
    is_admin: bool
    disabled: bool
    generation: int
    created_at: int

    @property
    def stamp(self) -> AccountStamp:
        """The values a cached credential of this account is checked against."""
        return AccountStamp(self.generation, self.username, self.created_at)

    @property
    def subject_key(self) -> str:
        """How grants name this account: ``user:<name>`` or ``service:<name>``."""
        return f"{'service' if self.kind == 'service' else 'user'}:{self.username}"

    def to_json(self) -> dict:
        """MLflow's user JSON (never the hash)."""
        return {"id": self.id, "username": self.username, "is_admin": self.is_admin}


@dataclass(frozen=True)
class TokenRow:
    """One access token as stored (without its secret), with its owner."""

    id: str
    user_id: int
    name: str
    read_only: bool
    created_at: int
    expires_at: int
    last_used_at: int | None
    revoked_at: int | None
    # A scoped token's limits as stored (JSON, policies.token_scope); None: unscoped.
    scope: str | None = None

    def to_json(self) -> dict:
        """The token's metadata for listings (its scope entries and networks, never the secret)."""
        limits = json.loads(self.scope) if self.scope else {}
        return {
            "id": self.id, "name": self.name, "read_only": self.read_only, "created_at": self.created_at,
            "expires_at": self.expires_at, "last_used_at": self.last_used_at, "revoked": self.revoked_at is not None,
            "scope": limits.get("scope", []), "cidrs": limits.get("cidrs", []),
        }


@dataclass(frozen=True)
class SessionRow:
    """One browser session as stored."""

    id: str
    user_id: int
    generation: int
    created_at: int
    last_seen_at: int
    revoked_at: int | None


_USER_COLUMNS = (users.c.id, users.c.username, users.c.kind, users.c.password_hash, users.c.is_admin,
                 users.c.disabled, users.c.generation, users.c.created_at)
_TOKEN_COLUMNS = (access_tokens.c.id, access_tokens.c.user_id, access_tokens.c.name, access_tokens.c.read_only,
                  access_tokens.c.created_at, access_tokens.c.expires_at, access_tokens.c.last_used_at,
                  access_tokens.c.revoked_at, access_tokens.c.scope)


def _user(row) -> UserRow | None:
    return None if row is None else UserRow(row.id, row.username, row.kind, row.password_hash, bool(row.is_admin),
                                            bool(row.disabled), row.generation, row.created_at)


def account_row(conn: Connection, user_id: int) -> UserRow:
    """The account ``user_id`` as it stands in the caller's transaction (it must exist)."""
    return _user(conn.execute(select(*_USER_COLUMNS).where(users.c.id == user_id)).one())


def group_ids_creating(conn: Connection, names: frozenset[str]) -> dict[str, int]:
    """The ids of the groups called ``names``, in the caller's transaction, creating the missing ones."""
    if not names:
        return {}
    found = {r.name: r.id for r in conn.execute(select(groups.c.name, groups.c.id).where(groups.c.name.in_(names)))}
    missing = sorted(names - found.keys())
    if missing:
        ts = now_ms()
        conn.execute(insert(groups), [{"name": n, "created_at": ts} for n in missing])
        found.update({r.name: r.id for r in conn.execute(
            select(groups.c.name, groups.c.id).where(groups.c.name.in_(missing)))})
    return found


def _token(row) -> TokenRow:
    return TokenRow(row.id, row.user_id, row.name, bool(row.read_only), row.created_at, row.expires_at,
                    row.last_used_at, row.revoked_at, row.scope)


def delete_account_rows(conn: Connection, user_id: int) -> bool:
    """Delete an account and every row that names it by id, in the caller's transaction; False if it was gone.

    The foreign keys cascade too; deleting explicitly keeps this right on a connection without them.
    """
    user_sessions = select(sessions.c.id).where(sessions.c.user_id == user_id)
    conn.execute(delete(oidc_sessions).where(oidc_sessions.c.session_id.in_(user_sessions)))
    conn.execute(delete(sessions).where(sessions.c.user_id == user_id))
    conn.execute(delete(access_tokens).where(access_tokens.c.user_id == user_id))
    conn.execute(delete(group_members).where(group_members.c.user_id == user_id))
    conn.execute(delete(oidc_identities).where(oidc_identities.c.user_id == user_id))
    return conn.execute(delete(users).where(users.c.id == user_id)).rowcount == 1


class IdentityStore:
    """Every identity query, over the engine the gateway hands in."""

    def __init__(self, engine: Engine):
        self.engine = engine

    # --- users -----------------------------------------------------------------------------------
    def user_by_name(self, username: str) -> UserRow | None:
        """The user called ``username``, if any."""
        with self.engine.connect() as conn:
            return _user(conn.execute(select(*_USER_COLUMNS).where(users.c.username == username)).first())

    def user_by_id(self, user_id: int) -> UserRow | None:
        """The user with ``user_id``, if any."""
        with self.engine.connect() as conn:
            return _user(conn.execute(select(*_USER_COLUMNS).where(users.c.id == user_id)).first())

    def require_user(self, username: str) -> UserRow:
        """The user called ``username``, or :class:`NotFound` with MLflow's message."""
        user = self.user_by_name(username)
        if user is None:
            raise NotFound(f"User with username={username} not found")
        return user

    def source_of(self, username: str) -> str | None:
        """Who manages the account called ``username`` (local, oidc, scim, ldap), or None if there is none."""
        with self.engine.connect() as conn:
            return conn.execute(select(users.c.source).where(users.c.username == username)).scalar()

    def live_stamp(self, user_id: int) -> AccountStamp | None:
        """The account's stamp, or None when the account is gone or disabled (one primary-key read)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(users.c.generation, users.c.username, users.c.created_at, users.c.disabled)
                               .where(users.c.id == user_id)).first()
        if row is None or row.disabled:
            return None
        return AccountStamp(row.generation, row.username, row.created_at)

    def create_user(self, username: str, password_hash: str | None, *, kind: str = "user",
                    is_admin: bool = False, source: str = "local") -> UserRow:
        """Insert a user (``source``: who manages it); :class:`AlreadyExists` if the name is taken."""
        ts = now_ms()
        try:
            with self.engine.begin() as conn:
                user_id = conn.execute(
                    insert(users).values(username=username, kind=kind, password_hash=password_hash,
                                         is_admin=is_admin, disabled=False, generation=1, created_at=ts,
                                         updated_at=ts, source=source).returning(users.c.id)
                ).scalar_one()
        except IntegrityError:
            raise AlreadyExists(f"User (username={username}) already exists.") from None
        return UserRow(user_id, username, kind, password_hash, is_admin, False, 1, ts)

    def update_user(self, user_id: int, *, bump: bool = True, **values) -> None:
        """Change columns of a user; ``bump`` ends its cached credentials and sessions everywhere."""
        stmt = update(users).where(users.c.id == user_id).values(updated_at=now_ms(), **values)
        if bump:
            stmt = stmt.values(generation=users.c.generation + 1)
        with self.engine.begin() as conn:
            if conn.execute(stmt).rowcount == 0:
                raise NotFound(f"User with id={user_id} not found")

    def rehash_password(self, user_id: int, expected_hash: str, new_hash: str) -> None:
        """Replace an outdated hash after a successful login; no generation bump (same password)."""
        with self.engine.begin() as conn:
            conn.execute(update(users).where(and_(users.c.id == user_id, users.c.password_hash == expected_hash))
                         .values(password_hash=new_hash))

    def delete_user(self, user_id: int) -> None:
        """Delete a user with its tokens, sessions, memberships and provider links (not its grants: see
        :meth:`auth.accounts.Accounts.delete_user`, which removes both in one transaction)."""
        with self.engine.begin() as conn:
            delete_account_rows(conn, user_id)

    def list_users(self) -> list[UserRow]:
        """Every user, by id."""
        with self.engine.connect() as conn:
            return [_user(r) for r in conn.execute(select(*_USER_COLUMNS).order_by(users.c.id))]

    def has_admin(self) -> bool:
        """Whether any enabled admin exists."""
        with self.engine.connect() as conn:
            count = conn.execute(select(func.count()).select_from(users)
                                 .where(and_(users.c.is_admin.is_(True), users.c.disabled.is_(False)))).scalar()
        return bool(count)

    # --- groups ----------------------------------------------------------------------------------
    def groups_of(self, user_id: int) -> frozenset[str]:
        """Names of the groups the user belongs to."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(groups.c.name).join(group_members, group_members.c.group_id == groups.c.id)
                                .where(group_members.c.user_id == user_id))
            return frozenset(r.name for r in rows)

    def add_to_group(self, user_id: int, group_name: str) -> None:
        """Make the user a member of ``group_name`` (created if new); ends cached identities of the user."""
        with self.engine.begin() as conn:
            group_id = conn.execute(select(groups.c.id).where(groups.c.name == group_name)).scalar()
            if group_id is None:
                group_id = conn.execute(insert(groups).values(name=group_name, created_at=now_ms())
                                        .returning(groups.c.id)).scalar_one()
            exists = conn.execute(select(group_members.c.user_id).where(and_(
                group_members.c.group_id == group_id, group_members.c.user_id == user_id))).first()
            if exists is None:
                conn.execute(insert(group_members).values(group_id=group_id, user_id=user_id))
            conn.execute(update(users).where(users.c.id == user_id).values(generation=users.c.generation + 1))

    # --- tokens ----------------------------------------------------------------------------------
    def create_token(self, token_id: str, user_id: int, name: str, digest: str, *, read_only: bool,
                     expires_at: int, created_by: int | None, created_at: int | None = None,
                     scope: str | None = None) -> TokenRow:
        """Store a new token's hash and metadata (``scope``: its limits as JSON, None for an unscoped token)."""
        ts = now_ms() if created_at is None else created_at
        with self.engine.begin() as conn:
            conn.execute(insert(access_tokens).values(
                id=token_id, user_id=user_id, name=name, token_hash=digest, read_only=read_only,
                created_by=created_by, created_at=ts, expires_at=expires_at, scope=scope))
        return TokenRow(token_id, user_id, name, read_only, ts, expires_at, None, None, scope)

    def token_with_owner(self, digest: str) -> tuple[TokenRow, UserRow] | None:
        """The token with this hash and its owner: one indexed lookup."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(*_TOKEN_COLUMNS, *[c.label(f"u_{c.name}") for c in _USER_COLUMNS])
                .join(users, users.c.id == access_tokens.c.user_id)
                .where(access_tokens.c.token_hash == digest)
            ).first()
        if row is None:
            return None
        m = row._mapping
        user = UserRow(m["u_id"], m["u_username"], m["u_kind"], m["u_password_hash"], bool(m["u_is_admin"]),
                       bool(m["u_disabled"]), m["u_generation"], m["u_created_at"])
        return _token(row), user

    def tokens_of(self, user_id: int) -> list[TokenRow]:
        """The user's tokens, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(*_TOKEN_COLUMNS).where(access_tokens.c.user_id == user_id)
                                .order_by(access_tokens.c.created_at.desc(), access_tokens.c.id))
            return [_token(r) for r in rows]

    def token_by_id(self, token_id: str) -> TokenRow | None:
        """The token with this public id."""
        with self.engine.connect() as conn:
            row = conn.execute(select(*_TOKEN_COLUMNS).where(access_tokens.c.id == token_id)).first()
        return None if row is None else _token(row)

    def revoke_token(self, token_id: str) -> None:
        """Mark the token revoked (kept for the audit trail)."""
        with self.engine.begin() as conn:
            conn.execute(update(access_tokens).where(and_(access_tokens.c.id == token_id,
                                                          access_tokens.c.revoked_at.is_(None)))
                         .values(revoked_at=now_ms()))

    def touch_token(self, token_id: str, at: int) -> None:
        """Record when the token was last used."""
        with self.engine.begin() as conn:
            conn.execute(update(access_tokens).where(access_tokens.c.id == token_id).values(last_used_at=at))

    # --- sessions --------------------------------------------------------------------------------
    def create_session(self, session_id: str, user_id: int, generation: int) -> None:
        """Record a new browser session."""
        ts = now_ms()
        with self.engine.begin() as conn:
            conn.execute(insert(sessions).values(id=session_id, user_id=user_id, generation=generation,
                                                 created_at=ts, last_seen_at=ts))

    def session_with_user(self, session_id: str) -> tuple[SessionRow, UserRow] | None:
        """The session and its user: one primary-key lookup with a join."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(sessions.c.id, sessions.c.user_id, sessions.c.generation.label("s_generation"),
                       sessions.c.created_at, sessions.c.last_seen_at, sessions.c.revoked_at, *_USER_COLUMNS[1:-1],
                       users.c.created_at.label("u_created_at"))
                .join(users, users.c.id == sessions.c.user_id)
                .where(sessions.c.id == session_id)
            ).first()
        if row is None:
            return None
        session = SessionRow(row.id, row.user_id, row.s_generation, row.created_at, row.last_seen_at,
                             row.revoked_at)
        user = UserRow(row.user_id, row.username, row.kind, row.password_hash, bool(row.is_admin),
                       bool(row.disabled), row.generation, row.u_created_at)
        return session, user

    def touch_session(self, session_id: str, at: int) -> None:
        """Record activity (for the idle timeout)."""
        with self.engine.begin() as conn:
            conn.execute(update(sessions).where(sessions.c.id == session_id).values(last_seen_at=at))

    def revoke_session(self, session_id: str) -> None:
        """End one session."""
        with self.engine.begin() as conn:
            conn.execute(update(sessions).where(and_(sessions.c.id == session_id, sessions.c.revoked_at.is_(None)))
                         .values(revoked_at=now_ms()))

    # --- audit -----------------------------------------------------------------------------------
    def append_audit(self, record: dict) -> audit_chain.Appended:
        """Append one audit record to the hash chain (auth.audit_chain; only retention deletes)."""
        with self.engine.begin() as conn:
            return audit_chain.append(conn, record)

    def audit_records(self, limit: int = 1000) -> list[dict]:
        """The newest audit records first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(audit_log).order_by(audit_log.c.id.desc()).limit(limit))
            return [dict(r._mapping) for r in rows]
