"""The per-principal budget: applied after authentication, whatever address the requests come from."""

from starlette.testclient import TestClient

from tests.conftest import TEST_ADMIN_TOKEN


def test_a_principal_cannot_spread_its_budget_over_addresses(app_factory, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\n"
        "network:\n"
        "  trusted_proxies: ['127.0.0.1/32']\n"
        "  rate_limit:\n"
        "    per_client: '1000/minute'\n"
        "    per_principal: '3/minute'\n"
    )
    app = app_factory(policy_file=str(policy))
    statuses = []
    with TestClient(app, base_url="http://127.0.0.1:5000", client=("127.0.0.1", 40000)) as client:
        for i in range(5):
            response = client.get("/api/2.0/mlflow/experiments/get", params={"experiment_id": "0"}, headers={
                "Authorization": f"Bearer {TEST_ADMIN_TOKEN}", "X-Forwarded-For": f"203.0.113.{i + 1}"})
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert response.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
                assert int(response.headers["Retry-After"]) >= 1
    assert statuses == [200, 200, 200, 429, 429]
