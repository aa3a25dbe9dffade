"""Operations settings: every problem listed at once; pool and statement timeout reach PostgreSQL."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from gateway.app import create_app
from gateway.ops.scale import scale_out_warning
from gateway.settings import Settings, SettingsError
from tests.conftest import migrated
from tests.services import fresh_postgres_database


def test_every_operations_problem_is_listed_with_its_option():
    bad = Settings(log_format="xml", metrics_token="short", shutdown_timeout_seconds=-1, db_pool_size=0,
                   db_max_overflow=-1, db_pool_timeout_seconds=0, db_statement_timeout_ms=-5)
    assert bad.validate() == [
        "--log-format / MLGATE_LOG_FORMAT: must be one of text, json, got 'xml'",
        "MLGATE_METRICS_TOKEN: must be at least 32 characters (generate one with: python -c 'import secrets; "
        "print(secrets.token_urlsafe(32))')",
        "--shutdown-timeout / MLGATE_SHUTDOWN_TIMEOUT: must be 0 or more seconds, got -1",
        "--db-pool-size / MLGATE_DB_POOL_SIZE: must be at least 1, got 0",
        "--db-max-overflow / MLGATE_DB_MAX_OVERFLOW: must be 0 or more, got -1",
        "--db-pool-timeout / MLGATE_DB_POOL_TIMEOUT: must be more than 0 seconds, got 0",
        "--db-statement-timeout / MLGATE_DB_STATEMENT_TIMEOUT: must be 0 (none) or a number of milliseconds, got -5",
    ]
    with pytest.raises(SettingsError) as raised:
        create_app(bad)
    assert len(raised.value.problems) == 7


def test_the_scrape_token_never_reaches_a_repr_or_log():
    token = "t" * 40
    assert token not in repr(Settings(metrics_token=token))


def test_pool_and_statement_timeout_are_applied_on_postgresql(settings):
    with fresh_postgres_database() as uri:
        app = create_app(migrated(replace(settings, backend_store_uri=uri, db_pool_size=3, db_max_overflow=2,
                                          db_pool_timeout_seconds=4.5, db_statement_timeout_ms=300)))
        engine = app.state.tracking.engine
        try:
            assert engine.pool.size() == 3
            assert engine.pool._max_overflow == 2
            assert engine.pool._timeout == 4.5
            with engine.connect() as conn:
                assert conn.execute(text("SHOW statement_timeout")).scalar() == "300ms"
                started = time.monotonic()
                with pytest.raises(OperationalError, match="statement timeout"):
                    conn.execute(text("SELECT pg_sleep(5)"))
                assert time.monotonic() - started < 4
        finally:
            engine.dispose()


def test_no_statement_timeout_by_default(settings):
    with fresh_postgres_database() as uri:
        app = create_app(migrated(replace(settings, backend_store_uri=uri)))
        try:
            with app.state.tracking.engine.connect() as conn:
                assert conn.execute(text("SHOW statement_timeout")).scalar() == "0"
        finally:
            app.state.tracking.engine.dispose()


def test_several_workers_without_redis_name_what_weakens():
    assert scale_out_warning(Settings(workers=1)) is None
    assert scale_out_warning(Settings(workers=4, redis_url="redis://127.0.0.1:6379/0")) is None
    assert scale_out_warning(Settings(workers=4), "redis://cache:6379/0") is None
    message = scale_out_warning(Settings(workers=4), "memory://")
    assert message.startswith("--workers 4 without --redis-url: these guarantees weaken: rate limits")
    for weakened in ("rate limits", "lockout", "credential cache", "up to N times"):
        assert weakened in message


def test_a_postgresql_database_without_redis_warns_that_several_instances_weaken_guarantees():
    # Several instances on one PostgreSQL database are the scale-out shape, even with one worker each.
    for uri in ("postgresql://db.internal/mlgate", "postgresql+psycopg://db/mlgate", "postgres://db/mlgate"):
        message = scale_out_warning(Settings(workers=1, backend_store_uri=uri), "memory://")
        assert message is not None, uri
        assert message.startswith("PostgreSQL database without --redis-url: if several mlgate instances share")
        for weakened in ("rate limits", "lockout", "credential cache", "up to N times"):
            assert weakened in message
        assert "db.internal" not in message  # the URI (and any password in it) is never repeated
    postgres = Settings(workers=1, backend_store_uri="postgresql://db/mlgate")
    assert scale_out_warning(replace(postgres, redis_url="redis://127.0.0.1:6379/0")) is None
    assert scale_out_warning(postgres, "redis://cache:6379/0") is None
    assert scale_out_warning(Settings(workers=1, backend_store_uri="sqlite:///x.db"), "memory://") is None
    # Several workers on PostgreSQL: one warning, naming the workers.
    assert scale_out_warning(replace(postgres, workers=2)).startswith("--workers 2 without --redis-url")


def test_trusted_proxies_flag_overrides_the_policy_and_is_validated(app_factory):
    from starlette.testclient import TestClient

    with pytest.raises(SettingsError) as raised:
        app_factory(trusted_proxies=("10.0.0.0/8", "proxy.internal", "10.0.0.1/8"))
    assert [p for p in raised.value.problems if p.startswith("--trusted-proxies")] == [
        "--trusted-proxies: entry 1: 'proxy.internal' is not an IP address or network in CIDR notation "
        "('proxy.internal' does not appear to be an IPv4 or IPv6 network)",
        "--trusted-proxies: entry 2: '10.0.0.1/8' is not an IP address or network in CIDR notation "
        "(10.0.0.1/8 has host bits set)",
    ]
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    for proxies, hsts in ((None, False), (("127.0.0.1/32",), True)):
        app = app_factory(trusted_proxies=proxies)
        with TestClient(app, base_url="http://127.0.0.1:5000", client=("127.0.0.1", 4000)) as client:
            # HSTS only when the request came over HTTPS, which only a trusted proxy can say.
            answer = client.get("/version", headers=forwarded)
            assert ("strict-transport-security" in answer.headers) is hsts
