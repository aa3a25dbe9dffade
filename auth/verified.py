"""Verified credentials answered from the cache, each still confirmed against its account.

Shared by password and token logins (:mod:`auth.identity`) and provider-issued JWTs (:mod:`auth.sso`),
so a credential of any kind is trusted from the cache only while its account is unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from auth.credential_cache import CredentialCache, Invalidation
from auth.principal import Principal
from auth.store import AccountStamp

# Without pushed invalidations (Redis), a cached credential's user generation is re-read at most this
# often: a password change, disable or group change made by another process counts within it.
GENERATION_CHECK_SECONDS = 1.0


class VerifiedCredentials:
    """The verified-credential cache, with the cross-process check that makes a hit trustworthy."""

    def __init__(self, cache: CredentialCache, invalidation: Invalidation,
                 live_stamp: Callable[[int], AccountStamp | None], clock: Callable[[], float] = time.time):
        self.cache = cache
        self.invalidation = invalidation
        self.live_stamp = live_stamp
        self.clock = clock
        # user id -> (the account's stamp, when it was last read from the database), for hits without Redis.
        self._generations_seen: dict[int, tuple[AccountStamp, float]] = {}

    def principal(self, key: bytes) -> Principal | None:
        """The cached Principal for ``key`` if its credential and account are still valid, else None."""
        entry = self.cache.get(key)
        if entry is None:
            return None
        if entry.token_expires_at is not None:
            if entry.token_expires_at <= self.clock() * 1000:
                self.cache.discard(key)
                return None
            return entry.principal
        if self.invalidation.push_enabled:
            return entry.principal
        user_id = entry.principal.id
        now = self.clock()
        seen = self._generations_seen.get(user_id)
        if seen is not None and seen[0] == entry.generation and 0 <= now - seen[1] < GENERATION_CHECK_SECONDS:
            return entry.principal
        # The cheap cross-process check: one primary-key read instead of a password hash. The whole stamp
        # (generation, name, creation time) must match, so a new account that got a deleted account's id
        # (a database that reused ids) never passes for the deleted one.
        live = self.live_stamp(user_id)
        if live == entry.generation:
            if len(self._generations_seen) >= self.cache.max_entries:
                self._generations_seen.clear()
            self._generations_seen[user_id] = (live, now)
            return entry.principal
        self._generations_seen.pop(user_id, None)
        self.cache.discard(key)
        return None

    def forget_user(self, user_id: int) -> None:
        """This process changed the account: its next cached hit reads the stamp again."""
        self._generations_seen.pop(user_id, None)
