"""Governance against real servers (issue #25): scoped tokens with the real mlflow client as an ordinary user,
a client network checked through a trusted proxy's X-Forwarded-For, a grant expiring mid-session on two server
processes, break-glass access, and an audit log altered by direct SQL caught by ``mlgate audit verify``."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.cli.conftest import Mlgate
from tests.conftest import BACKENDS, LiveServer, start_server
from tests.services import fresh_postgres_database

A = "/api/2.0/mlflow"
M = "/api/2.0/mlgate"
ALICE = "alice-gov"
ALICE_PASSWORD = "alice-" + secrets.token_urlsafe(18)


@dataclass
class Pair:
    """Two server processes on one database, the database's URI, and the CLI signed in as alice."""

    first: LiveServer
    second: LiveServer
    uri: str
    alice_cli: Mlgate
    admin_cli: Mlgate


def _start_pair(workdir: Path, uri: str) -> tuple[LiveServer, LiveServer]:
    policy = workdir / "policy.yaml"
    workdir.mkdir(parents=True, exist_ok=True)
    # The test itself is the trusted proxy: its X-Forwarded-For names the client the token's networks see.
    policy.write_text(
        "network:\n  trusted_proxies: [127.0.0.1/32]\n"
        "access:\n  conditions:\n"
        "    - {resource: 'model-name:*', alias: champion, permission: EDIT, only: [group:ml-ops]}\n")
    first = start_server(workdir / "a", uri, "--policy", str(policy))
    second = start_server(workdir / "b", uri, "--policy", str(policy))
    return first, second


@pytest.fixture(scope="module", params=BACKENDS)
def pair(request, tmp_path_factory) -> Iterator[Pair]:
    workdir = tmp_path_factory.mktemp(f"gov-{request.param}")
    if request.param == "postgresql":
        with fresh_postgres_database() as uri:
            yield from _pair(workdir, uri)
    else:
        yield from _pair(workdir, f"sqlite:///{workdir / 'mlgate.db'}")


def _pair(workdir: Path, uri: str) -> Iterator[Pair]:
    first, second = _start_pair(workdir, uri)
    try:
        made = httpx.post(f"{first.url}{A}/users/create", auth=first.admin_auth,
                          json={"username": ALICE, "password": ALICE_PASSWORD}, timeout=30)
        assert made.status_code == 200, made.text
        alice_cli = Mlgate(workdir / "alice-config.json")
        signed_in = alice_cli("login", "--server", first.url, "--username", ALICE, "--password-stdin",
                              input=ALICE_PASSWORD + "\n")
        assert signed_in.returncode == 0, signed_in.stdout + signed_in.stderr
        admin_cli = Mlgate(workdir / "admin-config.json")
        signed_in = admin_cli("login", "--server", first.url, "--username", first.admin_username,
                              "--password-stdin", input=first.admin_password + "\n")
        assert signed_in.returncode == 0, signed_in.stdout + signed_in.stderr
        yield Pair(first, second, uri, alice_cli, admin_cli)
    finally:
        first.stop()
        second.stop()


def _as_alice(server: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, auth=(ALICE, ALICE_PASSWORD), timeout=30)


def _experiment(client: httpx.Client, name: str) -> str:
    response = client.post(f"{A}/experiments/create", json={"name": name})
    assert response.status_code == 200, response.text
    return response.json()["experiment_id"]


def _denials(server: LiveServer, since_id: int = 0) -> list[dict]:
    records = httpx.get(f"{server.url}{M}/audit/list", auth=server.admin_auth,
                        params={"action": "authorize", "outcome": "denied", "limit": 1000}, timeout=30).json()
    return [r for r in records["records"] if r["id"] > since_id and r["actor"] == ALICE]


def _last_audit_id(server: LiveServer) -> int:
    records = httpx.get(f"{server.url}{M}/audit/list", auth=server.admin_auth, params={"limit": 1}, timeout=30)
    found = records.json()["records"]
    return found[-1]["id"] if found else 0


