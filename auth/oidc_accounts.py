"""Just-in-time users for single sign-on: link provider subjects to users, sync groups and the admin flag.

A first login creates the user, its link and its memberships in one transaction, so a refusal or a
crash leaves nothing half-created. Users are matched by the provider's immutable ``sub``; a same-named
local account is never taken over unless the provider says ``link_existing_users`` (by default never an
administrator or an account with a password).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, and_, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from auth.ldap_accounts import SOURCE as LDAP_SOURCE
from auth.oidc import NotAllowed, check_subject
from auth.store import UserRow, account_row, group_ids_creating, now_ms
from auth.tables import group_members, groups, oidc_identities, oidc_sessions, sessions, users
from policies.file.oidc import OidcProvider

_NAME = re.compile(r"^[^\s:\x00-\x1f\x7f]{1,255}$")
MAX_GROUPS = 200


@dataclass(frozen=True)
class ProviderIdentity:
    """Who the provider says the user is, read from the validated ID token."""

    provider: str
    subject: str
    username: str
    email: str | None
    groups: frozenset[str]
    groups_claimed: bool = True  # whether the token carried the groups claim at all (empty is not absent)


def claimed_groups(claims: dict, claim: str, renamed: dict[str, str] | None = None) -> frozenset[str]:
    """The mlgate group names in ``claim``: each provider name renamed by ``renamed`` (the provider's
    ``group_names``), then kept if it is a valid mlgate name (others cannot be granted anything)."""
    value = claims.get(claim)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return frozenset()
    renamed = renamed or {}
    names = (renamed.get(g, g) for g in value[:MAX_GROUPS] if isinstance(g, str))
    return frozenset(g for g in names if _NAME.match(g))


def identity_from_claims(provider: OidcProvider, claims: dict) -> ProviderIdentity:
    """Read the configured claims; :class:`NotAllowed` when no usable user name is present."""
    username = claims.get(provider.claims.username)
    if not isinstance(username, str) or not _NAME.match(username):
        raise NotAllowed(f"The identity provider sent no usable {provider.claims.username!r} claim for a user name.")
    return ProviderIdentity(provider.name, check_subject(claims), username, verified_email(provider, claims),
                            claimed_groups(claims, provider.claims.groups, provider.group_names),
                            provider.claims.groups in claims)


def verified_email(provider: OidcProvider, claims: dict) -> str | None:
    """The e-mail claim if the provider says it verified it (or the provider is trusted to), else None."""
    email = claims.get(provider.claims.email)
    # OIDC Core section 5.1: only email_verified true says the provider checked the address; a missing
    # claim says nothing (and with GitHub-backed or self-service providers, users type what they like).
    if isinstance(email, str) and (claims.get("email_verified") is True or provider.trust_unverified_email):
        return email
    return None


def check_allowed(provider: OidcProvider, who: ProviderIdentity) -> None:
    """Refuse users outside ``allowed_groups`` / ``allowed_email_domains`` (each applies when set)."""
    if provider.allowed_groups and not who.groups & set(provider.allowed_groups):
        if not who.groups_claimed:
            # A configuration problem, not the person's: many providers send groups only when asked for the
            # "groups" scope (or with a mapper), and without the claim every group check fails.
            raise NotAllowed(f"The identity provider sent no {provider.claims.groups!r} claim, so mlgate cannot "
                             "check your groups. An administrator must add the \"groups\" scope to this provider's "
                             "scopes in mlgate's policy file (auth.oidc.providers) or a groups mapper at the "
                             "provider.")
        raise NotAllowed("Your account is not in a group that may use mlgate. Ask an administrator for access.")
    if provider.allowed_email_domains:
        domain = who.email.rpartition("@")[2].lower() if who.email else ""
        if domain not in provider.allowed_email_domains:
            raise NotAllowed("Your verified e-mail address is not in a domain that may use mlgate.")


def may_link(provider: OidcProvider, kind: str, is_admin: bool, has_password: bool, linked: bool = False,
             source: str | None = None) -> bool:
    """Whether a first SSO login may take over the same-named existing account (``link_existing_users``).

    The name comes from a claim the user may choose (preferred_username with Dex or GitHub), so by default
    only plain user accounts that hold nothing a name alone should unlock (no password, not admin, not
    already linked to a provider's subject: that account is someone's) are linked. A directory account
    (``source`` ``ldap``) has a password, the directory's, though none is stored here: only ``any`` links it.
    """
    if kind != "user" or provider.link_existing_users == "never":
        return False
    has_password = has_password or source == LDAP_SOURCE
    return provider.link_existing_users == "any" or not (is_admin or has_password or linked)


def admin_flag(provider: OidcProvider, group_names: frozenset[str]) -> bool | None:
    """Whether the user is an administrator by group, or None when the provider does not decide it."""
    if not provider.admin_groups:
        return None
    return bool(group_names & set(provider.admin_groups))


def _sync_groups(conn: Connection, user_id: int, wanted: frozenset[str], replace: bool) -> bool:
    """Make the user's memberships match ``wanted`` (replace) or include it (additive); True if changed."""
    current = {r.name: r.id for r in conn.execute(
        select(groups.c.name, groups.c.id).join(group_members, group_members.c.group_id == groups.c.id)
        .where(group_members.c.user_id == user_id))}
    to_add = wanted - current.keys()
    to_drop = [gid for name, gid in current.items() if name not in wanted] if replace else []
    if to_add:
        ids = group_ids_creating(conn, frozenset(to_add))
        conn.execute(insert(group_members), [{"group_id": ids[n], "user_id": user_id} for n in sorted(to_add)])
    if to_drop:
        conn.execute(delete(group_members).where(and_(group_members.c.user_id == user_id,
                                                      group_members.c.group_id.in_(to_drop))))
    return bool(to_add or to_drop)


