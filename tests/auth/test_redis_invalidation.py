"""With Redis, a change on one process drops cached credentials on the others by pub/sub."""

import select
import socket
import threading
import time

import pytest

from auth.accounts import Accounts
from auth.errors import Unauthenticated
from auth.principal import Principal
from tests.services import REDIS_URL, require_redis

PASSWORD = "violet-harbor-engine-3"
ADMIN = Principal(id=0, kind="user", name="root-test", is_admin=True, groups=frozenset(), auth_method="basic")


def test_pubsub_drops_the_entry_and_skips_the_database_check(identity_factory):
    require_redis()
    process_a = identity_factory(redis_url=REDIS_URL)
    process_b = identity_factory(redis_url=REDIS_URL)
    assert process_a.invalidation.push_enabled
    assert process_b.invalidation.push_enabled
    Accounts(process_a).create_user(ADMIN, "ivy", PASSWORD, client=None)
    process_b.password_login("ivy", PASSWORD, None)
    key = process_b.cache.key_for("password", "basic", "ivy", PASSWORD)
    assert process_b.cache.get(key) is not None
    Accounts(process_a).change_password(ADMIN, "ivy", "another-secret-value-4", None, client=None)
    deadline = time.monotonic() + 2
    while process_b.cache.get(key) is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process_b.cache.get(key) is None, "the pub/sub invalidation did not arrive within 2 s"
    with pytest.raises(Unauthenticated):
        process_b.password_login("ivy", PASSWORD, None)


@pytest.mark.parametrize("changed_on", ["another process", "the same process"])
def test_an_invalidation_arriving_during_the_password_check_keeps_the_old_password_out_of_the_cache(
        identity_factory, changed_on):
    # Process B reads ivy's row, then spends a few hundred milliseconds on the hash. If the password
    # changes in that window, the invalidation reaches B before B caches the login: B must not cache the
    # credential it checked against the old row, or (with Redis healthy, so no database check on hits)
    # the old password would keep working on B for the whole cache lifetime.
    require_redis()
    process_a = identity_factory(redis_url=REDIS_URL)
    process_b = identity_factory(redis_url=REDIS_URL)
    assert process_b.invalidation.push_enabled
    changer = process_a if changed_on == "another process" else process_b
    Accounts(process_a).create_user(ADMIN, "ivy", PASSWORD, client=None)
    user_id = process_a.store.user_by_name("ivy").id

    dropped = threading.Event()
    drop_user = process_b.cache.drop_user

    def observed_drop(uid: int) -> None:
        drop_user(uid)
        if uid == user_id:
            dropped.set()

    process_b.cache.drop_user = observed_drop
    verify = process_b.hasher.verify
    hooked = []

    def verify_while_the_password_changes(password, stored):
        if not hooked:  # once: B has read the old row and is checking the old password against it
            hooked.append(True)
            Accounts(changer).change_password(ADMIN, "ivy", "another-secret-value-4", None, client=None)
            assert dropped.wait(5), "the invalidation never reached process B"
        return verify(password, stored)

    process_b.hasher.verify = verify_while_the_password_changes
    process_b.password_login("ivy", PASSWORD, None)  # began before the change: it may succeed, once
    assert hooked
    key = process_b.cache.key_for("password", "basic", "ivy", PASSWORD)
    assert process_b.cache.get(key) is None, "the login checked against the old row was cached"
    with pytest.raises(Unauthenticated):
        process_b.password_login("ivy", PASSWORD, None)
    assert process_b.password_login("ivy", "another-secret-value-4", None).name == "ivy"


def test_a_grant_change_published_by_one_process_reaches_the_others_listeners(identity_factory):
    require_redis()
    process_a = identity_factory(redis_url=REDIS_URL)
    process_b = identity_factory(redis_url=REDIS_URL)
    heard = threading.Event()
    process_b.invalidation.on_grants_changed(heard.set)
    key = process_b.cache.key_for("password", "basic", "nobody", "x")
    process_b.cache.put(key, ADMIN, 1)
    process_a.invalidation.publish_grants()
    assert heard.wait(2), "the grant invalidation did not arrive within 2 s"
    assert process_b.cache.get(key) is not None  # a grant change drops no credential


class FreezableProxy:
    """A TCP proxy to the test Redis that can stop forwarding without closing anything (a stalled link)."""

    def __init__(self) -> None:
        host, port = REDIS_URL.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
        self.upstream = (host, int(port))
        self.frozen = threading.Event()
        self.closed = threading.Event()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listener.settimeout(0.1)
        self.url = f"redis://127.0.0.1:{self.listener.getsockname()[1]}/0"
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                continue
            upstream = socket.create_connection(self.upstream)
            self.sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        while not self.closed.is_set():
            if self.frozen.is_set():
                time.sleep(0.02)  # bytes wait in the kernel's buffers: nothing is closed or refused
                continue
            try:
                ready, _, _ = select.select([source], [], [], 0.05)
                if not ready:
                    continue
                data = source.recv(65536)
                if not data:
                    break
                target.sendall(data)
            except OSError:
                break
        for sock in (source, target):
            try:
                sock.close()
            except OSError:
                pass

    def close(self) -> None:
        self.closed.set()
        self.listener.close()
        for sock in self.sockets:
            try:
                sock.close()
            except OSError:
                pass


def _eventually(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_a_stalled_redis_link_stops_trusting_pushes_so_a_missed_change_still_counts(identity_factory):
    # Process B's link to Redis stalls without closing (a hung Redis, a half-open connection): no error
    # ever arrives, and the pushes A sends never reach B. B must notice by itself, fall back to the
    # database check, and so refuse a password A changed meanwhile; afterwards it resubscribes.
    require_redis()
    proxy = FreezableProxy()
    try:
        process_a = identity_factory(redis_url=REDIS_URL)
        process_b = identity_factory(redis_url=proxy.url)
        assert _eventually(lambda: process_b.invalidation.push_enabled, 5)
        Accounts(process_a).create_user(ADMIN, "ivy", PASSWORD, client=None)
        process_b.password_login("ivy", PASSWORD, None)  # cached on B
        proxy.frozen.set()
        started = time.monotonic()
        assert _eventually(lambda: not process_b.invalidation.push_enabled, 6), \
            "B kept trusting a Redis link that stopped answering"
        noticed = time.monotonic() - started
        Accounts(process_a).change_password(ADMIN, "ivy", "another-secret-value-4", None, client=None)
        with pytest.raises(Unauthenticated):  # the push was lost, the database check was not
            process_b.password_login("ivy", PASSWORD, None)
        proxy.frozen.clear()
        assert _eventually(lambda: process_b.invalidation.push_enabled, 15), "B did not resubscribe"
        assert process_b.password_login("ivy", "another-secret-value-4", None).name == "ivy"
    finally:
        proxy.close()
    assert noticed < 6
