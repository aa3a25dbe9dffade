"""The verified-credential cache: TTL, HMAC keys, per-user invalidation, bounded size."""

from auth.credential_cache import CredentialCache
from auth.principal import Principal


def _principal(uid: int) -> Principal:
    return Principal(id=uid, kind="user", name=f"u{uid}", is_admin=False, groups=frozenset(), auth_method="basic")


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_entries_expire_after_the_ttl():
    clock = Clock()
    cache = CredentialCache(ttl_seconds=30, clock=clock)
    key = cache.key_for("password", "alice", "secret-password")
    cache.put(key, _principal(1), generation=3)
    clock.now += 29
    assert cache.get(key).generation == 3
    clock.now += 2
    assert cache.get(key) is None


def test_keys_are_hmacs_not_the_credential():
    cache = CredentialCache(ttl_seconds=30)
    key = cache.key_for("password", "alice", "secret-password")
    assert b"secret-password" not in key
    assert len(key) == 32
    # Field boundaries matter: ("ab", "c") and ("a", "bc") are different credentials.
    assert cache.key_for("password", "ab", "c") != cache.key_for("password", "a", "bc")
    # Another process (another random key) derives a different key for the same credential.
    assert CredentialCache(ttl_seconds=30).key_for("password", "alice", "secret-password") != key


def test_drop_user_forgets_only_that_user():
    cache = CredentialCache(ttl_seconds=30)
    a, b = cache.key_for("password", "a", "1"), cache.key_for("password", "b", "2")
    cache.put(a, _principal(1), 1)
    cache.put(b, _principal(2), 1)
    cache.drop_user(1)
    assert cache.get(a) is None
    assert cache.get(b) is not None


def test_size_is_bounded_least_recently_used_first():
    cache = CredentialCache(ttl_seconds=30, max_entries=3)
    keys = [cache.key_for("password", str(i), "p") for i in range(4)]
    for i, key in enumerate(keys[:3]):
        cache.put(key, _principal(i), 1)
    cache.get(keys[0])
    cache.put(keys[3], _principal(3), 1)
    assert cache.get(keys[1]) is None
    assert all(cache.get(k) is not None for k in (keys[0], keys[2], keys[3]))


def test_zero_ttl_disables_caching():
    cache = CredentialCache(ttl_seconds=0)
    key = cache.key_for("password", "a", "b")
    cache.put(key, _principal(1), 1)
    assert cache.get(key) is None