def _apply_identity(conn: Connection, provider: OidcProvider, user: UserRow, who: ProviderIdentity,
                    ts: int) -> UserRow:
    """Apply the provider's word (admin flag, groups) to ``user``; a change bumps its generation."""
    if user.disabled:
        raise NotAllowed("Your mlgate account is disabled. Ask an administrator.")
    changes: dict = {}
    admin = admin_flag(provider, who.groups)
    if admin is not None and admin != user.is_admin:
        changes["is_admin"] = admin
    groups_changed = _sync_groups(conn, user.id, who.groups, provider.group_sync == "replace")
    if changes or groups_changed:
        # Cached Principals and older sessions of this user carry the old groups: end them.
        conn.execute(update(users).where(users.c.id == user.id)
                     .values(updated_at=ts, generation=users.c.generation + 1, **changes))
        return account_row(conn, user.id)
    return user


@dataclass(frozen=True)
class SsoSession:
    """An SSO session's re-validation state (provider tokens still sealed)."""

    session_id: str
    provider: str
    user_id: int
    subject: str | None
    revalidate_at: int
    refresh_token: str | None
    id_token: str | None
    refreshing_until: int | None
    revoked: bool
    notice: str | None


class OidcAccounts:
    """The SSO queries: links, provisioning, SSO sessions and service accounts."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def provision(self, provider: OidcProvider, who: ProviderIdentity) -> UserRow:
        """Create or update the user for ``who`` (link, admin flag, groups) in one transaction."""
        try:
            return self._provision(provider, who)
        except IntegrityError:
            # A concurrent first login created the same user or group: the second attempt sees it.
            return self._provision(provider, who)

    def _provision(self, provider: OidcProvider, who: ProviderIdentity) -> UserRow:
        ts = now_ms()
        with self.engine.begin() as conn:
            user_id = conn.execute(select(oidc_identities.c.user_id).where(and_(
                oidc_identities.c.provider == who.provider, oidc_identities.c.subject == who.subject))).scalar()
            if user_id is None:
                existing = conn.execute(select(users.c.id, users.c.kind, users.c.is_admin, users.c.password_hash,
                                               users.c.source)
                                        .where(users.c.username == who.username)).first()
                linked = existing is not None and conn.execute(
                    select(oidc_identities.c.user_id).where(oidc_identities.c.user_id == existing.id).limit(1)
                ).first() is not None
                if existing is not None and not may_link(provider, existing.kind, bool(existing.is_admin),
                                                         existing.password_hash is not None, linked, existing.source):
                    raise NotAllowed(f"An mlgate account named {who.username!r} already exists and is not linked to "
                                     "this identity provider. Ask an administrator.")
                if existing is None:
                    user_id = conn.execute(insert(users).values(
                        username=who.username, kind="user", password_hash=None, is_admin=False, disabled=False,
                        generation=1, created_at=ts, updated_at=ts, source="oidc").returning(users.c.id)).scalar_one()
                else:
                    user_id = existing.id
                conn.execute(insert(oidc_identities).values(provider=who.provider, subject=who.subject,
                                                            user_id=user_id, created_at=ts))
            return _apply_identity(conn, provider, account_row(conn, user_id), who, ts)

    def record_session(self, session_id: str, provider: str, revalidate_at: int, *,
                       refresh_token: str | None = None, id_token: str | None = None) -> None:
        """Remember that a session came from ``provider``, when it must be re-validated, and its sealed tokens."""
        with self.engine.begin() as conn:
            conn.execute(insert(oidc_sessions).values(session_id=session_id, provider=provider,
                                                      revalidate_at=revalidate_at, refresh_token=refresh_token,
                                                      id_token=id_token))

    def sso_session(self, session_id: str) -> SsoSession | None:
        """Everything re-validation needs about an SSO session; None for a password session."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(oidc_sessions, sessions.c.user_id, sessions.c.revoked_at)
                .join(sessions, sessions.c.id == oidc_sessions.c.session_id)
                .where(oidc_sessions.c.session_id == session_id)).first()
            if row is None:
                return None
            subject = conn.execute(select(oidc_identities.c.subject).where(and_(
                oidc_identities.c.provider == row.provider, oidc_identities.c.user_id == row.user_id))).scalar()
        return SsoSession(row.session_id, row.provider, row.user_id, subject, row.revalidate_at, row.refresh_token,
                          row.id_token, row.refreshing_until, row.revoked_at is not None, row.notice)

    def claim_renewal(self, session_id: str, revalidate_at: int, now: int, until: int) -> bool:
        """Take the right to renew a due session until ``until``; False if another request holds it or did it."""
        with self.engine.begin() as conn:
            claimed = conn.execute(update(oidc_sessions).where(and_(
                oidc_sessions.c.session_id == session_id, oidc_sessions.c.revalidate_at == revalidate_at,
                or_(oidc_sessions.c.refreshing_until.is_(None), oidc_sessions.c.refreshing_until < now)))
                .values(refreshing_until=until))
        return claimed.rowcount == 1

    def release_renewal(self, session_id: str, notice: str) -> None:
        """Give up a claim without extending the session (the provider could not be asked)."""
        with self.engine.begin() as conn:
            conn.execute(update(oidc_sessions).where(oidc_sessions.c.session_id == session_id)
                         .values(refreshing_until=None, notice=notice[:255]))

    def renew(self, provider: OidcProvider, session_id: str, who: ProviderIdentity, revalidate_at: int, *,
              refresh_token: str | None, id_token: str | None) -> UserRow:
        """The provider vouched again: re-sync the user and extend the session, in one transaction."""
        ts = now_ms()
        with self.engine.begin() as conn:
            user_id = conn.execute(select(sessions.c.user_id).where(and_(
                sessions.c.id == session_id, sessions.c.revoked_at.is_(None)))).scalar()
            if user_id is None:
                raise NotAllowed("The session has ended; sign in again.")
            linked = conn.execute(select(oidc_identities.c.user_id).where(and_(
                oidc_identities.c.provider == who.provider, oidc_identities.c.subject == who.subject))).scalar()
            if linked != user_id:
                raise NotAllowed("The identity provider answered for a different account.")
            before = account_row(conn, user_id)
            user = _apply_identity(conn, provider, before, who, ts)
            if user.generation != before.generation:
                # The change ends the user's other sessions; this one was just confirmed, so it carries on.
                conn.execute(update(sessions).where(sessions.c.id == session_id).values(generation=user.generation))
            values = {"revalidate_at": revalidate_at, "refreshing_until": None, "notice": None}
            if refresh_token is not None:
                values["refresh_token"] = refresh_token
            if id_token is not None:
                values["id_token"] = id_token
            conn.execute(update(oidc_sessions).where(oidc_sessions.c.session_id == session_id).values(**values))
            return user

    def session_info(self, session_id: str) -> tuple[str, int] | None:
        """(provider, revalidate_at) of an SSO session; None for a password session."""
        with self.engine.connect() as conn:
            row = conn.execute(select(oidc_sessions.c.provider, oidc_sessions.c.revalidate_at)
                               .where(oidc_sessions.c.session_id == session_id)).first()
        return None if row is None else (row.provider, row.revalidate_at)

    def end_session(self, session_id: str, notice: str | None = None) -> None:
        """Revoke a session that failed re-validation; forget its provider tokens, keep why it ended."""
        with self.engine.begin() as conn:
            conn.execute(update(sessions).where(and_(sessions.c.id == session_id, sessions.c.revoked_at.is_(None)))
                         .values(revoked_at=now_ms()))
            conn.execute(update(oidc_sessions).where(oidc_sessions.c.session_id == session_id).values(
                refresh_token=None, refreshing_until=None, notice=notice[:255] if notice else None))

    def linked_user(self, provider: str, subject: str) -> UserRow | None:
        """The user linked to a provider subject, if any."""
        with self.engine.connect() as conn:
            user_id = conn.execute(select(oidc_identities.c.user_id).where(and_(
                oidc_identities.c.provider == provider, oidc_identities.c.subject == subject))).scalar()
            return None if user_id is None else account_row(conn, user_id)

    def service_account(self, name: str) -> UserRow:
        """The service account called ``name``, created (token-only, no password) on first use."""
        with self.engine.connect() as conn:
            user_id = conn.execute(select(users.c.id).where(users.c.username == name)).scalar()
            if user_id is not None:
                user = account_row(conn, user_id)
                if user.kind != "service":
                    raise NotAllowed(f"{name!r} is a user account, not a service account.")
                return user
        ts = now_ms()
        try:
            with self.engine.begin() as conn:
                user_id = conn.execute(insert(users).values(
                    username=name, kind="service", password_hash=None, is_admin=False, disabled=False, generation=1,
                    created_at=ts, updated_at=ts, source="oidc").returning(users.c.id)).scalar_one()
        except IntegrityError:
            return self.service_account(name)
        return UserRow(user_id, name, "service", None, False, False, 1, ts)
