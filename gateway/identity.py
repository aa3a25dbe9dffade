"""Builds the identity layer for an app: the session secret, the backends, and the first admin."""

from __future__ import annotations

import logging
import os
import secrets
import sys
import time
from pathlib import Path

from sqlalchemy import Engine

from auth.accounts import Accounts
from auth.audit import Auditor
from auth.backends import Authenticator, BackendNotFound, backend_classes, load_backends
from auth.credential_cache import CredentialCache, Invalidation
from auth.errors import AuthError
from auth.identity import Identity
from auth.kubernetes import ServiceAccountTokens
from auth.ldap import LdapDirectory, ldap_problems, read_bind_password
from auth.ldap_accounts import LdapSignIn
from auth.lockout import DEFAULT_NAMESPACE, Lockout
from auth.passwords import PasswordHasher
from auth.sessions import MIN_SECRET_LENGTH, SessionManager
from auth.sso import SingleSignOn
from auth.store import IdentityStore
from auth.verified import VerifiedCredentials
from gateway.settings import Settings, SettingsError
from policies.file.auth import AuthConfig, AuthConfigError, load_auth_config

log = logging.getLogger("mlgate.identity")
SECRET_FILE = "mlgate-secret-key"  # noqa: S105 - a file name, not a secret
ADMIN_PASSWORD_FILE = "mlgate-admin-password"  # noqa: S105 - a file name


def auth_config_of(policy) -> AuthConfig:
    """The policy's ``auth:`` section as a validated :class:`AuthConfig`."""
    return load_auth_config(getattr(policy, "auth", None) if policy is not None else None)


def identity_problems(settings: Settings, policy) -> list[str]:
    """Every identity configuration problem, each naming its setting."""
    problems = []
    if settings.secret_key is not None and len(settings.secret_key) < MIN_SECRET_LENGTH:
        problems.append(f"MLGATE_SECRET_KEY: must be at least {MIN_SECRET_LENGTH} characters "
                        f"(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))')")
    if settings.secret_key is None and not _single_node(settings):
        problems.append("MLGATE_SECRET_KEY: required with a PostgreSQL database, where several servers may "
                        "share users and sessions; a key is generated only for a local SQLite node")
    try:
        config = auth_config_of(policy)
    except AuthConfigError as exc:
        problems.extend(exc.problems)
    else:
        problems.extend(backend_classes(config.methods)[1])  # every unknown auth.methods entry
        problems.extend(ldap_problems(config.ldap))
    return problems


def _single_node(settings: Settings) -> bool:
    # A SQLite file can only be served by processes on this machine, so a key kept next to it is shared
    # by all of them; with PostgreSQL another node would generate a different key and reject our cookies.
    return settings.backend_store_uri.startswith("sqlite:")