def test_a_scoped_token_limits_the_real_client_to_its_patterns(pair, monkeypatch):
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    suffix = secrets.token_hex(3)
    with _as_alice(pair.first) as alice:
        nightly = _experiment(alice, f"team-a/nightly-{suffix}")
        forecast = _experiment(alice, f"team-a/forecast-{suffix}")
    created = pair.alice_cli("tokens", "create", f"ci-{suffix}", "--days", "1",
                             "--scope", "EDIT:experiment-name:team-a/nightly-*", "--from-cidr", "127.0.0.0/8")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    listed = pair.alice_cli.json("tokens", "list")["tokens"]
    shown = next(t for t in listed if t["name"] == f"ci-{suffix}")
    assert shown["scope"] == ["EDIT:experiment-name:team-a/nightly-*"]
    assert shown["cidrs"] == ["127.0.0.0/8"]
    table = pair.alice_cli("tokens", "list").stdout
    assert "EDIT:experiment-name:team-a/nightly-*" in table
    assert "127.0.0.0/8" in table

    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    client = MlflowClient(pair.first.url)
    since = _last_audit_id(pair.first)
    # Inside its pattern: the token logs like its owner.
    run = client.create_run(nightly)
    client.log_metric(run.info.run_id, "loss", 0.5)
    assert client.get_metric_history(run.info.run_id, "loss")[0].value == 0.5
    # Outside its pattern, on an experiment its owner manages: as if it did not exist.
    with pytest.raises(MlflowException) as hidden:
        client.get_experiment(forecast)
    assert hidden.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as refused:
        client.create_run(forecast)
    assert refused.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    # Searches show the intersection of the owner's rights and the scope.
    names = {e.name for e in client.search_experiments()}
    assert f"team-a/nightly-{suffix}" in names
    assert f"team-a/forecast-{suffix}" not in names
    # Creating follows the scope too: a new nightly experiment, nothing else.
    client.create_experiment(f"team-a/nightly-{suffix}-2")
    with pytest.raises(MlflowException) as elsewhere:
        client.create_experiment(f"scratch-{suffix}")
    assert elsewhere.value.error_code == "PERMISSION_DENIED"
    # A scoped token never mints a broader one.
    minted = httpx.post(f"{pair.first.url}{A}/users/tokens/create", headers={"Authorization": f"Bearer {token}"},
                        json={"name": "escape", "expires_in_days": 1}, timeout=30)
    assert minted.status_code == 403, minted.text
    rules = [r["reason"] for r in _denials(pair.first, since)]
    assert any("[rule: token-scope]" in reason and f"team-a/forecast-{suffix}" in reason for reason in rules), rules
    assert any("[rule: token-scope]" in reason and f"scratch-{suffix}" in reason for reason in rules), rules


def test_a_token_limited_to_a_network_follows_the_trusted_proxys_forwarded_client(pair):
    suffix = secrets.token_hex(3)
    with _as_alice(pair.first) as alice:
        experiment = _experiment(alice, f"net-{suffix}")
        made = alice.post(f"{A}/users/tokens/create", json={"name": f"net-{suffix}", "expires_in_days": 1,
                                                             "cidrs": ["10.9.0.0/16"]})
    assert made.status_code == 200, made.text
    assert made.json()["token_info"]["cidrs"] == ["10.9.0.0/16"]
    headers = {"Authorization": f"Bearer {made.json()['token']}"}
    since = _last_audit_id(pair.first)
    for server in (pair.first, pair.second):
        inside = httpx.get(f"{server.url}{A}/experiments/get", params={"experiment_id": experiment},
                           headers={**headers, "X-Forwarded-For": "10.9.4.2"}, timeout=30)
        assert inside.status_code == 200, inside.text
        outside = httpx.get(f"{server.url}{A}/experiments/get", params={"experiment_id": experiment},
                            headers={**headers, "X-Forwarded-For": "192.0.2.77"}, timeout=30)
        assert outside.status_code == 404, outside.text
        # The proxy's own address (no forwarded client) is outside too.
        direct = httpx.post(f"{server.url}{A}/experiments/search", json={}, headers=headers, timeout=30)
        assert direct.status_code == 403, direct.text
    denied = [r for r in _denials(pair.first, since) if "token-scope:network" in r["reason"]]
    assert any(r["client_address"] == "192.0.2.77" for r in denied), denied


