"""LDAP / Active Directory as a password source: search for the user as a service account, then bind as it.

One connection per sign-in (the verified-credential cache keeps these rare): open it over TLS (LDAPS, or
StartTLS before anything else is sent), bind as the service account, search the user by an escaped filter,
read its groups, then bind as the user's entry with the password given. Every way of not proving the password
(unknown user, several entries, wrong password, empty password) ends in :class:`DirectoryRefused`; a server
that cannot be asked (down, slow, TLS failure, the service account refused) in :class:`LdapUnavailable` (503),
never in a sign-in.

An unknown user costs what a wrong password costs: the same searches and a bind, against a DN that names no
entry, so the answer's timing does not tell which names the directory holds.
"""

from __future__ import annotations

import logging
import re
import secrets
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

from ldap3 import NONE, SIMPLE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPException

from auth.errors import Unavailable
from policies.file.ldap import DN_PLACEHOLDER, USERNAME_PLACEHOLDER, LdapConfig

log = logging.getLogger("mlgate.auth.ldap")
DEFAULT_PORTS = {"ldaps": 636, "ldap": 389}
# RFC 4511 section 4.1.9 result codes.
INVALID_CREDENTIALS = 49
MAX_USERNAME_LENGTH = 255
_RDN_SEPARATOR = re.compile(r"(?<!\\),")
UNAVAILABLE = "The directory (LDAP) cannot be reached; signing in with a directory account is unavailable for now."


class LdapUnavailable(Unavailable):
    """The directory did not answer as it must (down, timeout, TLS, service account refused): 503, never allow.

    ``detail`` says what failed, for the audit trail and the log; the client reads only ``message``.
    """

    def __init__(self, message: str, detail: str):
        super().__init__(message)
        self.detail = detail


class DirectoryRefused(Exception):
    """The directory does not vouch for this username and password; ``reason`` is for the audit trail only."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class DirectoryUser:
    """A user the directory vouched for: its entry, its account name there, the mlgate groups it maps to."""

    dn: str
    username: str
    groups: frozenset[str]


def escape_filter_value(value: str) -> str:
    """``value`` as an RFC 4515 assertion value: NUL, ``(``, ``)``, ``*`` and ``\\`` escaped (section 3).

    Every byte outside printable ASCII is escaped too (``\\XX`` may encode any octet), so a name can never
    carry a control character or an unexpected encoding into the filter.
    """
    out = []
    for byte in value.encode("utf-8", "surrogatepass"):
        if byte in b"\x00()*\\" or byte < 0x20 or byte >= 0x7F:
            out.append(f"\\{byte:02x}")
        else:
            out.append(chr(byte))
    return "".join(out)


def normalize_dn(dn: str) -> str:
    """A DN in one spelling for comparison: attribute types and values lower-cased, no spaces around separators.

    Split on the commas RFC 4514 section 2 separates RDNs with (an escaped ``\\,`` stays in its value).
    """
    parts = []
    for rdn in _RDN_SEPARATOR.split(dn.strip()):
        attribute, _, value = rdn.partition("=")
        parts.append(f"{attribute.strip().lower()}={value.strip().lower()}")
    return ",".join(parts)


def read_bind_password(config: LdapConfig) -> str:
    """The service account's password: the substituted ``${ENV_VAR}``, or the first line of its file."""
    if config.bind_password is not None:
        return config.bind_password.get_secret_value()
    text = config.bind_password_file.read_text(encoding="utf-8")  # type: ignore[union-attr]
    return text.splitlines()[0] if text else ""


