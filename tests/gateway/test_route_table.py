"""No route escapes the policy: every mounted route is classified and passes the authorizer."""

from fastapi.routing import APIRoute
from starlette.routing import Mount

from gateway.authz import Authorizer
from policies.routes import OPERATION_IDS, requirement_for


def _api_routes(app):
    """Every route the app serves, through FastAPI's included-router branches (newer FastAPI keeps
    included routers as branches instead of copying their routes)."""
    stack = list(app.routes)
    while stack:
        route = stack.pop()
        if isinstance(route, Mount):
            stack.extend(route.routes)
        elif hasattr(route, "effective_candidates"):
            for candidate in route.effective_candidates():
                if hasattr(candidate, "effective_candidates"):
                    stack.append(candidate)
                else:
                    stack.append(candidate.original_route)
        else:
            yield route


def test_every_mounted_route_has_an_operation_id_in_the_route_table(app_factory):
    # MLflow's UI routes are mounted only with its build installed (the mlflow-ui extra, part of [test]).
    from gateway.ui.mlflow_ui import find_build

    apps = [app_factory()] + ([app_factory(web_ui="mlflow")] if find_build()[0] is not None else [])
    unclassified = []
    seen = set() if len(apps) > 1 else {"mlflow_ui.index", "mlflow_ui.static"}
    for route in (r for app in apps for r in _api_routes(app)):
        assert isinstance(route, APIRoute), f"{route.path} is not an APIRoute and would skip the authorizer"
        if route.operation_id is None or requirement_for(route.operation_id) is None:
            unclassified.append(f"{sorted(route.methods)} {route.path} ({route.operation_id})")
        seen.add(route.operation_id)
    assert unclassified == []
    # And the table has no stale entries: each id is served by some route.
    assert set(OPERATION_IDS) - seen == set()


def test_the_authorizer_is_an_app_wide_dependency(app_factory):
    # Declared on the app itself, it applies to every route whoever mounts it; the test above shows
    # there is no route outside the app's router (no mounted sub-application bypasses it).
    app = app_factory()
    assert any(isinstance(d.dependency, Authorizer) for d in app.router.dependencies)


def test_an_unmapped_operation_is_denied(app_factory):
    from starlette.testclient import TestClient

    from tests.conftest import TEST_ADMIN_TOKEN

    app = app_factory()

    @app.get("/api/2.0/mlflow/sneaky", operation_id="sneaky.unclassified")
    def sneaky():
        return {"secret": True}

    with TestClient(app, base_url="http://127.0.0.1:5000") as client:
        response = client.get("/api/2.0/mlflow/sneaky", headers={"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"})
    assert response.status_code == 403
    assert response.json()["error_code"] == "PERMISSION_DENIED"
    assert "secret" not in response.text


def test_every_form_post_that_skips_the_csrf_header_checks_the_csrf_field(app_factory):
    """The middleware leaves cookie writes under the UI's form prefixes to the form dependency: each such
    route must have it, or a cross-site form could write with the victim's cookie."""
    from gateway.authn import UI_FORM_PREFIXES
    from gateway.ui.forms import FORM_PREFIXES, checked_form

    assert tuple(UI_FORM_PREFIXES) == tuple(FORM_PREFIXES)
    app = app_factory()
    unguarded, seen = [], 0
    for route in _api_routes(app):
        if not isinstance(route, APIRoute) or not route.path.startswith(UI_FORM_PREFIXES):
            continue
        if not route.methods - {"GET", "HEAD"}:
            continue
        seen += 1
        calls = {d.call for d in route.dependant.dependencies}
        if checked_form not in calls:
            unguarded.append(f"{sorted(route.methods)} {route.path}")
    assert seen >= 5  # the account and admin forms exist
    assert unguarded == []
