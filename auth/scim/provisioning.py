"""What SCIM provisioning does to mlgate's accounts and groups (RFC 7643 resources over RFC 7644 operations).

SCIM manages only what it created: accounts with ``source = 'scim'`` and groups with a ``scim_id``. An
identity provider therefore cannot read, disable or delete a local administrator, nor take over a group an
administrator made, by naming it; a name that is taken answers 409 ``uniqueness``. Provisioned accounts are
ordinary, non-admin, passwordless users: they sign in through single sign-on (not LDAP, which signs in only
the accounts it created: docs/ldap.md), and their groups are mlgate groups, so the policy's group rules, roles
and workspaces apply to them.

Lifecycle: ``active: false`` disables the account and bumps its generation in one transaction, then every
process is told (Redis push, else the per-hit generation check): its sessions end, its tokens stop and its
cached credentials go. DELETE takes the account with everything naming it, exactly as an administrator's
delete does (:meth:`auth.accounts.Accounts.delete_account`), so a later account of the same name inherits
nothing. A userName or a group's displayName never changes in place: grants name accounts and groups by
name, and a rename would hand the old name's grants to whoever takes it next.
"""

from __future__ import annotations

import json
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Connection, and_, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from auth.accounts import Accounts, validate_username
from auth.errors import InvalidInput, NotFound
from auth.groups import bump_users, delete_group_rows
from auth.scim.protocol import (
    ENTERPRISE_USER_SCHEMA,
    GROUP_SCHEMA,
    USER_SCHEMA,
    Comparison,
    Operation,
    PatchPath,
    ScimError,
    as_bool,
    as_text,
    invalid_value,
    member_ids,
    not_found,
    parse_filter,
    parse_patch,
    parse_path,
)
from auth.store import now_ms
from auth.tables import group_members, groups, users
from policies.model import SubjectRef

SOURCE = "scim"
# An account's id as SCIM shows it: ASCII digits an INTEGER column can hold (str.isdigit() also accepts '²',
# which int() refuses, and int() accepts '1_0' and ids no column holds).
_ROW_ID = re.compile(r"[1-9][0-9]{0,17}")