def test_a_grant_expires_mid_session_on_both_processes_within_a_second(pair):
    suffix = secrets.token_hex(3)
    admin = httpx.Client(base_url=pair.first.url, auth=pair.first.admin_auth, timeout=30)
    experiment = _experiment(admin, f"timed-{suffix}")
    granted = admin.post(f"{M}/grants/put", json={"subject": f"user:{ALICE}", "resource": f"experiment:{experiment}",
                                                  "permission": "READ", "expires_in_seconds": 4})
    assert granted.status_code == 200, granted.text
    expires_at = granted.json()["grant"]["expires_at"]
    assert expires_at is not None
    clients = [_as_alice(pair.first), _as_alice(pair.second)]
    for client in clients:  # before the expiry: both processes honour the grant
        deadline = time.time() + 2
        while client.get(f"{A}/experiments/get", params={"experiment_id": experiment}).status_code != 200:
            assert time.time() < deadline, "the grant never took effect"
            time.sleep(0.1)
    since = _last_audit_id(pair.first)
    time.sleep(max(0.0, expires_at / 1000 - time.time()) + 0.05)
    started = time.time()
    answers = [c.get(f"{A}/experiments/get", params={"experiment_id": experiment}).status_code for c in clients]
    elapsed_after_expiry = time.time() - expires_at / 1000
    assert answers == [404, 404]
    assert elapsed_after_expiry < 1.0, (started, expires_at)
    reasons = [r["reason"] for r in _denials(pair.first, since)]
    assert any("[rule: expired-grant]" in r and "expired at" in r for r in reasons), reasons


def test_break_glass_access_expires_and_every_use_is_audited(pair):
    suffix = secrets.token_hex(3)
    admin = httpx.Client(base_url=pair.first.url, auth=pair.first.admin_auth, timeout=30)
    experiment = _experiment(admin, f"incident-{suffix}")
    # Without --for, break-glass access is refused: it must expire by itself.
    refused = pair.admin_cli("perms", "grant", "--user", ALICE, "--experiment", experiment, "MANAGE", "--break-glass")
    assert refused.returncode != 0
    assert "--break-glass needs --for" in refused.stderr
    granted = pair.admin_cli.json("perms", "grant", "--user", ALICE, "--experiment", experiment, "MANAGE",
                                  "--for", "1h", "--break-glass")["grant"]
    assert granted["break_glass"] is True
    assert granted["expires_at"] is not None
    with _as_alice(pair.second) as alice:
        tagged = alice.post(f"{A}/experiments/set-experiment-tag",
                            json={"experiment_id": experiment, "key": "incident", "value": suffix})
    assert tagged.status_code == 200, tagged.text
    records = httpx.get(f"{pair.first.url}{M}/audit/list", auth=pair.first.admin_auth,
                        params={"limit": 1000}, timeout=30).json()["records"]
    created = [r for r in records if r["action"] == "grant.break_glass" and experiment in (r["target"] or "")]
    assert created, "granting break-glass access is its own audit event"
    used = [r for r in records if r["action"] == "break_glass.use" and r["actor"] == ALICE]
    assert any("experiments.set_tag" in r["target"] for r in used), used


def _verify(cli: Mlgate, *args: str):
    return cli("audit", "verify", *args)


