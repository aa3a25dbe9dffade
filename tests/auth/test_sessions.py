"""Browser sessions: signed cookies, idle and absolute timeouts, revocation, CSRF tokens."""

import pytest

from auth.errors import Unauthenticated

PASSWORD = "plum-orchard-quartz-8"


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    import time

    return Clock(time.time())


@pytest.fixture
def manager(identity_factory, clock):
    identity = identity_factory({"sessions": {"idle_timeout_seconds": 600, "absolute_timeout_seconds": 3600}},
                                clock=clock)
    identity.store.create_user("jo", identity.hasher.hash(PASSWORD))
    return identity.sessions


def _start(manager):
    return manager.start(manager.store.user_by_name("jo"))


def test_a_started_session_resolves_to_its_user(manager):
    cookie, session_id = _start(manager)
    active = manager.resolve(cookie)
    assert active.user.username == "jo"
    assert active.session.id == session_id


def test_a_cookie_signed_with_another_secret_is_refused(manager):
    from itsdangerous import URLSafeTimedSerializer

    _, session_id = _start(manager)
    forged = URLSafeTimedSerializer("another-secret-" * 4, salt="mlgate-session").dumps(session_id)
    with pytest.raises(Unauthenticated):
        manager.resolve(forged)


def test_a_tampered_cookie_is_refused(manager):
    cookie, _ = _start(manager)
    with pytest.raises(Unauthenticated):
        manager.resolve(cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB"))


def test_idle_timeout(manager, clock):
    cookie, _ = _start(manager)
    clock.now += 500
    manager.resolve(cookie)  # activity moves the idle deadline
    clock.now += 500
    manager.resolve(cookie)
    clock.now += 601
    with pytest.raises(Unauthenticated, match="inactivity"):
        manager.resolve(cookie)


def test_absolute_timeout_despite_activity(manager, clock):
    cookie, _ = _start(manager)
    for _ in range(7):
        clock.now += 500
        manager.resolve(cookie)
    clock.now += 200
    with pytest.raises(Unauthenticated, match="expired"):
        manager.resolve(cookie)


def test_logout_and_generation_bump_end_sessions(manager):
    first, first_id = _start(manager)
    second, _ = _start(manager)
    manager.end(first_id)
    with pytest.raises(Unauthenticated):
        manager.resolve(first)
    manager.resolve(second)
    manager.store.update_user(manager.store.user_by_name("jo").id)  # e.g. a password change
    with pytest.raises(Unauthenticated):
        manager.resolve(second)


def test_csrf_tokens_are_bound_to_the_session(manager):
    _, a = _start(manager)
    _, b = _start(manager)
    assert manager.check_csrf(a, manager.csrf_token(a))
    assert not manager.check_csrf(a, manager.csrf_token(b))
    assert not manager.check_csrf(a, None)


def test_form_tokens_need_the_matching_cookie(manager):
    token = manager.new_form_token()
    assert manager.check_form_token(token, token)
    assert not manager.check_form_token(token, manager.new_form_token())
    assert not manager.check_form_token(None, token)
    assert not manager.check_form_token("forged", "forged")


def test_cookie_attributes_are_secure_by_default(manager):
    attrs = manager.cookie_attributes(60)
    assert attrs["httponly"]
    assert attrs["secure"]
    assert attrs["samesite"] == "lax"


def test_short_secrets_are_refused(manager):
    from auth.sessions import SessionManager

    with pytest.raises(ValueError, match="at least 32"):
        SessionManager("short", manager.store, manager.config, secure=True)
