"""/ready while the database hangs: one check at a time, bounded, and no thread per probe.

A "hung" database here is a real TCP listener that accepts connections and never answers, as a stalled
PostgreSQL host or a black-holed proxy does: libpq waits for the server's first message.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from gateway.ops.readiness import CHECK_TIMEOUT_SECONDS, DOWN, OK, Readiness
from tests.services import SilentServer
from tracking.db.engine import POSTGRES_CONNECT_TIMEOUT_SECONDS, make_engine


def _in_threads(fn, count: int, timeout: float) -> list:
    """``fn(i)`` for i < count, 16 daemon threads at a time; fails (never hangs) if any is still blocked."""
    results: list = [None] * count
    for base in range(0, count, 16):
        threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, fn(i)), daemon=True)
                   for i in range(base, min(count, base + 16))]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        stuck = sum(thread.is_alive() for thread in threads)
        assert not stuck, f"{stuck} probes were still blocked after {timeout}s"
    return results


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def test_opening_a_postgresql_connection_gives_up_after_the_connect_timeout(silent):
    engine = make_engine(f"postgresql://postgres@127.0.0.1:{silent.port}/test", pool_timeout=1)
    outcome: list[BaseException | None] = []

    def connect() -> None:
        try:
            with engine.connect():
                outcome.append(None)
        except Exception as exc:
            outcome.append(exc)

    started = time.monotonic()
    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(POSTGRES_CONNECT_TIMEOUT_SECONDS + 20)
    elapsed = time.monotonic() - started
    engine.dispose()
    assert not thread.is_alive(), "a connection to a silent server hung past the connect timeout"
    assert len(outcome) == 1
    assert isinstance(outcome[0], Exception), outcome
    assert elapsed >= POSTGRES_CONNECT_TIMEOUT_SECONDS - 1  # it did wait for the server, as long as allowed
    assert len(silent.accepted) >= 1


def test_probes_during_a_hung_database_check_answer_at_once_and_only_one_check_runs(silent):
    engine = make_engine(f"postgresql://postgres@127.0.0.1:{silent.port}/test", pool_timeout=1)
    readiness = Readiness(engine, [])
    first: list = []
    checker = threading.Thread(target=lambda: first.append(readiness.report()), daemon=True)
    checker.start()
    deadline = time.monotonic() + 10
    while not silent.accepted:  # the first check is now waiting on the silent server
        assert time.monotonic() < deadline, "the readiness check never connected"
        time.sleep(0.01)
    try:
        # A flood of anonymous probes while the check hangs: none waits for it (no thread pile-up).
        def probe(_: int) -> tuple[float, dict[str, str]]:
            started = time.monotonic()
            report = readiness.report()
            return time.monotonic() - started, report.checks

        answers = _in_threads(probe, 64, timeout=POSTGRES_CONNECT_TIMEOUT_SECONDS + 20)
        slowest = max(elapsed for elapsed, _ in answers)
        assert slowest < 1.0, f"a probe waited {slowest:.2f}s for the running check"
        # Nothing was ever known to work, so every answer says the database is unavailable.
        assert {tuple(checks.items()) for _, checks in answers} == {(("database", DOWN),)}
        assert checker.is_alive() or first  # the one real check, still waiting or just given up
        assert len(silent.accepted) == 1  # one connection attempt, not one per probe
    finally:
        checker.join(POSTGRES_CONNECT_TIMEOUT_SECONDS + 20)
        engine.dispose()
    assert not checker.is_alive()
    assert first[0].checks == {"database": DOWN}


class _HangingEngine:
    """An engine whose connect() blocks until released (the database stalls mid-check)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.calls = 0

    def connect(self):
        self.calls += 1
        self.entered.set()
        self.release.wait(30)
        raise ConnectionError("stalled")


def test_while_a_check_hangs_probes_get_the_last_answer_then_unavailable():
    now = [100.0]
    engine = _HangingEngine()
    readiness = Readiness(engine, [], clock=lambda: now[0])
    ok_engine_calls = []

    # A first check that succeeds (on a working connection), cached for a second.
    class _Conn:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def execute(self, *args):
            ok_engine_calls.append(args)

    readiness.engine = type("E", (), {"connect": lambda self: _Conn()})()
    assert readiness.report().checks == {"database": OK}
    readiness.engine = engine
    now[0] += 1.5  # the cached answer expired: the next probe checks, and the database stalls
    checker = threading.Thread(target=readiness.report, daemon=True)
    checker.start()
    assert engine.entered.wait(10)
    try:
        assert readiness.report().checks == {"database": OK}  # the check just started: the last answer
        now[0] += CHECK_TIMEOUT_SECONDS + 0.1
        assert readiness.report().checks == {"database": DOWN}  # stuck too long: not ready
        assert engine.calls == 1
    finally:
        engine.release.set()
        checker.join(10)
    assert readiness.report().checks == {"database": DOWN}  # the stalled check's own verdict, cached
