"""Property: a search filter combined with visibility never widens (nor narrows) what a non-admin sees.

For any generated filter, a non-admin's search answers exactly the administrator's answer to the same search,
restricted to what the non-admin may read: the filter cannot reach a hidden experiment's runs, a hidden
experiment or a hidden registered model, and visibility does not drop matching visible ones. An invalid filter
is refused alike for both. Runs on the real app (in process), derandomized.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from tests.conftest import TEST_ADMIN_TOKEN

A = "/api/2.0/mlflow"
PROPS = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                 suppress_health_check=list(HealthCheck))
VALUES = ["a", "b", "a%", "%b%", "ab", ""]

run_filters = st.lists(st.one_of(
    st.builds(lambda op, v: f"metrics.m {op} {v}", st.sampled_from(["=", "!=", "<", "<=", ">", ">="]),
              st.sampled_from(["0", "1", "2", "1.5", "-1"])),
    st.builds(lambda key, op, v: f"{key} {op} '{v}'", st.sampled_from(["params.p", "tags.team", "attributes.run_name",
                                                                       "tags.`mlflow.runName`"]),
              st.sampled_from(["=", "!=", "LIKE", "ILIKE"]), st.sampled_from(VALUES)),
    st.builds(lambda key, op: f"{key} {op}", st.sampled_from(["params.p", "tags.team"]),
              st.sampled_from(["IS NULL", "IS NOT NULL"])),
    st.builds(lambda op, v: f"attributes.status {op} '{v}'", st.sampled_from(["=", "!="]),
              st.sampled_from(["RUNNING", "FINISHED"])),
    st.text(alphabet="metrics.pa=<>' ", max_size=12),  # mostly invalid: both must be refused alike
), min_size=0, max_size=3).map(" AND ".join)
name_filters = st.lists(st.one_of(
    st.builds(lambda op, v: f"name {op} '{v}'", st.sampled_from(["=", "!=", "LIKE", "ILIKE"]),
              st.sampled_from(["x-a", "x-b", "x-%", "%a", "%", "X-%"])),
    st.builds(lambda op, v: f"tags.team {op} '{v}'", st.sampled_from(["=", "!=", "LIKE"]), st.sampled_from(VALUES)),
), min_size=0, max_size=2).map(" AND ".join)


def _setup(client: TestClient) -> tuple[dict, dict]:
    """Experiments and models on both sides of bob's visibility; returns bob's headers and the visible ids."""
    def ok(method, path, **kwargs):
        response = client.request(method, path, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()

    ok("POST", f"{A}/users/create", json={"username": "bob", "password": "Pw-" + "b" * 16})
    token = ok("POST", f"{A}/users/tokens/create", json={"name": "t", "expires_in_days": 1, "username": "bob"})
    bob = {"Authorization": f"Bearer {token['token']}"}
    experiments = {}
    for name in ("x-a", "x-b", "x-ab"):
        exp = ok("POST", f"{A}/experiments/create", json={"name": name, "tags": [{"key": "team", "value": name[2:]}]})
        experiments[name] = exp["experiment_id"]
        for i, (p, team) in enumerate([("a", "a"), ("b", None), ("ab", "b")]):
            run = ok("POST", f"{A}/runs/create", json={"experiment_id": exp["experiment_id"], "run_name": f"{p}{i}"})
            run_id = run["run"]["info"]["run_id"]
            ok("POST", f"{A}/runs/log-batch", json={
                "run_id": run_id, "metrics": [{"key": "m", "value": i, "timestamp": 1}],
                "params": [{"key": "p", "value": p}], "tags": [{"key": "team", "value": team}] if team else []})
            if i == 2:
                ok("POST", f"{A}/runs/update", json={"run_id": run_id, "status": "FINISHED"})
    for name in ("x-a", "x-b", "x-ab"):
        ok("POST", f"{A}/registered-models/create", json={"name": name, "tags": [{"key": "team", "value": name[2:]}]})
    # bob may read the experiments x-a and x-ab and the registered model x-b (READ grants); nothing else.
    for exp in ("x-a", "x-ab"):
        ok("POST", f"{A}/experiments/permissions/create", json={"experiment_id": experiments[exp], "username": "bob",
                                                                "permission": "READ"})
    ok("POST", f"{A}/registered-models/permissions/create", json={"name": "x-b", "username": "bob",
                                                                  "permission": "READ"})
    visible = {"experiments": {experiments["x-a"], experiments["x-ab"]}, "models": {"x-b"}}
    return bob, {"experiments": experiments, "visible": visible}


def _answer(client: TestClient, headers: dict, method: str, path: str, body: dict) -> tuple[int, list | None]:
    response = client.request(method, path, json=body, headers=headers) if method == "POST" else \
        client.get(path, params=body, headers=headers)
    if response.status_code != 200:
        return response.status_code, None
    return 200, response.json()


def test_a_filter_never_widens_a_non_admins_search(app_factory):
    with TestClient(app_factory(), base_url="http://127.0.0.1:5000") as client:
        client.headers["Authorization"] = f"Bearer {TEST_ADMIN_TOKEN}"
        bob, world = _setup(client)
        every_experiment = sorted(world["experiments"].values())
        visible_experiments = world["visible"]["experiments"]
        admin = {}
        # Non-vacuity: how often bob got a non-empty answer that the filter narrowed, or one that visibility did.
        seen = {"filtered": 0, "hidden_matched": 0, "refused": 0}

        @PROPS
        @given(run_filters, st.lists(st.sampled_from(every_experiment), min_size=1, max_size=3, unique=True))
        def runs(text, experiment_ids):
            body = {"experiment_ids": experiment_ids, "filter": text, "max_results": 1000}
            status, as_bob = _answer(client, bob, "POST", f"{A}/runs/search", body)
            shown = [e for e in experiment_ids if e in visible_experiments]
            a_status, as_admin = _answer(client, admin, "POST", f"{A}/runs/search", {**body, "experiment_ids": shown}
                                         ) if shown else (200, {})
            if status != 200:
                seen["refused"] += 1
                # Refused: either the filter is invalid (so it is for the admin too), or bob asked for nothing visible.
                assert a_status != 200 or not shown, (text, experiment_ids, status)
                return
            assert a_status == 200, text
            got = {r["info"]["run_id"] for r in as_bob.get("runs", [])}
            want = {r["info"]["run_id"] for r in as_admin.get("runs", [])}
            assert got == want, (text, experiment_ids)
            assert {r["info"]["experiment_id"] for r in as_bob.get("runs", [])} <= visible_experiments
            if got and len(got) < 3 * len(shown):
                seen["filtered"] += 1
            hidden = [e for e in experiment_ids if e not in visible_experiments]
            if hidden and _answer(client, admin, "POST", f"{A}/runs/search", {**body, "experiment_ids": hidden})[1]:
                seen["hidden_matched"] += 1  # the filter matched hidden runs, and bob still got none of them

        def admins_answer_restricted(method, path, field, key, visible, text):
            """bob's search answers as the admin's, restricted to what bob may read (or fails alike)."""
            body = {"filter": text, "max_results": 1000}
            status, as_bob = _answer(client, bob, method, path, body)
            a_status, as_admin = _answer(client, admin, method, path, body)
            assert status == a_status, text
            if status == 200:
                got = {item[key] for item in as_bob.get(field, [])}
                want = {item[key] for item in as_admin.get(field, [])} & visible
                assert got == want, text

        @PROPS
        @given(name_filters)
        def experiments(text):
            admins_answer_restricted("POST", f"{A}/experiments/search", "experiments", "experiment_id",
                                     visible_experiments, text)

        @PROPS
        @given(name_filters)
        def models(text):
            admins_answer_restricted("GET", f"{A}/registered-models/search", "registered_models", "name",
                                     world["visible"]["models"], text)

        runs()
        experiments()
        models()
        assert seen["filtered"] >= 10, seen
        assert seen["hidden_matched"] >= 10, seen
        assert seen["refused"] >= 1, seen