def test_audit_verify_names_the_record_altered_by_direct_sql(pair, tmp_path):
    # Some fresh records to tamper with.
    with _as_alice(pair.first) as alice:
        for i in range(3):
            alice.get(f"{A}/experiments/get", params={"experiment_id": str(900_000 + i)})
    remote_ok = _verify(pair.admin_cli)
    assert remote_ok.returncode == 0, remote_ok.stdout + remote_ok.stderr
    assert remote_ok.stdout.startswith("OK: ")
    offline = Mlgate(tmp_path / "offline.json")
    assert _verify(offline, "--db", pair.uri).returncode == 0
    engine = sa.create_engine(pair.uri)
    try:
        with engine.begin() as conn:
            ids = [r.id for r in conn.execute(sa.text("SELECT id FROM auth_audit_log ORDER BY id DESC LIMIT 5"))]
            victim = ids[2]
            original = conn.execute(sa.text("SELECT reason FROM auth_audit_log WHERE id = :id"),
                                    {"id": victim}).scalar()
            conn.execute(sa.text("UPDATE auth_audit_log SET reason = 'nothing happened' WHERE id = :id"),
                         {"id": victim})
        edited = _verify(offline, "--db", pair.uri)
        assert edited.returncode == 1
        assert f"BROKEN at record {victim}:" in edited.stderr
        assert f"BROKEN at record {victim}:" in _verify(pair.admin_cli).stderr
        with engine.begin() as conn:  # put it back: the chain verifies again
            conn.execute(sa.text("UPDATE auth_audit_log SET reason = :r WHERE id = :id"),
                         {"r": original, "id": victim})
        assert _verify(offline, "--db", pair.uri).returncode == 0
        with engine.begin() as conn:  # a deleted record breaks the link of the next one
            conn.execute(sa.text("DELETE FROM auth_audit_log WHERE id = :id"), {"id": ids[3]})
        deleted = _verify(offline, "--db", pair.uri)
        assert deleted.returncode == 1
        assert f"BROKEN at record {ids[2]}:" in deleted.stderr
    finally:
        engine.dispose()


def _client_as(monkeypatch, server: LiveServer, username: str, password: str):
    import mlflow
    from mlflow import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", username)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    mlflow.set_tracking_uri(server.url)
    return MlflowClient(server.url)


def _model_with_version(client, name: str) -> None:
    import mlflow

    experiment_id = client.create_experiment(name)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_text("flavors: {}\nartifact_path: model\n", "model/MLmodel")
    client.create_registered_model(name)
    client.create_model_version(name, f"{client.get_run(run.info.run_id).info.artifact_uri}/model",
                                run_id=run.info.run_id)


def test_a_condition_on_the_champion_alias_refuses_the_real_client_outside_the_group(pair, monkeypatch):
    from mlflow.exceptions import MlflowException

    suffix = secrets.token_hex(3)
    olga, olga_password = f"olga-{suffix}", "olga-" + secrets.token_urlsafe(18)
    admin = httpx.Client(base_url=pair.first.url, auth=pair.first.admin_auth, timeout=30)
    assert admin.post(f"{A}/users/create", json={"username": olga, "password": olga_password}).status_code == 200
    admin.post(f"{M}/groups/create", json={"name": "ml-ops"})
    assert admin.post(f"{M}/groups/add-member", json={"group": "ml-ops", "username": olga}).status_code == 200
    since = _last_audit_id(pair.first)
    # alice manages her own model (its creator), yet may not make a version champion: she is not in ml-ops.
    client = _client_as(monkeypatch, pair.first, ALICE, ALICE_PASSWORD)
    name = f"churn-{suffix}"
    _model_with_version(client, name)
    with pytest.raises(MlflowException) as refused:
        client.set_registered_model_alias(name, "champion", "1")
    assert refused.value.error_code == "PERMISSION_DENIED"
    client.set_registered_model_alias(name, "challenger", "1")  # any other alias
    assert client.get_model_version_by_alias(name, "challenger").version == "1"
    reasons = [r["reason"] for r in _denials(pair.first, since)]
    assert any("[rule: access.conditions[0]]" in r for r in reasons), reasons
    # perms explain says why, with the rule.
    explained = pair.admin_cli.json("perms", "explain", "--user", ALICE, "--model", name, "--alias", "champion",
                                    "--action", "EDIT")
    assert explained["allowed"] is False
    assert explained["rule"] == "access.conditions[0]"
    # olga, in ml-ops, sets champion on her own model.
    olga_client = _client_as(monkeypatch, pair.second, olga, olga_password)
    own = f"olga-model-{suffix}"
    _model_with_version(olga_client, own)
    olga_client.set_registered_model_alias(own, "champion", "1")
    assert olga_client.get_model_version_by_alias(own, "champion").version == "1"