def ldap_problems(config: LdapConfig) -> list[str]:
    """What the server must find on this machine before it starts (the policy itself is already valid)."""
    if not config.enabled:
        return []
    problems = []
    if config.ca_file is not None:
        try:
            ssl.create_default_context(cafile=str(config.ca_file))
        except (OSError, ssl.SSLError) as exc:
            problems.append(f"auth.ldap.ca_file: {config.ca_file} cannot be read as PEM CA certificates "
                            f"({type(exc).__name__})")
    if config.bind_password_file is not None:
        try:
            if not read_bind_password(config):
                problems.append(f"auth.ldap.bind_password_file: {config.bind_password_file} is empty")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"auth.ldap.bind_password_file: {config.bind_password_file} cannot be read "
                            f"({type(exc).__name__})")
    if config.bind_password is not None and not config.bind_password.get_secret_value():
        problems.append("auth.ldap.bind_password: the variable is empty (an empty password is an "
                        "unauthenticated bind)")
    return problems


class LdapDirectory:
    """Search-then-bind against one directory server, with bounded timeouts and verified TLS."""

    def __init__(self, config: LdapConfig, bind_password: str):
        if not config.enabled:
            raise ValueError("auth.ldap is not configured")
        self.config = config
        self._bind_password = bind_password
        parts = urlsplit(config.url)
        self.host = parts.hostname or ""
        tls = None
        if config.uses_tls:
            # CERT_REQUIRED against the configured CA only, and the server's name checked against its
            # certificate after the handshake (ldap3's check; RFC 4513 section 3.1.3). TLS 1.2 at least.
            tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(config.ca_file), sni=self.host,
                      ssl_options=[ssl.OP_NO_SSLv2, ssl.OP_NO_SSLv3, ssl.OP_NO_TLSv1, ssl.OP_NO_TLSv1_1])
        self.server = Server(self.host, port=parts.port or DEFAULT_PORTS[parts.scheme], use_ssl=parts.scheme == "ldaps",
                             tls=tls, get_info=NONE, connect_timeout=config.connect_timeout_seconds)
        self.group_map = {normalize_dn(dn): name for dn, name in config.group_map.items()}
        # The DN bound when the user is not found: under the search base, named so that no entry has it.
        self._nobody = f"cn=mlgate-no-such-user-{secrets.token_hex(12)},{config.user_search_base}"

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        """A connection bound as the service account, or :class:`LdapUnavailable`."""
        conn = Connection(self.server, user=self.config.bind_dn, password=self._bind_password,
                          authentication=SIMPLE, receive_timeout=self.config.receive_timeout_seconds,
                          raise_exceptions=False, auto_referrals=False, read_only=True)
        try:
            try:
                conn.open()
                if self.config.start_tls and not conn.start_tls():
                    raise self._unavailable("StartTLS refused", conn)
                if not conn.bind():
                    raise self._unavailable("the service account's bind was refused", conn)
            except LDAPException as exc:
                raise self._unavailable(f"{type(exc).__name__}", conn) from None
            yield conn
        finally:
            try:
                conn.unbind()
            except LDAPException:
                log.debug("closing the LDAP connection failed", exc_info=True)

    def _unavailable(self, what: str, conn: Connection) -> LdapUnavailable:
        # The result's description and code only: never the bind password or the user's.
        result = conn.result or {}
        detail = f"{what} (result {result.get('result')} {result.get('description')})" if result else what
        log.error("LDAP server %s unavailable: %s", self.host, detail)
        return LdapUnavailable(UNAVAILABLE, detail)

    def _search(self, conn: Connection, base: str, search_filter: str, attributes: list[str]) -> list[dict]:
        try:
            ok = conn.search(base, search_filter, search_scope=SUBTREE, attributes=attributes, size_limit=2,
                             time_limit=self.config.receive_timeout_seconds)
        except LDAPException as exc:
            raise self._unavailable(f"search failed: {type(exc).__name__}", conn) from None
        code = (conn.result or {}).get("result")
        # 0 success, 4 sizeLimitExceeded (more than one match: refused below), 32 noSuchObject under the base.
        if not ok and code not in (0, 4, 32):
            raise self._unavailable("search failed", conn)
        return [e for e in (conn.response or []) if e.get("type") == "searchResEntry"]

    def _find_user(self, conn: Connection, username: str) -> tuple[dict | None, str | None]:
        """The user's entry, or (None, why not)."""
        if len(username) > MAX_USERNAME_LENGTH:
            return None, "username too long"
        search_filter = self.config.user_filter.replace(USERNAME_PLACEHOLDER, escape_filter_value(username))
        attributes = [self.config.username_attribute]
        if self.config.group_search_base is None:
            attributes.append(self.config.member_of_attribute)
        entries = self._search(conn, self.config.user_search_base, search_filter, attributes)
        if not entries:
            return None, "unknown user"
        if len(entries) > 1:
            return None, "the filter matches several directory entries"
        return entries[0], None

    def _group_dns(self, conn: Connection, dn: str, entry: dict | None) -> list[str]:
        if self.config.group_search_base is None:
            values = (entry or {}).get("attributes", {}).get(self.config.member_of_attribute) or []
            return [str(v) for v in (values if isinstance(values, list) else [values])]
        search_filter = self.config.group_filter.replace(DN_PLACEHOLDER, escape_filter_value(dn))
        try:
            ok = conn.search(self.config.group_search_base, search_filter, search_scope=SUBTREE, attributes=[],
                             size_limit=1000, time_limit=self.config.receive_timeout_seconds)
        except LDAPException as exc:
            raise self._unavailable(f"group search failed: {type(exc).__name__}", conn) from None
        if not ok and (conn.result or {}).get("result") not in (0, 32):
            raise self._unavailable("group search failed", conn)
        return [e["dn"] for e in (conn.response or []) if e.get("type") == "searchResEntry"]

    def _bind_as(self, conn: Connection, dn: str, password: str) -> tuple[bool, str]:
        """Bind as ``dn`` with ``password`` on the open connection: (proved, the server's word)."""
        try:
            bound = conn.rebind(user=dn, password=password, authentication=SIMPLE, read_server_info=False)
        except LDAPException as exc:
            raise self._unavailable(f"user bind failed: {type(exc).__name__}", conn) from None
        result = conn.result or {}
        if bound:
            return True, "bound"
        if result.get("result") == INVALID_CREDENTIALS:
            return False, "invalid credentials"
        if result.get("result") in (51, 52, 80):  # busy, unavailable, other: the server, not the password
            raise self._unavailable("user bind failed", conn)
        return False, f"bind refused ({result.get('description')})"

    def authenticate(self, username: str, password: str) -> DirectoryUser:
        """The directory's user for this name and password, or :class:`DirectoryRefused` / :class:`LdapUnavailable`."""
        if not password:
            # RFC 4513 section 5.1.2: a name with an empty password is an unauthenticated bind, which many
            # servers answer with success. It proves nothing, so it is never sent.
            raise DirectoryRefused("empty password")
        with self._connection() as conn:
            entry, why_not = self._find_user(conn, username)
            dn = entry["dn"] if entry is not None else self._nobody
            # Read as the service account, before the user's bind (the user may not read groups), and for an
            # unknown user too, against the DN of nobody: the same work either way.
            group_dns = self._group_dns(conn, dn, entry)
            proved, word = self._bind_as(conn, dn, password)
        if entry is None:
            raise DirectoryRefused(why_not or "unknown user")
        if not proved:
            raise DirectoryRefused(f"wrong password ({word})")
        name = self._account_name(entry)
        if name is None:
            raise DirectoryRefused(f"the entry has no single {self.config.username_attribute} value")
        groups = frozenset(self.group_map[g] for g in map(normalize_dn, group_dns) if g in self.group_map)
        return DirectoryUser(entry["dn"], name, groups)

    def _account_name(self, entry: dict) -> str | None:
        # The directory's spelling, not the typed one: directories match names case-insensitively, and
        # "Alice" and "alice" must not become two mlgate accounts.
        value = entry.get("attributes", {}).get(self.config.username_attribute)
        if isinstance(value, list):
            value = value[0] if len(value) == 1 else None
        return str(value) if value else None

    @property
    def managed_groups(self) -> frozenset[str]:
        """The mlgate groups the directory decides membership of (the group map's targets)."""
        return frozenset(self.group_map.values())
