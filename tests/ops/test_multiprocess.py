"""Many processes, one service: two ``mlgate server`` instances on PostgreSQL + Redis, and ``--workers 2``.

Whatever a client does on one instance holds on the other: tokens, sessions and grants work everywhere,
revoking a token, signing out and granting reach the other instance within 2 seconds (each delay is
measured by polling), a revoked grant within half a second (pushed over Redis), a rate budget is one
budget, and failed logins on one instance lock the account on the other. tests/e2e/test_authz_propagation.py drives the
permission APIs with MLflow's own clients; tests/e2e/test_network_e2e.py the per-address budget on SQLite.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveServer, start_server
from tests.ops.metrics_text import value
from tests.security.test_web import login
from tests.services import REDIS_URL, fresh_postgres_database, require_redis

A = "/api/2.0/mlflow"
DEADLINE_SECONDS = 2.0
PASSWORD = "Many-Proc-Pw-" + secrets.token_urlsafe(12)
PER_PRINCIPAL = 40
METRICS_TOKEN = secrets.token_urlsafe(32)


@dataclass
class Pair:
    """Instances A and B over one database and one Redis, and an admin client for each."""

    a: LiveServer
    b: LiveServer
    admin_a: httpx.Client
    admin_b: httpx.Client
    namespace: str


def _redis_keys_cleanup(namespace: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"*{namespace}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def _policy(path: Path, namespace: str) -> Path:
    path.write_text(f"network:\n  rate_limit:\n    per_principal: {PER_PRINCIPAL}/minute\n"
                    f"    namespace: {namespace}\n")
    return path


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> Iterator[Pair]:
    require_redis()
    workdir: Path = tmp_path_factory.mktemp("multiprocess")
    namespace = f"mp-{uuid.uuid4().hex[:10]}"
    policy = _policy(workdir / "policy.yaml", namespace)
    args = ("--redis-url", REDIS_URL, "--policy", str(policy))
    with fresh_postgres_database() as uri:
        a = start_server(workdir / "a", uri, *args)
        b = None
        try:
            b = start_server(workdir / "b", uri, *args)
            with httpx.Client(base_url=a.url, auth=a.admin_auth, timeout=30) as admin_a, \
                    httpx.Client(base_url=b.url, auth=b.admin_auth, timeout=30) as admin_b:
                yield Pair(a, b, admin_a, admin_b, namespace)
        finally:
            if b is not None:
                b.stop()
            a.stop()
            _redis_keys_cleanup(namespace)


def _user(admin: httpx.Client, name: str) -> tuple[str, str]:
    made = admin.post(f"{A}/users/create", json={"username": name, "password": PASSWORD})
    assert made.status_code == 200, made.text
    return (name, PASSWORD)


def _within_deadline(what: str, condition: Callable[[], bool]) -> float:
    """Poll ``condition`` until true; fail unless that happened within DEADLINE_SECONDS. Returns the delay."""
    started = time.monotonic()
    while True:
        if condition():
            elapsed = time.monotonic() - started
            assert elapsed <= DEADLINE_SECONDS, f"{what}: took {elapsed:.2f}s"
            return elapsed
        if time.monotonic() - started > DEADLINE_SECONDS + 3:
            pytest.fail(f"{what}: not seen within {DEADLINE_SECONDS}s")
        time.sleep(0.05)


def test_a_token_made_on_a_works_on_b_and_its_revocation_reaches_b(pair: Pair):
    carol = _user(pair.admin_a, "carol")
    created = pair.admin_a.post(f"{A}/users/tokens/create", json={"name": "ci", "expires_in_days": 1},
                                auth=carol)
    assert created.status_code == 200, created.text
    token, token_id = created.json()["token"], created.json()["token_info"]["id"]
    bearer = {"Authorization": f"Bearer {token}"}
    on_b = httpx.get(f"{pair.b.url}{A}/users/current", headers=bearer, timeout=30)
    assert on_b.status_code == 200, on_b.text
    assert on_b.json()["user"]["username"] == "carol"
    revoked = pair.admin_a.post(f"{A}/users/tokens/revoke", json={"token_id": token_id}, auth=carol)
    assert revoked.status_code == 200, revoked.text
    _within_deadline("token revoked on A refused on B", lambda: httpx.get(
        f"{pair.b.url}{A}/users/current", headers=bearer, timeout=30).status_code == 401)


def test_a_session_from_a_works_on_b_and_signing_out_on_a_ends_it_on_b(pair: Pair):
    _user(pair.admin_a, "dave")
    session, csrf = login(pair.a, "dave", PASSWORD)
    cookie = {"Cookie": f"mlgate_session={session}"}
    on_b = httpx.get(f"{pair.b.url}{A}/users/current", headers=cookie, timeout=30)
    assert on_b.status_code == 200, on_b.text
    assert on_b.json()["user"]["username"] == "dave"
    out = httpx.post(f"{pair.a.url}/logout", data={"csrf_token": csrf}, headers=cookie, timeout=30)
    assert out.status_code in (200, 303), out.text
    _within_deadline("sign-out on A ends the session on B", lambda: httpx.get(
        f"{pair.b.url}{A}/users/current", headers=cookie, timeout=30).status_code == 401)


def test_a_permission_granted_on_b_is_honoured_on_a(pair: Pair):
    erin = _user(pair.admin_a, "erin")
    exp = pair.admin_a.post(f"{A}/experiments/create", json={"name": f"mp-{uuid.uuid4().hex[:6]}"})
    experiment_id = exp.json()["experiment_id"]

    def erin_reads_on_a() -> int:
        return httpx.get(f"{pair.a.url}{A}/experiments/get", params={"experiment_id": experiment_id},
                         auth=erin, timeout=30).status_code

    assert erin_reads_on_a() == 404  # hidden, and A's policy is now cached
    granted = pair.admin_b.post(f"{A}/experiments/permissions/create", json={
        "experiment_id": experiment_id, "username": "erin", "permission": "READ"})
    assert granted.status_code == 200, granted.text
    _within_deadline("grant on B honoured on A", lambda: erin_reads_on_a() == 200)
    logged = httpx.post(f"{pair.a.url}{A}/runs/create", json={"experiment_id": experiment_id}, auth=erin,
                        timeout=30)
    assert logged.status_code == 403  # READ only: the grant is exactly what B stored


# With Redis a grant change is pushed to every process: far sooner than the 1 s policy polling interval.
PUSH_DEADLINE_SECONDS = 0.5


def test_a_permission_revoked_on_a_is_enforced_on_b_at_once(pair: Pair):
    ivan = _user(pair.admin_a, "ivan")
    exp = pair.admin_a.post(f"{A}/experiments/create", json={"name": f"mp-{uuid.uuid4().hex[:6]}"})
    experiment_id = exp.json()["experiment_id"]
    grant = {"experiment_id": experiment_id, "username": "ivan"}
    granted = pair.admin_a.post(f"{A}/experiments/permissions/create", json={**grant, "permission": "READ"})
    assert granted.status_code == 200, granted.text
    with httpx.Client(auth=ivan, timeout=30) as http:
        def ivan_reads_on_b() -> int:
            return http.get(f"{pair.b.url}{A}/experiments/get", params={"experiment_id": experiment_id}).status_code

        _within_deadline("grant on A honoured on B", lambda: ivan_reads_on_b() == 200)
        # This read makes B check the policy generation now: polling alone would not look again for 1 s.
        assert ivan_reads_on_b() == 200
        revoked = pair.admin_a.post(f"{A}/experiments/permissions/delete", json=grant)
        assert revoked.status_code == 200, revoked.text
        answered = time.monotonic()
        statuses = []
        while time.monotonic() - answered < PUSH_DEADLINE_SECONDS and 404 not in statuses:
            statuses.append(ivan_reads_on_b())
            time.sleep(0.03)  # ivan's rate budget (PER_PRINCIPAL a minute) is shared by both instances
        elapsed = time.monotonic() - answered
    assert statuses[-1] == 404, (f"the revocation on A was not enforced on B within {PUSH_DEADLINE_SECONDS}s "
                                 f"of A's answer ({elapsed:.2f}s, {statuses})")


def test_an_account_deleted_on_a_takes_its_grants_with_it_on_b_at_once(pair: Pair):
    # Issue #18, finding 2, across instances with Redis: the deletion's grant removal is pushed, so a new
    # account of the same name made on B right away inherits nothing there, and the old login is refused.
    olga = _user(pair.admin_a, "olga")
    exp = httpx.post(f"{pair.a.url}{A}/experiments/create", json={"name": f"olga-{uuid.uuid4().hex[:6]}"},
                     auth=olga, timeout=30)
    assert exp.status_code == 200, exp.text
    experiment_id = exp.json()["experiment_id"]
    read = {"experiment_id": experiment_id}
    assert httpx.get(f"{pair.b.url}{A}/experiments/get", params=read, auth=olga, timeout=30).status_code == 200
    gone = pair.admin_a.request("DELETE", f"{A}/users/delete", params={"username": "olga"})
    assert gone.status_code == 200, gone.text
    answered = time.monotonic()
    again = ("olga", PASSWORD + "-new")
    made = pair.admin_b.post(f"{A}/users/create", json={"username": "olga", "password": again[1]})
    assert made.status_code == 200, made.text
    got = httpx.get(f"{pair.b.url}{A}/experiments/get", params=read, auth=again, timeout=30)
    assert got.status_code == 404, f"{got.text} ({time.monotonic() - answered:.2f}s after the deletion)"
    assert httpx.get(f"{pair.b.url}{A}/users/current", auth=olga, timeout=30).status_code == 401


def test_a_rate_budget_is_shared_by_both_instances(pair: Pair):
    frank = _user(pair.admin_a, "frank")
    with httpx.Client(auth=frank, timeout=30) as http:
        # Authenticating costs one bcrypt per process; afterwards each request is one hit of frank's budget.
        on_a = [http.get(f"{pair.a.url}{A}/users/current").status_code for _ in range(PER_PRINCIPAL // 2)]
        assert on_a == [200] * (PER_PRINCIPAL // 2)
        on_b = [http.get(f"{pair.b.url}{A}/users/current").status_code for _ in range(PER_PRINCIPAL // 2 + 3)]
    # B had only the half A left: 20 more, then refusals, although B alone never saw 40 requests.
    assert on_b == [200] * (PER_PRINCIPAL // 2) + [429] * 3
    refused = httpx.get(f"{pair.a.url}{A}/users/current", auth=frank, timeout=30)
    assert refused.status_code == 429
    assert refused.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"


def test_failed_logins_on_a_lock_the_account_on_b(pair: Pair):
    # The lockout counters live in Redis, under this deployment's namespace: B knows what A counted.
    name, password = _user(pair.admin_a, "hank")
    wrong = (name, password + "-wrong")
    for _ in range(5):  # the default limit: 5 failures per user name
        assert httpx.get(f"{pair.a.url}{A}/users/current", auth=wrong, timeout=30).status_code == 401
    on_b = httpx.get(f"{pair.b.url}{A}/users/current", auth=(name, password), timeout=30)
    assert on_b.status_code == 429, on_b.text  # locked, although B never saw a failure (and the password is right)
    assert on_b.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    assert 1 <= int(on_b.headers["Retry-After"]) <= 30
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = [k.decode() for k in client.scan_iter(match="*mlgate-lockout*")]
    finally:
        client.close()
    ours = [k for k in keys if f"mlgate-lockout:{pair.namespace}:" in k]
    assert len(ours) >= 2, keys  # the user's failure count and its lock, in this deployment's namespace


def test_two_workers_on_one_port_share_revocation_and_report_one_set_of_metrics(tmp_path: Path):
    require_redis()
    namespace = f"mpw-{uuid.uuid4().hex[:10]}"
    policy = _policy(tmp_path / "policy.yaml", namespace)
    with fresh_postgres_database() as uri:
        server = start_server(tmp_path / "w", uri, "--workers", "2", "--redis-url", REDIS_URL, "--policy",
                              str(policy), "--log-format", "json", env={"MLGATE_METRICS_TOKEN": METRICS_TOKEN})
        try:
            with httpx.Client(base_url=server.url, auth=server.admin_auth, timeout=30) as admin:
                gina = _user(admin, "gina")
                made = admin.post(f"{A}/users/tokens/create", json={"name": "w", "expires_in_days": 1}, auth=gina)
                token, token_id = made.json()["token"], made.json()["token_info"]["id"]
            bearer = {"Authorization": f"Bearer {token}"}

            def version(_: int) -> int:
                # A new connection each time, so the kernel hands requests to either worker.
                return httpx.get(f"{server.url}/version", timeout=30).status_code

            with ThreadPoolExecutor(8) as pool:
                assert list(pool.map(version, range(30))) == [200] * 30
            with ThreadPoolExecutor(4) as pool:
                assert set(pool.map(lambda _: httpx.get(f"{server.url}{A}/users/current", headers=bearer,
                                                        timeout=30).status_code, range(8))) == {200}
            httpx.post(f"{server.url}{A}/users/tokens/revoke", json={"token_id": token_id}, auth=gina, timeout=30)

            def refused_everywhere() -> bool:
                with ThreadPoolExecutor(4) as pool:
                    return set(pool.map(lambda _: httpx.get(f"{server.url}{A}/users/current", headers=bearer,
                                                            timeout=30).status_code, range(6))) == {401}

            _within_deadline("revocation on one worker reaches the other", refused_everywhere)
            scrape = {"Authorization": f"Bearer {METRICS_TOKEN}"}
            texts = [httpx.get(f"{server.url}/metrics", headers=scrape, timeout=30).text for _ in range(4)]
        finally:
            server.stop()
            _redis_keys_cleanup(namespace)
    pids = {json.loads(line)["process"] for line in server.log().splitlines()
            if line.startswith("{") and '"mlgate.access"' in line and '"ops.version"' in line}
    assert len(pids) == 2, f"both workers should have served /version: {pids}"
    # Whichever worker answers the scrape, it reports both workers' requests.
    for text in texts:
        assert value(text, "mlgate_http_requests_total", operation="ops.version", status="200") == 30
    # With Redis configured, there is nothing to warn about.
    assert "without --redis-url" not in server.log()


def _redis_warning(workdir: Path, uri: str, *args: str) -> str:
    """Start a server without Redis, wait until it is ready, stop it: its one warning about that."""
    server = start_server(workdir, uri, *args)
    try:
        assert httpx.get(f"{server.url}/ready", timeout=30).status_code == 200
    finally:
        server.stop()
    warnings = [line for line in server.log().splitlines() if "without --redis-url" in line]
    assert len(warnings) == 1, server.log()
    for weakened in ("rate limits", "lockout", "credential cache"):
        assert weakened in warnings[0]
    return warnings[0]


def test_several_workers_without_redis_warn_once_naming_what_weakens(tmp_path: Path):
    _redis_warning(tmp_path / "w", f"sqlite:///{tmp_path / 'db.sqlite'}", "--workers", "2")


def test_an_instance_on_postgresql_without_redis_warns_once_naming_what_weakens(tmp_path: Path):
    # One worker, but PostgreSQL is shared by design: other instances may run on the same database.
    with fresh_postgres_database() as uri:
        warning = _redis_warning(tmp_path / "pg", uri)
    assert "several mlgate instances share this database" in warning
    assert uri.rsplit("/", 1)[1] not in warning  # no database name, host or password in the warning


# Cheap hashing (two cores shared with other tests), and room for the refusals these tests make on purpose
# (else the address is locked out: 429, not 401).
CHEAP_LOGINS = ("auth:\n  passwords:\n    hash_rounds: 10\n"
                "  lockout:\n    user_max_failures: 500\n    address_max_failures: 5000\n")


def _served_by(server: LiveServer, prefix: str) -> dict[str, tuple[int, int]]:
    """Request id -> (worker pid, status) of the logged requests whose id starts with ``prefix``."""
    served = {}
    for line in server.log().splitlines():
        if line.startswith("{") and '"mlgate.access"' in line and prefix in line:
            record = json.loads(line)
            if str(record.get("request_id", "")).startswith(prefix):
                served[record["request_id"]] = (record["process"], record["status"])
    return served


def test_a_deleted_accounts_cached_login_is_refused_on_every_worker_when_a_new_account_gets_its_id(
        tmp_path: Path):
    # Issue #18, finding 4. Two workers on SQLite without Redis: each worker caches a verified password and
    # checks the account's row at most once a second. On main, deleting the newest account handed its id
    # to the next one (same generation 1), so the worker that had cached the deleted administrator's
    # password went on accepting it, admin flag included, for the cache lifetime (60 s).
    policy = tmp_path / "policy.yaml"
    policy.write_text(CHEAP_LOGINS)
    server = start_server(tmp_path / "w", f"sqlite:///{tmp_path / 'db.sqlite'}", "--workers", "2",
                          "--log-format", "json", "--policy", str(policy))
    try:
        with httpx.Client(base_url=server.url, auth=server.admin_auth, timeout=30) as admin:
            made = admin.post(f"{A}/users/create", json={"username": "mallory", "password": PASSWORD,
                                                         "is_admin": True})
            assert made.status_code == 200, made.text
            old_id = made.json()["user"]["id"]
        mallory = ("mallory", PASSWORD)

        def call(tag: str, path: str = f"{A}/users/current") -> Callable[[int], int]:
            def once(i: int) -> int:
                # A new connection each time, so the kernel hands requests to either worker.
                return httpx.get(f"{server.url}{path}", auth=mallory, headers={"X-Request-ID": f"{tag}-{i}"},
                                 timeout=30).status_code
            return once

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(call("cache"), range(24))) == {200}
        assert len({pid for pid, _ in _served_by(server, "cache-").values()}) == 2, "both workers must cache it"

        with httpx.Client(base_url=server.url, auth=server.admin_auth, timeout=30) as admin:
            gone = admin.request("DELETE", f"{A}/users/delete", params={"username": "mallory"})
            assert gone.status_code == 200, gone.text
            newcomer = admin.post(f"{A}/users/create", json={"username": "newcomer", "password": PASSWORD + "x"})
            assert newcomer.status_code == 200, newcomer.text
        assert newcomer.json()["user"]["id"] > old_id  # ids are never handed out again
        time.sleep(1.2)  # a worker re-reads a cached account's row at most once a second
        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(call("after"), range(24))) == {401}
            assert set(pool.map(call("admin", f"{A}/users/list"), range(12))) == {401}
        after = _served_by(server, "after-")
        assert len({pid for pid, _ in after.values()}) == 2, "both workers must have answered"
        assert {status for _, status in after.values()} == {401}
    finally:
        server.stop()


def test_deleting_a_group_and_disabling_an_account_reach_every_worker_without_redis(tmp_path: Path):
    # The other account lifecycle events, on the same two workers without Redis: a group deleted and made
    # again has no members and no grants on either worker, and a disabled account is refused on both.
    policy = tmp_path / "policy.yaml"
    policy.write_text(CHEAP_LOGINS)
    server = start_server(tmp_path / "w", f"sqlite:///{tmp_path / 'db.sqlite'}", "--workers", "2",
                          "--log-format", "json", "--policy", str(policy))
    G = "/api/2.0/mlgate"
    try:
        with httpx.Client(base_url=server.url, auth=server.admin_auth, timeout=30) as admin:
            gil, dot = _user(admin, "gil"), _user(admin, "dot")
            experiment = admin.post(f"{A}/experiments/create", json={"name": "team-only"}).json()["experiment_id"]
            for path, body in ((f"{G}/groups/create", {"name": "team"}),
                               (f"{G}/groups/add-member", {"group": "team", "username": "gil"}),
                               (f"{G}/grants/put", {"subject": "group:team", "resource": f"experiment:{experiment}",
                                                    "permission": "READ"})):
                assert admin.post(path, json=body).status_code == 200

        def statuses(auth: tuple[str, str], path: str, tag: str, count: int = 12) -> set[int]:
            def once(i: int) -> int:
                return httpx.get(f"{server.url}{path}", auth=auth, headers={"X-Request-ID": f"{tag}-{i}"},
                                 timeout=30).status_code
            with ThreadPoolExecutor(6) as pool:
                return set(pool.map(once, range(count)))

        read = f"{A}/experiments/get?experiment_id={experiment}"
        assert statuses(gil, read, "gil-before", 24) == {200}
        assert statuses(dot, f"{A}/users/current", "dot-before", 24) == {200}
        for tag in ("gil-before-", "dot-before-"):
            assert len({pid for pid, _ in _served_by(server, tag).values()}) == 2, tag

        with httpx.Client(base_url=server.url, auth=server.admin_auth, timeout=30) as admin:
            assert admin.post(f"{G}/groups/delete", json={"name": "team"}).status_code == 200
            assert admin.post(f"{G}/groups/create", json={"name": "team"}).status_code == 200
            assert admin.patch(f"{A}/users/update-disabled", json={"username": "dot", "disabled": True}
                               ).status_code == 200
        # Each worker re-reads generations at most once a second (REFRESH_SECONDS, GENERATION_CHECK_SECONDS):
        # after that, both answer as the database says. (Refused logins cost a hash each, so the requests
        # themselves are not timed.)
        time.sleep(1.2)
        assert statuses(gil, read, "gil-after", 24) == {404}
        assert statuses(dot, f"{A}/users/current", "dot-after", 24) == {401}
        assert len({pid for pid, _ in _served_by(server, "gil-after-").values()}) == 2
        assert len({pid for pid, _ in _served_by(server, "dot-after-").values()}) == 2
    finally:
        server.stop()