def _row_id(value: object) -> int | None:
    """The account id ``value`` names, or None when it names none (so it answers as not found)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # a filter's number (id eq 5)
    return int(value) if isinstance(value, str) and _ROW_ID.fullmatch(value) else None
AUDIT_ACTOR = "scim:provisioning"  # account names cannot hold ':', so no account is mistaken for it
USER_FILTERS = frozenset({"username", "externalid", "id", "displayname"})
GROUP_FILTERS = frozenset({"displayname", "externalid", "id", "members.value"})
NAME_FIELDS = {k.lower(): k for k in ("formatted", "familyName", "givenName", "middleName", "honorificPrefix",
                                      "honorificSuffix")}
# Core User attributes mlgate does not keep (RFC 7643 section 4.1): accepted and dropped, so a provider that
# maps them is not refused; ``password`` is among them: provisioned accounts sign in through a provider.
DROPPED_USER_ATTRIBUTES = frozenset({
    "nickname", "profileurl", "title", "usertype", "preferredlanguage", "locale", "timezone", "phonenumbers",
    "ims", "photos", "addresses", "entitlements", "roles", "x509certificates", "password",
})
IGNORED_KEYS = frozenset({"schemas", "meta", "id", "groups"})
MAX_PROFILE_BYTES = 8192
MAX_MEMBERS = 10_000


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _is_dropped(attribute: str) -> bool:
    return attribute in DROPPED_USER_ATTRIBUTES or attribute.startswith(ENTERPRISE_USER_SCHEMA.lower())


@dataclass
class UserState:
    """The attributes SCIM may change on an account, edited by PATCH and PUT, then written at once."""

    user_name: str
    external_id: str | None = None
    active: bool = True
    profile: dict = field(default_factory=dict)


@dataclass
class GroupState:
    """The attributes SCIM may change on a group."""

    name: str
    external_id: str | None = None
    members: set[int] = field(default_factory=set)


def _user_name(value: object) -> str:
    name = as_text(value, "userName", required=True)
    try:
        validate_username(name)
    except InvalidInput as exc:
        raise invalid_value(f"userName: {exc.message}") from None
    return name


def _group_name(value: object) -> str:
    name = as_text(value, "displayName", required=True)
    try:
        SubjectRef.parse(f"group:{name}")
    except ValueError:
        raise invalid_value(f"displayName {name!r} cannot name an mlgate group: no spaces, ':' or control "
                            "characters") from None
    return name


def _name_object(value: object) -> dict:
    if not isinstance(value, dict):
        raise invalid_value("name must be an object")
    out = {}
    for key, part in value.items():
        canonical = NAME_FIELDS.get(str(key).lower())
        if canonical is None:
            raise ScimError(400, f"name.{str(key)[:40]} is not a sub-attribute of name", "invalidPath")
        text = as_text(part, f"name.{canonical}")
        if text is not None:
            out[canonical] = text
    return out


def _emails(value: object) -> list[dict]:
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if not isinstance(item, dict):
            raise invalid_value("each email must be an object")
        email = {"value": as_text(item.get("value"), "emails.value", max_length=320, required=True)}
        if item.get("type") is not None:
            email["type"] = as_text(item.get("type"), "emails.type", max_length=32)
        if item.get("primary") is not None:
            email["primary"] = as_bool(item.get("primary"), "emails.primary")
        out.append(email)
    return out


def _set_user_attribute(state: UserState, op: str, path: PatchPath, value: object) -> None:
    """Apply one operation to one attribute (RFC 7644 section 3.5.2.1-3)."""
    attr, sub = path.attribute, path.sub
    if attr in IGNORED_KEYS or _is_dropped(attr):
        return
    if attr == "active":
        if op == "remove":
            raise ScimError(400, "active cannot be removed.", "mutability")
        state.active = as_bool(value, "active")
    elif attr == "username":
        if op == "remove" or _user_name(value) != state.user_name:
            raise ScimError(400, "userName cannot change: grants name accounts by name. Deprovision the account "
                            "and provision a new one.", "mutability")
    elif attr == "externalid":
        state.external_id = None if op == "remove" else as_text(value, "externalId")
    elif attr == "displayname":
        state.profile.pop("displayName", None)
        if op != "remove" and as_text(value, "displayName") is not None:
            state.profile["displayName"] = as_text(value, "displayName")
    elif attr == "name":
        name = dict(state.profile.get("name") or {})
        if sub is None:
            name = {} if op == "remove" else ({**name, **_name_object(value)} if op == "add" else _name_object(value))
        else:
            canonical = NAME_FIELDS.get(sub)
            if canonical is None:
                raise ScimError(400, f"name.{sub} is not a sub-attribute of name", "invalidPath")
            name.pop(canonical, None)
            if op != "remove" and as_text(value, f"name.{canonical}") is not None:
                name[canonical] = as_text(value, f"name.{canonical}")
        state.profile["name"] = name
    elif attr == "emails":
        state.profile["emails"] = _patched_emails(list(state.profile.get("emails") or []), op, path, value)
    else:
        raise ScimError(400, f"{attr[:60]} is not an attribute of User", "invalidPath")
    if not state.profile.get("name"):
        state.profile.pop("name", None)
    if not state.profile.get("emails"):
        state.profile.pop("emails", None)


def _patched_emails(emails: list[dict], op: str, path: PatchPath, value: object) -> list[dict]:
    if path.match is None:
        if path.sub is not None:
            raise ScimError(400, "emails needs a filter to select an email, e.g. emails[type eq \"work\"].value",
                            "invalidPath")
        if op == "remove":
            return []
        return emails + _emails(value) if op == "add" else _emails(value)
    key = path.match.attribute  # type or value
    chosen = [e for e in emails if e.get(key) == path.match.value]
    rest = [e for e in emails if e.get(key) != path.match.value]
    if op == "remove":
        return rest
    if path.sub is None:
        return rest + _emails(value)
    if path.sub not in ("value", "primary"):
        raise ScimError(400, f"emails.{path.sub} is not supported", "invalidPath")
    email = dict(chosen[0]) if chosen else ({"type": path.match.value} if key == "type" else {})
    if path.sub == "value":
        email["value"] = as_text(value, "emails.value", max_length=320, required=True)
    else:
        email["primary"] = as_bool(value, "emails.primary")
    if "value" not in email:
        raise invalid_value("an email needs a value")
    return [*rest, email]


def _user_state_from_resource(body: dict, keep_name: str | None = None) -> UserState:
    """A whole User resource (POST, PUT) as the state it describes."""
    state = UserState(_user_name(body.get("userName")))
    if keep_name is not None and state.user_name != keep_name:
        raise ScimError(400, "userName cannot change: grants name accounts by name. Deprovision the account and "
                        "provision a new one.", "mutability")
    for key, value in body.items():
        if key.lower() in ("username",) or value is None:
            continue
        _set_user_attribute(state, "replace", parse_path(key, USER_SCHEMA), value)
    return state


class ScimProvisioning:
    """The SCIM operations on accounts and groups; each change is audited and reaches every process."""

    def __init__(self, accounts: Accounts, *, max_results: int = 100, clock: Callable[[], int] = now_ms):
        self.accounts = accounts
        self.max_results = max_results
        self.identity = accounts.identity
        self.engine = accounts.store.engine
        self._clock = clock

    def _audit(self, action: str, target: str, client: str | None, reason: str | None = None,
               outcome: str = "success") -> None:
        self.identity.auditor.record(action, outcome, actor=AUDIT_ACTOR, target=target, client=client, reason=reason)

    # --- users -------------------------------------------------------------------------------------
    _USER = (users.c.id, users.c.username, users.c.disabled, users.c.external_id, users.c.profile,
             users.c.created_at, users.c.updated_at, users.c.generation)

    def _user_row(self, conn: Connection, user_id: str, *, lock: bool = False):
        key = _row_id(user_id)
        if key is None:
            raise not_found("User", user_id[:64])
        stmt = select(*self._USER).where(and_(users.c.id == key, users.c.source == SOURCE))
        row = conn.execute(stmt.with_for_update() if lock else stmt).first()
        if row is None:
            raise not_found("User", user_id[:64])
        return row

    def _user_groups(self, conn: Connection, user_ids: list[int]) -> dict[int, list[tuple[str, str]]]:
        out: dict[int, list[tuple[str, str]]] = {}
        if not user_ids:
            return out
        rows = conn.execute(select(group_members.c.user_id, groups.c.scim_id, groups.c.name)
                            .join(groups, groups.c.id == group_members.c.group_id)
                            .where(and_(group_members.c.user_id.in_(user_ids), groups.c.scim_id.is_not(None)))
                            .order_by(groups.c.name))
        for r in rows:
            out.setdefault(r.user_id, []).append((r.scim_id, r.name))
        return out

    @staticmethod
    def user_json(row, member_of: list[tuple[str, str]], base: str) -> dict:
        """The User resource (RFC 7643 section 4.1) of an account row."""
        resource = {"schemas": [USER_SCHEMA], "id": str(row.id), "userName": row.username,
                    "active": not row.disabled}
        if row.external_id is not None:
            resource["externalId"] = row.external_id
        resource.update(json.loads(row.profile) if row.profile else {})
        if member_of:
            resource["groups"] = [{"value": gid, "display": name, "$ref": f"{base}/Groups/{gid}", "type": "direct"}
                                  for gid, name in member_of]
        resource["meta"] = {"resourceType": "User", "created": _iso(row.created_at),
                            "lastModified": _iso(row.updated_at), "location": f"{base}/Users/{row.id}",
                            "version": f'W/"{row.generation}"'}
        return resource

    def _user_conditions(self, comparisons: list[Comparison]):
        conditions = [users.c.source == SOURCE]
        for c in comparisons:
            if c.attribute == "username":
                # RFC 7643 section 4.1.1: userName is caseExact false.
                conditions.append(func.lower(users.c.username) == str(c.value).lower())
            elif c.attribute == "externalid":
                conditions.append(users.c.external_id == c.value if c.value is not None
                                  else users.c.external_id.is_(None))
            elif c.attribute == "id":
                conditions.append(users.c.id == (_row_id(c.value) or -1))
            elif c.attribute == "displayname":
                # Kept inside the JSON profile: compared after loading (few rows pass the other conditions).
                continue
        return and_(*conditions)

    def list_users(self, filter_text: str | None, start: int, count: int, base: str) -> tuple[int, list[dict]]:
        """(totalResults, one page of User resources), ordered by id."""
        comparisons = parse_filter(filter_text, USER_SCHEMA, USER_FILTERS) if filter_text else []
        wanted_display = [c.value for c in comparisons if c.attribute == "displayname"]
        with self.engine.connect() as conn:
            stmt = select(*self._USER).where(self._user_conditions(comparisons)).order_by(users.c.id)
            if wanted_display:
                rows = [r for r in conn.execute(stmt)
                        if all((json.loads(r.profile or "{}").get("displayName") or "").lower() == str(v).lower()
                               for v in wanted_display)]
                total, page = len(rows), rows[start - 1:start - 1 + count]
            else:
                total = conn.execute(select(func.count()).select_from(users)
                                     .where(self._user_conditions(comparisons))).scalar_one()
                page = list(conn.execute(stmt.offset(start - 1).limit(count))) if count else []
            member_of = self._user_groups(conn, [r.id for r in page])
        return total, [self.user_json(r, member_of.get(r.id, []), base) for r in page]

    def get_user(self, user_id: str, base: str) -> dict:
        """One User resource; 404 for an id SCIM does not manage."""
        with self.engine.connect() as conn:
            row = self._user_row(conn, user_id)
            return self.user_json(row, self._user_groups(conn, [row.id]).get(row.id, []), base)

    @staticmethod
    def _profile_text(profile: dict) -> str | None:
        if not profile:
            return None
        text = json.dumps(profile, separators=(",", ":"), sort_keys=True)
        if len(text.encode()) > MAX_PROFILE_BYTES:
            raise invalid_value(f"displayName, name and emails together exceed {MAX_PROFILE_BYTES} bytes")
        return text

    def create_user(self, body: dict, base: str, client: str | None) -> dict:
        """POST /Users: a new, passwordless, non-admin account managed by SCIM."""
        state = _user_state_from_resource(body)
        profile = self._profile_text(state.profile)
        ts = self._clock()
        try:
            with self.engine.begin() as conn:
                # userName is unique without regard to case (RFC 7643 section 4.1.1), across every account.
                taken = conn.execute(select(users.c.id).where(func.lower(users.c.username) == state.user_name.lower())
                                     ).first()
                if taken is not None:
                    raise ScimError(409, f"userName {state.user_name!r} is taken", "uniqueness")
                user_id = conn.execute(insert(users).values(
                    username=state.user_name, kind="user", password_hash=None, is_admin=False,
                    disabled=not state.active, generation=1, created_at=ts, updated_at=ts, source=SOURCE,
                    external_id=state.external_id, profile=profile).returning(users.c.id)).scalar_one()
        except IntegrityError:
            raise ScimError(409, f"userName {state.user_name!r} is taken", "uniqueness") from None
        self._audit("scim.user.create", state.user_name, client, None if state.active else "inactive")
        return self.get_user(str(user_id), base)

    def _write_user(self, user_id: str, edit: Callable[[UserState], None], base: str, client: str | None) -> dict:
        with self.engine.begin() as conn:
            row = self._user_row(conn, user_id, lock=True)
            state = UserState(row.username, row.external_id, not row.disabled,
                              json.loads(row.profile) if row.profile else {})
            edit(state)
            values = {"external_id": state.external_id, "profile": self._profile_text(state.profile),
                      "updated_at": self._clock()}
            status_changed = state.active == bool(row.disabled)
            if status_changed:
                # The generation ends sessions, tokens' cached logins and cached passwords on every process.
                values.update(disabled=not state.active, generation=users.c.generation + 1)
            conn.execute(update(users).where(users.c.id == row.id).values(**values))
        if status_changed:
            self.identity.user_changed(row.id)
            self._audit("scim.user.enable" if state.active else "scim.user.disable", row.username, client)
        else:
            self._audit("scim.user.update", row.username, client)
        return self.get_user(user_id, base)

    def replace_user(self, user_id: str, body: dict, base: str, client: str | None) -> dict:
        """PUT /Users/{id}: every SCIM-managed attribute as given (userName must stay the same)."""
        def edit(state: UserState) -> None:
            new = _user_state_from_resource(body, keep_name=state.user_name)
            if "active" not in {k.lower() for k in body}:
                new.active = state.active
            state.external_id, state.active, state.profile = new.external_id, new.active, new.profile
        return self._write_user(user_id, edit, base, client)

    def patch_user(self, user_id: str, body: dict, base: str, client: str | None) -> dict:
        """PATCH /Users/{id} (RFC 7644 section 3.5.2), all operations or none."""
        operations = parse_patch(body, USER_SCHEMA)

        def edit(state: UserState) -> None:
            for operation in operations:
                for op, path, value in _expanded(operation, USER_SCHEMA):
                    _set_user_attribute(state, op, path, value)
        return self._write_user(user_id, edit, base, client)

    def delete_user(self, user_id: str, client: str | None) -> None:
        """DELETE /Users/{id}: the account goes with everything naming it (as an administrator's delete)."""
        with self.engine.connect() as conn:
            row = self._user_row(conn, user_id)
        user = self.accounts.store.user_by_id(row.id)
        try:
            reason = self.accounts.delete_account(user)
        except NotFound:
            raise not_found("User", user_id) from None
        self._audit("scim.user.delete", row.username, client, reason)

    # --- groups ------------------------------------------------------------------------------------
    _GROUP = (groups.c.id, groups.c.scim_id, groups.c.name, groups.c.external_id, groups.c.created_at)

    def _group_row(self, conn: Connection, group_id: str):
        row = conn.execute(select(*self._GROUP).where(groups.c.scim_id == group_id[:64])).first()
        if row is None:
            raise not_found("Group", group_id[:64])
        return row

    def _members(self, conn: Connection, group_ids: list[int]) -> dict[int, list[tuple[int, str]]]:
        out: dict[int, list[tuple[int, str]]] = {}
        if not group_ids:
            return out
        rows = conn.execute(select(group_members.c.group_id, users.c.id, users.c.username)
                            .join(users, users.c.id == group_members.c.user_id)
                            .where(and_(group_members.c.group_id.in_(group_ids), users.c.source == SOURCE))
                            .order_by(users.c.id))
        for r in rows:
            out.setdefault(r.group_id, []).append((r.id, r.username))
        return out

    @staticmethod
    def group_json(row, members: list[tuple[int, str]] | None, base: str) -> dict:
        """The Group resource (RFC 7643 section 4.2); ``members`` None leaves them out (excludedAttributes)."""
        resource = {"schemas": [GROUP_SCHEMA], "id": row.scim_id, "displayName": row.name}
        if row.external_id is not None:
            resource["externalId"] = row.external_id
        if members is not None:
            resource["members"] = [{"value": str(uid), "display": name, "$ref": f"{base}/Users/{uid}", "type": "User"}
                                   for uid, name in members]
        resource["meta"] = {"resourceType": "Group", "created": _iso(row.created_at),
                            "lastModified": _iso(row.created_at), "location": f"{base}/Groups/{row.scim_id}"}
        return resource

    def list_groups(self, filter_text: str | None, start: int, count: int, base: str, *,
                    with_members: bool = True) -> tuple[int, list[dict]]:
        """(totalResults, one page of Group resources), ordered by name."""
        comparisons = parse_filter(filter_text, GROUP_SCHEMA, GROUP_FILTERS) if filter_text else []
        conditions = [groups.c.scim_id.is_not(None)]
        for c in comparisons:
            if c.attribute == "displayname":
                conditions.append(func.lower(groups.c.name) == str(c.value).lower())
            elif c.attribute == "externalid":
                conditions.append(groups.c.external_id == c.value)
            elif c.attribute == "id":
                conditions.append(groups.c.scim_id == str(c.value))
            elif c.attribute == "members.value":
                member = _row_id(c.value) or -1
                conditions.append(groups.c.id.in_(select(group_members.c.group_id)
                                                  .where(group_members.c.user_id == member)))
        where = and_(*conditions)
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(groups).where(where)).scalar_one()
            page = list(conn.execute(select(*self._GROUP).where(where).order_by(groups.c.name)
                                     .offset(start - 1).limit(count))) if count else []
            members = self._members(conn, [r.id for r in page]) if with_members else {}
        return total, [self.group_json(r, members.get(r.id, []) if with_members else None, base) for r in page]

    def get_group(self, group_id: str, base: str, *, with_members: bool = True) -> dict:
        """One Group resource; 404 for an id SCIM does not manage."""
        with self.engine.connect() as conn:
            row = self._group_row(conn, group_id)
            members = self._members(conn, [row.id]).get(row.id, []) if with_members else None
        return self.group_json(row, members, base)

    def _member_user_ids(self, conn: Connection, values: list[str]) -> set[int]:
        if len(values) > MAX_MEMBERS:
            raise invalid_value(f"a group holds at most {MAX_MEMBERS} members")
        wanted = {key for key in map(_row_id, values) if key is not None}
        found = set(conn.execute(select(users.c.id).where(and_(users.c.id.in_(wanted), users.c.source == SOURCE))
                                 ).scalars()) if wanted else set()
        missing = [v for v in values if _row_id(v) not in found]
        if missing:
            raise invalid_value(f"member {missing[0][:64]!r} is not a user provisioned through SCIM")
        return found

    def create_group(self, body: dict, base: str, client: str | None) -> dict:
        """POST /Groups: a new mlgate group (409 when an mlgate group of that name exists)."""
        name = _group_name(body.get("displayName"))
        external_id = as_text(body.get("externalId"), "externalId")
        scim_id = str(uuid.UUID(bytes=secrets.token_bytes(16), version=4))
        try:
            with self.engine.begin() as conn:
                if conn.execute(select(groups.c.id).where(groups.c.name == name)).first() is not None:
                    raise ScimError(409, f"group {name!r} exists", "uniqueness")
                members = self._member_user_ids(conn, member_ids(body["members"])) if body.get("members") else set()
                group_id = conn.execute(insert(groups).values(name=name, created_at=self._clock(), scim_id=scim_id,
                                                              external_id=external_id)
                                        .returning(groups.c.id)).scalar_one()
                for user_id in members:
                    conn.execute(insert(group_members).values(group_id=group_id, user_id=user_id))
                bump_users(conn, sorted(members))
        except IntegrityError:
            raise ScimError(409, f"group {name!r} exists", "uniqueness") from None
        for user_id in members:
            self.identity.user_changed(user_id)
        self._audit("scim.group.create", name, client, f"{len(members)} member(s)" if members else None)
        return self.get_group(scim_id, base)

    def _write_group(self, group_id: str, operations: list[tuple[str, PatchPath, object]], base: str,
                     client: str | None, *, replace_all: bool = False) -> dict:
        with self.engine.begin() as conn:
            row = self._group_row(conn, group_id)
            current = {uid for uid, _ in self._members(conn, [row.id]).get(row.id, [])}
            state = GroupState(row.name, row.external_id, set(current))
            for op, path, value in operations:
                self._set_group_attribute(conn, state, op, path, value)
            added, removed = state.members - current, current - state.members
            if added:
                conn.execute(insert(group_members), [{"group_id": row.id, "user_id": u} for u in sorted(added)])
            if removed:
                conn.execute(delete(group_members).where(and_(group_members.c.group_id == row.id,
                                                              group_members.c.user_id.in_(removed))))
            bump_users(conn, sorted(added | removed))
            if state.external_id != row.external_id:
                conn.execute(update(groups).where(groups.c.id == row.id).values(external_id=state.external_id))
        for user_id in sorted(added | removed):
            self.identity.user_changed(user_id)
        self._audit("scim.group.update", row.name, client, f"+{len(added)} -{len(removed)} member(s)")
        return self.get_group(group_id, base)

    def _set_group_attribute(self, conn: Connection, state: GroupState, op: str, path: PatchPath,
                             value: object) -> None:
        attr = path.attribute
        if attr in ("schemas", "meta", "id"):
            return
        if attr == "displayname":
            if op == "remove" or _group_name(value) != state.name:
                raise ScimError(400, "displayName cannot change: grants name groups by name. Create a new group "
                                "and delete this one.", "mutability")
        elif attr == "externalid":
            state.external_id = None if op == "remove" else as_text(value, "externalId")
        elif attr == "members" and path.match is not None:
            # members[value eq "id"]: Okta's and Entra's way to remove one member.
            if path.match.attribute != "value" or op != "remove" or path.sub is not None:
                raise ScimError(400, "members[...] paths are supported for remove, by value", "invalidPath")
            target = str(path.match.value)
            state.members.discard(_row_id(target) or -1)
        elif attr == "members":
            if path.sub is not None:
                raise ScimError(400, f"members.{path.sub} cannot be changed", "invalidPath")
            given = self._member_user_ids(conn, member_ids(value)) if value not in (None, []) else set()
            if op == "add":
                state.members |= given
            elif op == "remove":
                state.members = state.members - given if value not in (None, []) else set()
            else:
                state.members = given
        else:
            raise ScimError(400, f"{attr[:60]} is not an attribute of Group", "invalidPath")

    def patch_group(self, group_id: str, body: dict, base: str, client: str | None) -> dict:
        """PATCH /Groups/{id}: members, externalId (displayName only to its own value)."""
        operations = [step for operation in parse_patch(body, GROUP_SCHEMA)
                      for step in _expanded(operation, GROUP_SCHEMA)]
        return self._write_group(group_id, operations, base, client)

    def replace_group(self, group_id: str, body: dict, base: str, client: str | None) -> dict:
        """PUT /Groups/{id}: externalId and members as given."""
        steps = [("replace", PatchPath("displayname"), body.get("displayName")),
                 ("replace", PatchPath("externalid"), body.get("externalId")),
                 ("replace", PatchPath("members"), body.get("members") or [])]
        return self._write_group(group_id, steps, base, client)

    def delete_group(self, group_id: str, client: str | None) -> None:
        """DELETE /Groups/{id}: the group with its memberships, grants and roles (nothing is inherited)."""
        with self.engine.begin() as conn:
            row = self._group_row(conn, group_id)
            members = delete_group_rows(conn, row.id, row.name)
        for user_id in members:
            self.identity.user_changed(user_id)
        self.accounts.grants_changed()
        self._audit("scim.group.delete", row.name, client)


def _expanded(operation: Operation, schema: str) -> list[tuple[str, PatchPath, object]]:
    """A no-path operation (its value an object of attributes, as Okta and Entra send) as one step per key."""
    if operation.path.attribute is not None:
        return [(operation.op, operation.path, operation.value)]
    return [(operation.op, parse_path(key, schema), value) for key, value in operation.value.items()]