def _write_private(path: Path, text: str) -> bool:
    """Create ``path`` readable by the owner only; False if it already exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    return True


def session_secret(settings: Settings) -> str:
    """MLGATE_SECRET_KEY, or (local single node only) a generated key persisted 0600 in the data directory."""
    if settings.secret_key:
        return settings.secret_key
    path = Path(settings.data_dir) / SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL makes concurrent workers agree: one writes, the others read what it wrote.
    _write_private(path, secrets.token_urlsafe(48))
    for _ in range(50):
        text = path.read_text(encoding="utf-8").strip()
        if len(text) >= MIN_SECRET_LENGTH:
            return text
        time.sleep(0.02)
    raise RuntimeError(f"{path}: the stored session secret is too short; delete the file to regenerate it")


def build_identity(settings: Settings, config: AuthConfig, engine: Engine, *,
                   lockout_namespace: str = DEFAULT_NAMESPACE) -> tuple[Identity, Authenticator]:
    """Compose the identity service and the configured backends for one app (``lockout_namespace``: the
    policy's ``network.rate_limit.namespace``, so lockout keys in a shared Redis are per deployment too)."""
    store = IdentityStore(engine)
    secret = session_secret(settings)
    cache = CredentialCache(ttl_seconds=config.credential_cache_seconds)
    invalidation = Invalidation(cache, settings.redis_url)
    credentials = VerifiedCredentials(cache, invalidation, store.live_stamp)
    lockout = Lockout(config.lockout, settings.redis_url or "memory://", namespace=lockout_namespace)
    auditor = Auditor(store)
    sso = SingleSignOn(config.oidc, engine, secret, credentials=credentials, lockout=lockout, auditor=auditor,
                       groups_of=store.groups_of) if config.oidc.providers else None
    kubernetes = ServiceAccountTokens(config.kubernetes, store=store, credentials=credentials, lockout=lockout,
                                      auditor=auditor) if config.kubernetes.enabled else None
    ldap = None
    if config.ldap.enabled:
        if config.ldap.insecure:
            log.warning("auth.ldap.insecure is true: passwords travel to %s in the clear (no TLS); use ldaps:// "
                        "or start_tls outside a test setup", config.ldap.url)
        ldap = LdapSignIn(LdapDirectory(config.ldap, read_bind_password(config.ldap)), engine)
    identity = Identity(
        config=config,
        store=store,
        hasher=PasswordHasher(rounds=config.passwords.hash_rounds, min_length=config.passwords.min_length),
        cache=cache,
        invalidation=invalidation,
        lockout=lockout,
        sessions=SessionManager(secret, store, config.sessions, secure=not settings.dev_mode),
        auditor=auditor,
        sso=sso,
        kubernetes=kubernetes,
        credentials=credentials,
        ldap=ldap,
    )
    try:
        backends = load_backends(config.methods, identity)
    except BackendNotFound as exc:
        raise SettingsError([str(exc)]) from exc
    return identity, Authenticator(backends)


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


def bootstrap_admin(identity: Identity, data_dir: str, environ: dict[str, str] | None = None,
                    out=None) -> str | None:
    """On first start with no admin, create one; returns its name if created.

    The password comes from MLGATE_ADMIN_PASSWORD; without it a random one is generated and written to a 0600
    file in the data directory. It is also shown once when ``out`` (stderr) is an interactive terminal; anywhere
    else (a pipe, a file, a container or journald log) only the file's path is printed, so the password never
    lands in a log. Weak passwords are refused.
    """
    environ = os.environ if environ is None else environ
    out = out or sys.stderr
    if identity.store.has_admin():
        return None
    username = environ.get("MLGATE_ADMIN_USERNAME") or "admin"
    if identity.store.user_by_name(username) is not None:
        # The name exists but is not an enabled admin: never overwrite an account on start.
        print(f"mlgate: warning: no enabled administrator, and user {username!r} exists; enable or promote "
              f"an administrator, or start once with another MLGATE_ADMIN_USERNAME.", file=out, flush=True)
        return None
    password = environ.get("MLGATE_ADMIN_PASSWORD")
    generated = password is None
    if generated:
        password = secrets.token_urlsafe(18)
    try:
        Accounts(identity).create_user(None, username, password, client=None, is_admin=True)
    except AuthError as exc:
        if identity.store.has_admin():  # another worker won the race
            return None
        raise ValueError(f"MLGATE_ADMIN_PASSWORD / MLGATE_ADMIN_USERNAME: {exc.message}") from exc
    if generated:
        path = Path(data_dir) / ADMIN_PASSWORD_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            path.unlink()
        _write_private(path, password + "\n")
        if _is_terminal(out):
            print(f"mlgate: created administrator {username!r} with a generated password (shown once): {password}\n"
                  f"mlgate: it is also in {path} (mode 0600); change it, then delete that file.", file=out, flush=True)
        else:
            print(f"mlgate: created administrator {username!r} with a generated password, written to {path} "
                  f"(mode 0600; not printed, as this output is not a terminal); change it, then delete that file.",
                  file=out, flush=True)
    else:
        print(f"mlgate: created administrator {username!r} from MLGATE_ADMIN_PASSWORD.", file=out, flush=True)
    return username
