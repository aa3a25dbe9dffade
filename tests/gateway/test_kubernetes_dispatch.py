"""A Bearer JWT goes to exactly one verifier, chosen by its ``iss``: the cluster's (auth.kubernetes), or the OIDC
provider's; mlgate's own tokens are never JWTs. Keys from a jwks_file (a cluster whose issuer is not reachable
from mlgate); the OIDC provider here is never reachable, so a token routed to it cannot succeed by accident."""

from __future__ import annotations

import json

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.testclient import TestClient

from tests.conftest import TEST_ADMIN_TOKEN
from tests.services import free_port

CLUSTER = "https://kubernetes.default.svc.cluster.local"


@pytest.fixture(scope="module")
def cluster_key():
    return RSAKey.generate_key(2048)


def _token(key, iss: str, sub: str = "system:serviceaccount:team-a:trainer", aud: str = "mlgate") -> str:
    import time

    now = int(time.time())
    return jwt.encode({"alg": "RS256", "kid": "cluster-1"},
                      {"iss": iss, "sub": sub, "aud": [aud], "iat": now, "exp": now + 600}, key)


@pytest.fixture
def client(app_factory, tmp_path, cluster_key):
    jwks = cluster_key.as_dict(private=False)
    jwks.update(kid="cluster-1", use="sig")
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [jwks]}))
    oidc_issuer = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"""
version: 1
auth:
  oidc:
    providers:
      - {{name: corp, issuer: "{oidc_issuer}", client_id: mlgate, audience: mlgate-api, timeout_seconds: 1}}
  kubernetes:
    issuer: {CLUSTER}
    audience: mlgate
    jwks_file: {tmp_path / "jwks.json"}
    mappings: [{{namespace: team-a, name: trainer, account: team-a-trainer}}]
""")
    with TestClient(app_factory(policy_file=str(policy)), base_url="http://127.0.0.1:5000") as c:
        c.oidc_issuer = oidc_issuer
        yield c


def _whoami(client, token: str):
    return client.get("/api/2.0/mlflow/users/current", headers={"Authorization": f"Bearer {token}"})


def test_a_cluster_token_is_verified_by_the_cluster_issuer_only(client, cluster_key):
    token = _token(cluster_key, CLUSTER)
    me = _whoami(client, token)
    assert me.status_code == 200, me.text
    assert me.json()["user"]["username"] == "team-a-trainer"
    # Without --enable-workspaces everything is in 'default', which the mapping allows by default.
    headers = {"Authorization": f"Bearer {token}"}
    made = client.post("/api/2.0/mlflow/experiments/create", json={"name": "k8s-job"}, headers=headers)
    assert made.status_code == 200, made.text
    found = client.post("/api/2.0/mlflow/experiments/search", json={"max_results": 10}, headers=headers).json()
    assert [e["name"] for e in found["experiments"]] == ["k8s-job"]


def test_a_token_naming_the_oidc_issuer_goes_to_that_provider_and_never_to_the_cluster(client, cluster_key):
    # Signed by the cluster's key and mapped there, but its iss names the OIDC provider: the provider's keys
    # decide (unreachable here: refused), the cluster verifier is not tried as a fallback.
    refused = _whoami(client, _token(cluster_key, client.oidc_issuer, aud="mlgate-api"))
    assert refused.status_code == 401
    assert "could not be reached" in refused.json()["message"]
    assert "service-account issuer" not in refused.json()["message"]


def test_a_token_of_any_other_issuer_is_refused_without_a_verifier(client, cluster_key):
    refused = _whoami(client, _token(cluster_key, "https://other-cluster.example"))
    assert refused.status_code == 401
    assert "not from an identity provider configured for API access" in refused.json()["message"]


def test_personal_access_tokens_still_work_beside_both(client):
    assert _whoami(client, TEST_ADMIN_TOKEN).status_code == 200


def test_with_the_credential_cache_off_a_cluster_token_is_verified_on_every_request(app_factory, tmp_path,
                                                                                    cluster_key):
    # credential_cache_seconds: 0 means every request is checked against the account; a cached cluster token
    # would skip that check (its entry is trusted until its TTL), so a disable made by another process would
    # not count until then.
    jwks = cluster_key.as_dict(private=False)
    jwks.update(kid="cluster-1", use="sig")
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [jwks]}))
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"""
version: 1
auth:
  credential_cache_seconds: 0
  kubernetes:
    issuer: {CLUSTER}
    audience: mlgate
    jwks_file: {tmp_path / "jwks.json"}
    mappings: [{{namespace: team-a, name: trainer, account: team-a-trainer}}]
""")
    with TestClient(app_factory(policy_file=str(policy)), base_url="http://127.0.0.1:5000") as c:
        token = _token(cluster_key, CLUSTER)
        assert _whoami(c, token).status_code == 200
        cache = c.app.state.identity.credentials.cache
        assert cache.get(cache.key_for("kubernetes", token)) is None
