"""Directory accounts in mlgate: which names LDAP signs in, and the account each becomes.

Precedence, one rule: an account belongs to one password source.

1. A name with no mlgate account, or with an account whose ``source`` is ``ldap``, is checked against the
   directory. The first successful bind creates the account (``source = 'ldap'``, no password: a local password
   never applies to it).
2. A name whose account is managed otherwise (``local``, ``oidc``, ``scim``) is never sent to the directory:
   its local password decides, exactly as without LDAP. A directory entry of the same name cannot take over a
   local administrator, and a disabled local account stays refused.
3. A disabled ``ldap`` account is refused even when the directory accepts the password. A deleted one is
   created again at its next successful bind, inheriting nothing (deleting an account deletes its grants).

Groups: the mlgate groups named in ``auth.ldap.group_map`` are the directory's to decide. At each bind the
account joins the mapped groups of its directory groups and leaves the other mapped ones; memberships an
administrator gave in other groups are kept. A change bumps the account's generation, ending its cached
credentials and sessions everywhere, so the new groups apply from then on.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from auth.ldap import DirectoryRefused, DirectoryUser, LdapDirectory
from auth.store import UserRow, account_row, group_ids_creating, now_ms, username_problem
from auth.tables import group_members, groups, users

SOURCE = "ldap"


@dataclass(frozen=True)
class SignedIn:
    """The account a directory bind proved, and whether its mapped groups changed just now."""

    user: UserRow
    groups_changed: bool


def sync_managed_groups(conn: Connection, user_id: int, wanted: frozenset[str], managed: frozenset[str]) -> bool:
    """Make the user's memberships among ``managed`` groups exactly ``wanted``; True if anything changed."""
    wanted = wanted & managed
    current = {r.name: r.id for r in conn.execute(
        select(groups.c.name, groups.c.id).join(group_members, group_members.c.group_id == groups.c.id)
        .where(and_(group_members.c.user_id == user_id, groups.c.name.in_(managed))))} if managed else {}
    to_add = wanted - current.keys()
    to_drop = [gid for name, gid in current.items() if name not in wanted]
    if to_add:
        ids = group_ids_creating(conn, frozenset(to_add))
        conn.execute(insert(group_members), [{"group_id": ids[n], "user_id": user_id} for n in sorted(to_add)])
    if to_drop:
        conn.execute(delete(group_members).where(and_(group_members.c.user_id == user_id,
                                                      group_members.c.group_id.in_(to_drop))))
    return bool(to_add or to_drop)


def directory_decides(source: str | None) -> bool:
    """Whether an account of this ``source`` (None: no account) signs in with the directory (rules 1 and 2)."""
    return source is None or source == SOURCE


# Marks and invisible characters left out of a lockout key (combining marks, format and control characters).
_NOT_IN_LOCKOUT_KEY = frozenset({"Mn", "Me", "Cf", "Cc"})


def lockout_name(username: str) -> str:
    """The lockout key of a name sent to the directory: one for every spelling the directory may match to one
    entry. caseIgnoreMatch (RFC 4517 section 4.2.11) compares strings prepared by RFC 4518: compatibility
    normalization (NFKC), case folding, insignificant spaces, and characters mapped to nothing. So "Alice",
    " alice", "\\uff41lice" (a fullwidth a) and "\\U0001d41alice" (a mathematical bold a) count as one
    account, or repeated spellings would multiply the guesses the lockout allows. The key folds at least as
    much as a directory does (accents and invisible characters go too): a shared key only merges counters,
    never signs anyone in."""
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", username).casefold())
    kept = "".join(c for c in folded if unicodedata.category(c) not in _NOT_IN_LOCKOUT_KEY)
    return " ".join(unicodedata.normalize("NFKC", kept).casefold().split())


class LdapSignIn:
    """The directory and the accounts it signs in."""

    def __init__(self, directory: LdapDirectory, engine: Engine):
        self.directory = directory
        self.engine = engine

    def sign_in(self, username: str, password: str) -> SignedIn:
        """Bind as the user, then create or update its account; :class:`DirectoryRefused` if either refuses."""
        who = self.directory.authenticate(username, password)
        try:
            return self._provision(who)
        except IntegrityError:
            # A concurrent first sign-in created the account or a group: the second attempt sees it.
            return self._provision(who)

    def _provision(self, who: DirectoryUser) -> SignedIn:
        if username_problem(who.username) is not None:
            # The entry's name attribute is the directory's to set: one mlgate cannot hold (a colon, control
            # characters, surrounding spaces) never becomes an account.
            raise DirectoryRefused(f"the directory's name {who.username!r} is not a valid mlgate account name")
        ts = now_ms()
        with self.engine.begin() as conn:
            row = conn.execute(select(users.c.id, users.c.source, users.c.disabled, users.c.kind)
                               .where(users.c.username == who.username)).first()
            if row is None:
                user_id = conn.execute(insert(users).values(
                    username=who.username, kind="user", password_hash=None, is_admin=False, disabled=False,
                    generation=1, created_at=ts, updated_at=ts, source=SOURCE).returning(users.c.id)).scalar_one()
            elif row.source != SOURCE or row.kind != "user":
                # The typed name differed from the directory's spelling of it, and that spelling is a local account.
                raise DirectoryRefused(f"the directory's name {who.username!r} is an account managed by "
                                       f"{row.source!r}, not by LDAP")
            elif row.disabled:
                raise DirectoryRefused("disabled user")
            else:
                user_id = row.id
            changed = sync_managed_groups(conn, user_id, who.groups, self.directory.managed_groups)
            if changed:
                # Cached Principals and sessions of this account carry the old groups: end them.
                conn.execute(update(users).where(users.c.id == user_id)
                             .values(updated_at=ts, generation=users.c.generation + 1))
            return SignedIn(account_row(conn, user_id), changed)
