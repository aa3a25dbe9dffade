"""The grants of MLGATE_E2E_USER=member's group, through the real client: EDIT by name pattern, READ on one id.

In the other modes the client is the administrator (or the JWT pass's service account, which may manage every
experiment): the same calls succeed, and only the refusals are left out.
"""

from __future__ import annotations

import httpx
import pytest
from mlflow.exceptions import RestException

from tests.e2e.conftest import ADMINS_EXPERIMENT, AS_MEMBER, SHARED_PREFIX, e2e_member

pytestmark = pytest.mark.e2e


def _admin_creates_experiment(server, name: str) -> str:
    response = httpx.post(f"{server.url}/api/2.0/mlflow/experiments/create", auth=server.admin_auth,
                          json={"name": name}, timeout=30)
    response.raise_for_status()
    return response.json()["experiment_id"]


def test_the_group_edits_shared_experiments_and_reads_the_admins_one(mlflow_client, e2e_server, unique_name):
    member = e2e_member(e2e_server)
    shared_id = _admin_creates_experiment(e2e_server, SHARED_PREFIX + unique_name)
    run_id = mlflow_client.create_run(shared_id).info.run_id
    mlflow_client.log_metric(run_id, "m", 1.0)
    assert [r.info.run_id for r in mlflow_client.search_runs([shared_id])] == [run_id]
    assert mlflow_client.get_experiment(member.admins_experiment_id).name == ADMINS_EXPERIMENT
    if not AS_MEMBER:
        return
    with pytest.raises(RestException) as refused:
        mlflow_client.create_run(member.admins_experiment_id)
    assert refused.value.error_code == "PERMISSION_DENIED"
    # An experiment of the admin's that no grant covers answers as a missing one.
    private_id = _admin_creates_experiment(e2e_server, "private-" + unique_name)
    with pytest.raises(RestException) as hidden:
        mlflow_client.get_experiment(private_id)
    assert hidden.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert private_id not in {e.experiment_id for e in mlflow_client.search_experiments()}
