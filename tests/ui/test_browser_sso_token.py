"""SSO through a real OpenID Provider, then a personal access token made on /account drives the real mlflow client."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.browser import chromium_browser, screenshot
from tests.conftest import LiveServer
from tests.idp import IdP
from tests.sso_stack import sign_in, sso_stack

pytestmark = [pytest.mark.oidc, pytest.mark.browser]
SECRET = "ui-browser-client-secret-0123456789"
USERS = {"alice": {"email": "alice@example.com", "email_verified": True, "groups": ["team-a"]}}
CLIENT_SCRIPT = """
import mlflow
from mlflow import MlflowClient
assert mlflow.get_experiment_by_name("secret/exp") is None
mlflow.set_experiment("team-a/exp")
with mlflow.start_run(run_name="from-the-sdk") as run:
    mlflow.log_param("lr", "0.01")
    mlflow.log_metric("loss", 0.25)
print("RUN", run.info.run_id)
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[tuple[LiveServer, IdP]]:
    """One IdP and one mlgate server (--dev: http cookies) whose policy gives group team-a EDIT on team-a/*."""
    with sso_stack(tmp_path_factory.mktemp("ui-sso"), users=USERS, secret=SECRET, allowed_groups=["team-a"],
                   grants=['{principal: "group:team-a", resource: "experiment-name:team-a/*", permission: EDIT}'],
                   experiments=["team-a/exp", "secret/exp"]) as both:
        yield both


def test_sso_user_creates_a_token_on_the_account_page_and_the_mlflow_client_uses_it(stack):
    server, _ = stack
    dialogs: list[str] = []
    with chromium_browser() as browser:
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        sign_in(page, server, "alice", next_path="/account")
        page.wait_for_url(f"{server.url}/account")
        assert page.locator(".pill", has_text="team-a").count() >= 1
        access = page.locator("h2#access + .table-wrap").inner_text()
        assert "team-a/exp" in access
        assert "EDIT" in access
        assert "secret/exp" not in access
        # An SSO user has no password here: no password form, but tokens.
        assert page.locator("form[action='/account/password']").count() == 0
        page.fill("form[action='/account/tokens/create'] input[name=name]", "laptop")
        page.fill("form[action='/account/tokens/create'] input[name=days]", "7")
        page.click("form[action='/account/tokens/create'] button")
        page.wait_for_selector("#token-export")
        export = page.locator("#token-export").inner_text()
        screenshot(page, "ui-sso-token-created")
        token = re.search(r"^export MLFLOW_TRACKING_TOKEN=(mlg_\S+)$", export, re.M).group(1)
        assert f"export MLFLOW_TRACKING_URI={server.url}" in export
        page.goto(f"{server.url}/account")
        assert token not in page.content()  # shown once only
        assert page.locator("td", has_text="laptop").count() == 1
    assert dialogs == []

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(MLFLOW_TRACKING_URI=server.url, MLFLOW_TRACKING_TOKEN=token)
    done = subprocess.run([sys.executable, "-c", CLIENT_SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    run_id = re.search(r"RUN (\w+)", done.stdout).group(1)
    run = httpx.get(f"{server.url}/api/2.0/mlflow/runs/get", params={"run_id": run_id}, auth=server.admin_auth,
                    timeout=30).json()["run"]
    team = httpx.get(f"{server.url}/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": "team-a/exp"},
                     auth=server.admin_auth, timeout=30).json()["experiment"]
    assert run["info"]["experiment_id"] == team["experiment_id"]
    assert run["data"]["metrics"][0]["key"] == "loss"
    # The token is alice's: what it may see is what her group may see.
    as_alice = httpx.post(f"{server.url}/api/2.0/mlflow/experiments/search", json={"max_results": 10},
                          headers={"Authorization": f"Bearer {token}"}, timeout=30).json()
    assert [e["name"] for e in as_alice["experiments"]] == ["team-a/exp"]
    me = httpx.get(f"{server.url}/api/2.0/mlflow/users/current", headers={"Authorization": f"Bearer {token}"},
                   timeout=30).json()
    assert me["user"]["username"] == "alice"
