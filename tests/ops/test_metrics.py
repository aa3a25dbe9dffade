"""/metrics: who may read it, and that the counters count what happened (requests, decisions, 429s)."""

from __future__ import annotations

import secrets
from pathlib import Path

from starlette.testclient import TestClient

from tests.conftest import TEST_ADMIN_TOKEN
from tests.ops.metrics_text import value

SCRAPE_TOKEN = secrets.token_urlsafe(32)
ADMIN = {"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}
PASSWORD = "Scrape-Pw-" + secrets.token_urlsafe(10)


def _client(app_factory, tmp_path: Path, policy: str | None = None, **overrides) -> TestClient:
    if policy is not None:
        path = tmp_path / "policy.yaml"
        path.write_text(policy)
        overrides["policy_file"] = str(path)
    return TestClient(app_factory(metrics_token=SCRAPE_TOKEN, **overrides), base_url="http://127.0.0.1:5000")


def _scrape(client: TestClient) -> str:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {SCRAPE_TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return response.text


def _user(client: TestClient, name: str) -> tuple[str, str]:
    made = client.post("/api/2.0/mlflow/users/create", json={"username": name, "password": PASSWORD},
                       headers=ADMIN)
    assert made.status_code == 200, made.text
    return (name, PASSWORD)


def test_only_administrators_and_the_scrape_token_read_metrics(app_factory, tmp_path):
    with _client(app_factory, tmp_path) as client:
        anonymous = client.get("/metrics")
        assert anonymous.status_code == 401
        assert anonymous.json()["error_code"] == "UNAUTHENTICATED"
        assert "mlgate_http_requests" not in anonymous.text
        wrong = client.get("/metrics", headers={"Authorization": f"Bearer {SCRAPE_TOKEN[:-1]}x"})
        assert wrong.status_code == 401
        assert "mlgate_http_requests" not in wrong.text
        as_query = client.get(f"/metrics?token={SCRAPE_TOKEN}")  # never in a URL
        assert as_query.status_code in (400, 401)
        assert "mlgate_http_requests" not in as_query.text
        reader = _user(client, "reader")
        refused = client.get("/metrics", auth=reader)
        assert refused.status_code == 403
        assert "mlgate_http_requests" not in refused.text
        admin = client.get("/metrics", headers=ADMIN)
        assert admin.status_code == 200
        assert "# TYPE mlgate_http_requests_total counter" in admin.text
        assert "mlgate_http_requests_total" in _scrape(client)


def test_without_a_configured_token_a_bearer_guess_is_an_ordinary_failed_login(app_factory, tmp_path):
    with TestClient(app_factory(), base_url="http://127.0.0.1:5000") as client:
        assert client.get("/metrics", headers={"Authorization": f"Bearer {SCRAPE_TOKEN}"}).status_code == 401


def test_requests_latency_and_authorization_outcomes_are_counted(app_factory, tmp_path):
    with _client(app_factory, tmp_path) as client:
        reader = _user(client, "reader")
        for _ in range(3):
            assert client.get("/api/2.0/mlflow/experiments/get", params={"experiment_id": "0"},
                              headers=ADMIN).status_code == 200
        hidden = client.post("/api/2.0/mlflow/experiments/create", json={"name": "private"}, headers=ADMIN)
        experiment_id = hidden.json()["experiment_id"]
        assert client.get("/api/2.0/mlflow/experiments/get", params={"experiment_id": experiment_id},
                          auth=reader).status_code == 404
        assert client.get("/api/2.0/mlflow/experiments/get", params={"experiment_id": "0"}).status_code == 401
        assert client.get("/no/such/endpoint", headers=ADMIN).status_code == 404
        text = _scrape(client)
    get = {"operation": "experiments.get"}
    assert value(text, "mlgate_http_requests_total", **get, method="GET", status="200") == 3
    assert value(text, "mlgate_http_requests_total", **get, status="404") == 1
    assert value(text, "mlgate_http_requests_total", **get, status="401") == 1
    assert value(text, "mlgate_http_requests_total", operation="unrouted", status="404") == 1
    assert value(text, "mlgate_http_request_duration_seconds_count", **get) == 5
    assert value(text, "mlgate_http_request_duration_seconds_sum", **get) > 0
    assert value(text, "mlgate_authz_decisions_total", **get, outcome="allowed") == 3
    assert value(text, "mlgate_authz_decisions_total", **get, outcome="denied") == 2
    assert value(text, "mlgate_authz_denials_total", **get, error_code="RESOURCE_DOES_NOT_EXIST") == 1
    assert value(text, "mlgate_authz_denials_total", **get, error_code="UNAUTHENTICATED") == 1


def test_rate_limit_hits_and_lockouts_are_counted_apart(app_factory, tmp_path):
    policy = ("network:\n  rate_limit:\n    sensitive: 1000/minute\n    per_client: 40/minute\n"
              "auth:\n  lockout: {user_max_failures: 2, address_max_failures: 500, base_seconds: 60}\n")
    with _client(app_factory, tmp_path, policy) as client:
        _user(client, "alice")
        for _ in range(2):
            assert client.get("/api/2.0/mlflow/users/current", auth=("alice", "wrong-guess-123456")
                              ).status_code == 401
        locked = client.get("/api/2.0/mlflow/users/current", auth=("alice", PASSWORD))
        assert locked.status_code == 429
        # Another address spends its budget (the scraper's own address keeps its budget).
        flooder = TestClient(client.app, base_url="http://127.0.0.1:5000", client=("198.51.100.9", 4000))
        statuses = [flooder.get("/version").status_code for _ in range(45)]
        assert statuses.count(429) == 5
        text = _scrape(client)
    assert value(text, "mlgate_lockout_refusals_total") == 1
    assert value(text, "mlgate_rate_limit_hits_total") == 5
    assert value(text, "mlgate_http_requests_total", operation="unrouted", status="429") == 5
    assert value(text, "mlgate_audit_events_total", action="lockout", outcome="denied") == 1
    assert value(text, "mlgate_audit_events_total", action="login", outcome="failure") == 2


def test_every_answer_carries_a_request_id(app_factory, tmp_path):
    with _client(app_factory, tmp_path) as client:
        given = client.get("/health", headers={"X-Request-ID": "lb-1234.abc:9"})
        assert given.headers["x-request-id"] == "lb-1234.abc:9"
        forged = client.get("/health", headers={"X-Request-ID": "x\" injected=1"})
        assert forged.headers["x-request-id"] != "x\" injected=1"
        assert len(forged.headers["x-request-id"]) == 32
        fresh = {client.get("/version").headers["x-request-id"] for _ in range(3)}
        assert len(fresh) == 3
        refused = client.get("/health", headers={"X-Request-ID": "r" * 129})
        assert refused.headers["x-request-id"] != "r" * 129


def test_the_scrape_token_works_by_pod_ip_while_everything_else_keeps_the_host_check(app_factory, tmp_path):
    with _client(app_factory, tmp_path) as client:
        pod = {"Host": "10.42.3.17:5000"}
        scraped = client.get("/metrics", headers={**pod, "Authorization": f"Bearer {SCRAPE_TOKEN}"})
        assert scraped.status_code == 200
        assert "mlgate_http_requests_total" in scraped.text
        assert scraped.headers["x-content-type-options"] == "nosniff"
        assert client.get("/metrics", headers={**pod, **ADMIN}).status_code == 400
        assert client.get("/metrics", headers={**pod, "Authorization": "Bearer wrong"}).status_code == 400
