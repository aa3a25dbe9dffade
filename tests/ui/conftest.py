"""UI test fixtures: an app with an admin, a READ user and a user with no grants, and browser-session clients."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from tests.conftest import TEST_ADMIN_PASSWORD, TEST_ADMIN_TOKEN

A = "/api/2.0/mlflow"
BASE = "http://127.0.0.1:5000"
READER_PASSWORD = "Unguessable-Pw-5e1b2c"
NOBODY_PASSWORD = "Another-Unguessable-9d3f"


def ok(response):
    """The JSON body of a 200 response (fails with the body otherwise)."""
    assert response.status_code == 200, response.text
    return response.json()


def csrf_of(html: str) -> str:
    """The session CSRF token a page's forms carry."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no form token"
    return found.group(1)


def sign_in(app, username: str, password: str, *, raise_server_exceptions: bool = True) -> TestClient:
    """A client signed in through the login form (a browser session with its cookie)."""
    browser = TestClient(app, base_url=BASE, follow_redirects=False, raise_server_exceptions=raise_server_exceptions)
    form = browser.get("/login")
    token = csrf_of(form.text)
    done = browser.post("/login", data={"username": username, "password": password, "csrf_token": token,
                                        "next": "/"}, headers={"Origin": BASE})
    assert done.status_code == 303, done.text
    browser.headers["Origin"] = BASE  # what a browser sends with a same-origin form post
    return browser


@pytest.fixture
def ui(app_factory):
    """Admin (token and session), reader (READ on 'shared-exp'), nobody (no grants), and two experiments."""
    app = app_factory()
    with TestClient(app, base_url=BASE) as api:
        api.headers["Authorization"] = f"Bearer {TEST_ADMIN_TOKEN}"
        ok(api.post(f"{A}/users/create", json={"username": "reader", "password": READER_PASSWORD}))
        ok(api.post(f"{A}/users/create", json={"username": "nobody", "password": NOBODY_PASSWORD}))
        shared = ok(api.post(f"{A}/experiments/create", json={"name": "shared-exp"}))["experiment_id"]
        hidden = ok(api.post(f"{A}/experiments/create", json={"name": "hidden-exp"}))["experiment_id"]
        ok(api.post(f"{A}/experiments/permissions/create",
                    json={"experiment_id": shared, "username": "reader", "permission": "READ"}))
        yield {"app": app, "api": api, "shared": shared, "hidden": hidden,
               "admin": lambda: sign_in(app, "admin", TEST_ADMIN_PASSWORD),
               "reader": lambda: sign_in(app, "reader", READER_PASSWORD),
               "nobody": lambda: sign_in(app, "nobody", NOBODY_PASSWORD)}


def new_run(api, experiment_id: str, name: str, **batch) -> str:
    """Create a run and log a batch (params, metrics, tags) to it; returns the run id."""
    run = ok(api.post(f"{A}/runs/create", json={"experiment_id": experiment_id, "run_name": name,
                                                "start_time": 1_764_000_000_000}))["run"]["info"]["run_id"]
    if batch:
        ok(api.post(f"{A}/runs/log-batch", json={"run_id": run, **batch}))
    return run
