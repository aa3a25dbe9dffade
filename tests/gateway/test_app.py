"""The app factory and the operational routes."""

import pytest

from gateway.app import create_app
from gateway.settings import Settings, SettingsError


def test_health_version_and_server_info(client):
    assert client.get("/health").text == "OK"
    # MLflow's client picks features (OTLP trace export needs >= 3.4) from this answer.
    assert client.get("/version").text == "3.17.2"
    info = client.get("/api/3.0/mlflow/server-info").json()
    assert info["store_type"] == "SqlStore"
    assert info["multipart_uploads_enabled"] is False
    # MLflow 3.18's fields: no client-side auth provider to advertise; artifacts never bypass the gateway.
    assert info["tracking_auth"] == ""
    assert info["artifacts_presigned_only"] is False
    assert info["artifact_serving_enabled"] is True


@pytest.mark.parametrize(("method", "path"), [("GET", "/api/3.0/mlflow/skills"), ("POST", "/api/3.0/mlflow/skills"),
                                         ("GET", "/api/3.0/mlflow/skills/my-skill/versions/1"),
                                         ("PATCH", "/ajax-api/3.0/mlflow/skills/my-skill"),
                                         ("DELETE", "/api/3.0/mlflow/skills/@org/my-skill")])
def test_the_skill_registry_answers_not_implemented_to_the_signed_in_only(client, method, path):
    # MLflow 3.18's skill registry is not served: 501 NOT_IMPLEMENTED (never retried), not a 404 that reads
    # as "no such skill"; an anonymous caller is refused before that.
    answer = client.request(method, path, json={})
    assert (answer.status_code, answer.json()["error_code"]) == (501, "NOT_IMPLEMENTED")
    assert client.request(method, path, json={}, headers={"Authorization": ""}).status_code == 401


def test_unknown_api_route_is_mlflow_style_404(client):
    response = client.get("/api/2.0/mlflow/no-such-thing")
    assert response.status_code == 404
    assert response.json()["error_code"] == "ENDPOINT_NOT_FOUND"


def test_settings_problems_are_all_listed(tmp_path):
    bad = Settings(port=0, workers=0, backend_store_uri="mysql://x", artifacts_destination=str(tmp_path))
    with pytest.raises(SettingsError) as info:
        create_app(bad)
    text = "\n".join(info.value.problems)
    assert "--port" in text
    assert "--workers" in text
    assert "--backend-store-uri" in text


def test_three_configuration_mistakes_are_reported_in_one_round_before_anything_is_created(tmp_path):
    # A short secret key, a wildcard --allowed-hosts entry and an unknown auth backend: before, these came
    # back one restart at a time, with the database and artifact directory created in between.
    policy = tmp_path / "policy.yaml"
    policy.write_text("auth:\n  methods: [session, basic, kerberos]\n")
    database, artifacts, data = tmp_path / "db.sqlite", tmp_path / "art", tmp_path / "data"
    bad = Settings(backend_store_uri=f"sqlite:///{database}", artifacts_destination=str(artifacts),
                   data_dir=str(data), policy_file=str(policy), secret_key="short",
                   allowed_hosts=("*",))
    with pytest.raises(SettingsError) as info:
        create_app(bad)
    problems = info.value.problems
    assert [p.split(":")[0] for p in problems] == ["MLGATE_SECRET_KEY", "auth.methods", "--allowed-hosts"], problems
    assert "no backend named 'kerberos'" in problems[1]
    assert "entry 0" in problems[2]
    assert not database.exists()
    assert not artifacts.exists()
    assert not data.exists()


def _kubernetes_policy(tmp_path, extra: str = "") -> Settings:
    policy = tmp_path / "policy.yaml"
    policy.write_text("auth:\n" + extra + "  kubernetes:\n    issuer: https://k8s.example\n    audience: mlgate\n"
                      "    jwks_url: https://k8s.example/jwks\n"
                      "    mappings: [{namespace: team-a, account: team-a-jobs}]\n")
    return Settings(backend_store_uri=f"sqlite:///{tmp_path / 'db.sqlite'}",
                    artifacts_destination=str(tmp_path / "art"), data_dir=str(tmp_path / "data"),
                    policy_file=str(policy))


def test_a_kubernetes_section_starts_and_accepts_cluster_tokens(tmp_path):
    app = create_app(_kubernetes_policy(tmp_path))
    assert app.state.identity.kubernetes.issuer == "https://k8s.example"


def test_a_kubernetes_section_that_would_be_ignored_or_ambiguous_lists_every_problem(tmp_path):
    extra = ("  methods: [session, basic]\n  oidc:\n    providers:\n      - name: corp\n"
             "        issuer: https://k8s.example\n        client_id: mlgate\n        audience: mlgate-api\n")
    with pytest.raises(SettingsError) as info:
        create_app(_kubernetes_policy(tmp_path, extra))
    problems = "\n".join(info.value.problems)
    assert "kubernetes: service-account tokens arrive as Bearer credentials, but 'bearer' is not in methods" \
        in problems, problems
    assert "kubernetes.issuer 'https://k8s.example' is also the issuer of oidc provider(s) corp" in problems
