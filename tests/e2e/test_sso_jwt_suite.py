"""The policy MLGATE_E2E_AUTH=jwt runs the real-client suite under: the IdP's client-credentials JWT is a
non-admin service account that works through grants only (what the issue asks of that suite)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import LiveServer, start_server
from tests.e2e.jwt_auth import CLIENT_ID, JwtAuth, start_jwt_auth

pytestmark = [pytest.mark.e2e, pytest.mark.oidc]


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[tuple[LiveServer, JwtAuth]]:
    workdir = tmp_path_factory.mktemp("jwt-suite")
    jwt = start_jwt_auth(workdir / "idp")
    try:
        server = start_server(workdir / "server", f"sqlite:///{workdir / 'mlgate.db'}",
                              *jwt.server_args(workdir))
    except Exception:
        jwt.idp.stop()
        raise
    yield server, jwt
    server.stop()
    jwt.idp.stop()


def test_the_suites_service_account_is_not_an_administrator_and_works_through_grants(stack):
    server, jwt = stack
    api = f"{server.url}/api/2.0/mlflow"
    bearer = {"Authorization": f"Bearer {jwt.token()}"}
    me = httpx.get(f"{api}/users/current", headers=bearer, timeout=30).json()["user"]
    assert (me["username"], me["is_admin"]) == (CLIENT_ID, False)
    # Admin-only APIs are refused; the suite's admin-only tests use the admin's own credentials.
    assert httpx.get(f"{api}/users/list", headers=bearer, timeout=30).status_code == 403
    # Experiments and models made by someone else are reachable through the grants, and it may create.
    made = httpx.post(f"{api}/experiments/create", json={"name": "by-admin"}, auth=server.admin_auth, timeout=30)
    made.raise_for_status()
    experiment_id = made.json()["experiment_id"]
    run = httpx.post(f"{api}/runs/create", json={"experiment_id": experiment_id}, headers=bearer, timeout=30)
    assert run.status_code == 200, run.text
    assert httpx.post(f"{api}/experiments/create", json={"name": "by-suite"}, headers=bearer,
                      timeout=30).status_code == 200
    httpx.post(f"{api}/registered-models/create", json={"name": "model-by-admin"}, auth=server.admin_auth,
               timeout=30).raise_for_status()
    tagged = httpx.post(f"{api}/registered-models/set-tag", json={"name": "model-by-admin", "key": "k", "value": "v"},
                        headers=bearer, timeout=30)
    assert tagged.status_code == 200, tagged.text
    deleted = httpx.request("DELETE", f"{api}/registered-models/delete", json={"name": "model-by-admin"},
                            headers=bearer, timeout=30)
    assert deleted.status_code == 200, deleted.text  # MANAGE through the grant
