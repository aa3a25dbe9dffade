"""Fixtures for identity tests: an Identity over a migrated database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from auth.accounts import Accounts
from auth.audit import Auditor
from auth.credential_cache import CredentialCache, Invalidation
from auth.identity import Identity
from auth.lockout import Lockout
from auth.passwords import PasswordHasher
from auth.sessions import SessionManager
from auth.store import IdentityStore
from gateway.db import upgrade_database
from policies.file.auth import load_auth_config
from tracking.db.engine import make_engine

SECRET = "s" * 48


@pytest.fixture
def engine(tmp_path: Path):
    engine = make_engine(f"sqlite:///{tmp_path / 'auth.db'}")
    upgrade_database(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def identity_factory(engine) -> Iterator[Callable[..., Identity]]:
    """Build Identities over the same database (like separate server processes)."""
    built: list[Identity] = []

    def build(config: dict | None = None, *, redis_url: str | None = None, clock=None, lockout_url="memory://"):
        cfg = load_auth_config({"passwords": {"hash_rounds": 10}, **(config or {})})
        store = IdentityStore(engine)
        cache = CredentialCache(cfg.credential_cache_seconds)
        kwargs = {"clock": clock} if clock else {}
        identity = Identity(
            config=cfg, store=store, hasher=PasswordHasher(rounds=10, min_length=cfg.passwords.min_length),
            cache=cache, invalidation=Invalidation(cache, redis_url), lockout=Lockout(cfg.lockout, lockout_url),
            sessions=SessionManager(SECRET, store, cfg.sessions, secure=True, **kwargs), auditor=Auditor(store),
            **kwargs)
        identity.invalidation.start()
        built.append(identity)
        return identity

    yield build
    for identity in built:
        identity.invalidation.stop()


@pytest.fixture
def identity(identity_factory) -> Identity:
    return identity_factory()


@pytest.fixture
def accounts(identity) -> Accounts:
    return Accounts(identity)
