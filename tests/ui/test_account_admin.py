"""My account and the admin pages: CSRF-checked forms, the API's rules, and admins only where the API says so."""

from __future__ import annotations

import hashlib
import re

import pytest
from starlette.testclient import TestClient

from auth.sessions import COOKIE_NAME
from tests.conftest import TEST_ADMIN_PASSWORD
from tests.gateway.test_route_table import _api_routes
from tests.ui.conftest import BASE, READER_PASSWORD, A, csrf_of, ok, sign_in

ADMIN_FORMS = [("/admin/users/create", {"username": "mallory", "password": "Unguessable-Pw-m77y", "kind": "user"}),
               ("/admin/users/update", {"username": "reader", "action": "make_admin"}),
               ("/admin/groups/create", {"name": "evil-group"}),
               ("/admin/groups/delete", {"name": "team-a"}),
               ("/admin/groups/member", {"group": "team-a", "username": "nobody", "op": "add"}),
               ("/admin/grants/put", {"subject": "user:nobody", "resource": "experiment:1", "permission": "MANAGE"}),
               ("/admin/grants/revoke", {"subject": "user:reader", "resource": "experiment:1"})]


def _tokens(api, username: str) -> list[dict]:
    return ok(api.get(f"{A}/users/tokens/list", params={"username": username}))["tokens"]


def _state(api) -> dict:
    """Everything the forms could change, read through the admin API."""
    return {"accounts": ok(api.get("/api/2.0/mlgate/users/list"))["users"],
            "groups": ok(api.get("/api/2.0/mlgate/groups/list"))["groups"],
            "grants": [{k: g[k] for k in ("subject", "resource", "permission")}
                       for g in ok(api.get("/api/2.0/mlgate/grants/list"))["grants"]],
            "tokens": _tokens(api, "reader")}


def test_account_shows_identity_access_and_why(ui):
    api = ui["api"]
    ok(api.post("/api/2.0/mlgate/groups/create", json={"name": "team-a"}))
    ok(api.post("/api/2.0/mlgate/groups/add-member", json={"group": "team-a", "username": "reader"}))
    page = ui["reader"]().get("/account")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    html = page.text
    assert ">reader<" in html
    assert ">team-a<" in html
    assert "shared-exp" in html
    assert "hidden-exp" not in html
    # The policy's explanation: the permission and the rule that decided it.
    assert re.search(r"shared-exp</a></td>\s*<td><span class=\"pill\">READ</span>", html)
    assert "holds READ on experiment" in html
    nobody = ui["nobody"]().get("/account").text
    assert "You cannot see any experiment or registered model yet." in nobody
    assert "shared-exp" not in nobody


def test_token_is_shown_once_works_and_can_be_revoked(ui):
    reader = ui["reader"]()
    page = reader.get("/account").text
    posted = reader.post("/account/tokens/create", data={"csrf_token": csrf_of(page), "name": "laptop", "days": "7"})
    # Redirect-after-post: the secret is neither in the redirect's URL nor readable from its cookie.
    assert posted.status_code == 303
    assert posted.headers["location"] == "/account"
    assert "mlg_" not in str(posted.headers)
    created = reader.get("/account")
    assert created.headers["cache-control"] == "no-store"
    secret = re.search(r"export MLFLOW_TRACKING_TOKEN=(mlg_[A-Za-z0-9_\-]+)", created.text).group(1)
    assert "export MLFLOW_TRACKING_URI=http://127.0.0.1:5000" in created.text
    # The token works for the API as the reader, and is listed (without its secret) afterwards.
    api_as_reader = TestClient(ui["app"], base_url=BASE, headers={"Authorization": f"Bearer {secret}"})
    assert ok(api_as_reader.get(f"{A}/users/current"))["user"]["username"] == "reader"
    listed = reader.get("/account").text
    assert "laptop" in listed
    assert secret not in listed
    token_id = re.search(r'name="token_id" value="([^"]+)"', listed).group(1)
    revoked = reader.post("/account/tokens/revoke", data={"csrf_token": csrf_of(listed), "token_id": token_id})
    assert revoked.status_code == 303
    assert revoked.headers["location"] == "/account?done=revoked"
    assert api_as_reader.get(f"{A}/users/current").status_code == 401
    # Another user cannot revoke the admin's token by id: it is "not found" for them.
    admin_token = _tokens(ui["api"], "admin")[0]["id"]
    refused = reader.post("/account/tokens/revoke", data={"csrf_token": csrf_of(listed), "token_id": admin_token})
    assert refused.status_code == 400
    assert ok(ui["api"].get(f"{A}/users/current"))["user"]["username"] == "admin"


def test_password_change_needs_the_current_password(ui):
    reader = ui["reader"]()
    token = csrf_of(reader.get("/account").text)
    new = "Brand-New-Secret-4410"
    wrong = reader.post("/account/password", data={"csrf_token": token, "current_password": "not-it",
                                                   "new_password": new, "repeat_password": new})
    assert wrong.status_code == 400
    assert "Current password does not match." in wrong.text
    mismatch = reader.post("/account/password", data={"csrf_token": token, "current_password": READER_PASSWORD,
                                                      "new_password": new, "repeat_password": new + "x"})
    assert mismatch.status_code == 400
    done = reader.post("/account/password", data={"csrf_token": token, "current_password": READER_PASSWORD,
                                                  "new_password": new, "repeat_password": new})
    assert done.status_code == 303
    sign_in(ui["app"], "reader", new)
    # The old password is refused as a wrong password (401 and its message), not by some other failure of
    # the sign-in form (an expired form, a missing token, a server error would not prove anything).
    browser = TestClient(ui["app"], base_url=BASE, follow_redirects=False)
    old = browser.post("/login", data={"username": "reader", "password": READER_PASSWORD, "next": "/",
                                       "csrf_token": csrf_of(browser.get("/login").text)}, headers={"Origin": BASE})
    assert old.status_code == 401, old.text
    assert "Invalid username or password." in old.text
    assert COOKIE_NAME not in old.cookies


@pytest.mark.parametrize(("path", "fields"), [("/account/tokens/create", {"name": "x", "days": "1"}),
                                              ("/account/password", {"current_password": READER_PASSWORD,
                                                                     "new_password": "Zz-New-Pass-0987",
                                                                     "repeat_password": "Zz-New-Pass-0987"}),
                                              *ADMIN_FORMS])
def test_forms_without_or_with_a_wrong_csrf_token_are_refused_and_change_nothing(ui, path, fields):
    api = ui["api"]
    ok(api.post("/api/2.0/mlgate/groups/create", json={"name": "team-a"}))
    before = _state(api)
    browser = ui["admin"]() if path.startswith("/admin/") else ui["reader"]()
    real = csrf_of(browser.get("/account").text)
    other = csrf_of(ui["nobody"]().get("/account").text)  # a valid token of another session
    for token in (None, "", "0" * 64, other, real[:-1]):
        data = dict(fields) if token is None else {**fields, "csrf_token": token}
        refused = browser.post(path, data=data)
        assert refused.status_code == 403, (path, token, refused.text)
    # A bearer client (no session) cannot use the forms either, even with a session's token.
    bearer = TestClient(ui["app"], base_url=BASE, headers={"Authorization": api.headers["Authorization"]})
    assert bearer.post(path, data={**fields, "csrf_token": real}).status_code == 403
    assert _state(api) == before


def test_every_ui_form_route_checks_the_csrf_token(ui):
    """A structural guard: each POST route of the UI refuses a session post without the token."""
    posts = [r.path for r in _api_routes(ui["app"])
             if "POST" in r.methods and (r.operation_id or "").startswith("ui.")]
    assert len(posts) == 17  # 10, the workspace switcher and the six workspace administration forms
    browser = ui["admin"]()
    for path in posts:
        assert browser.post(path, data={"name": "x"}).status_code == 403, path


def test_admin_pages_are_for_administrators_only(ui):
    reader, nobody = ui["reader"](), ui["nobody"]()
    for path in ("/admin", "/admin/groups", "/admin/grants", "/admin/audit", "/admin/policy"):
        for client in (reader, nobody):
            page = client.get(path)
            assert page.status_code == 403, path  # as the admin API answers a non-admin
            assert "only administrators" in page.text
        assert ui["admin"]().get(path).status_code == 200
    # A non-admin's post (with a valid token of its own session) is refused before any change.
    token = csrf_of(reader.get("/account").text)
    before = _state(ui["api"])
    for path, fields in ADMIN_FORMS:
        assert reader.post(path, data={**fields, "csrf_token": token}).status_code == 403
    assert _state(ui["api"]) == before
    assert 'href="/admin"' not in reader.get("/").text
    assert 'href="/admin"' in ui["admin"]().get("/").text
    # Administrators get a link from an experiment to who can see it; others do not.
    access = f'href="/admin/grants?experiment_id={ui["shared"]}"'
    assert access in ui["admin"]().get(f"/experiments/{ui['shared']}").text
    assert access not in reader.get(f"/experiments/{ui['shared']}").text


def test_admin_manages_accounts_groups_and_grants_through_the_api_rules(ui):
    api, admin = ui["api"], ui["admin"]()
    token = csrf_of(admin.get("/admin").text)

    def post(path, **fields):
        return admin.post(path, data={"csrf_token": token, **fields})

    assert post("/admin/users/create", username="carol", password="Unguessable-Pw-c31x", kind="user").status_code == 303
    assert post("/admin/users/create", username="ci-bot", kind="service").status_code == 303
    weak = post("/admin/users/create", username="dave", password="short", kind="user")
    assert weak.status_code == 400
    assert 'role="alert"' in weak.text
    accounts = {a["username"]: a for a in ok(api.get("/api/2.0/mlgate/users/list"))["users"]}
    assert accounts["carol"]["kind"] == "user"
    assert accounts["ci-bot"]["kind"] == "service"
    assert "dave" not in accounts
    assert post("/admin/users/update", username="carol", action="disable").status_code == 303
    assert ok(api.get("/api/2.0/mlgate/users/get", params={"username": "carol"}))["user"]["disabled"] is True
    assert post("/admin/users/update", username="nobody", action="reset_password",
                password="Reset-By-Admin-8812").status_code == 303
    sign_in(ui["app"], "nobody", "Reset-By-Admin-8812")
    assert post("/admin/users/update", username="admin", action="remove_admin").status_code == 400  # not oneself

    assert post("/admin/groups/create", name="team-a").status_code == 303
    assert post("/admin/groups/member", group="team-a", username="nobody", op="add").status_code == 303
    groups = {g["name"]: g for g in ok(api.get("/api/2.0/mlgate/groups/list"))["groups"]}
    assert groups["team-a"]["members"] == ["nobody"]

    shared = ui["shared"]
    put = post("/admin/grants/put", subject="group:team-a", resource=f"experiment:{shared}", permission="EDIT",
               back=f"/admin/grants?experiment_id={shared}")
    assert put.status_code == 303
    assert put.headers["location"] == f"/admin/grants?experiment_id={shared}&done=grant"
    # Who can see the experiment, and why: the reader through its own grant, nobody through team-a.
    who = admin.get("/admin/grants", params={"experiment_id": shared}).text
    audience = dict(re.findall(r"<tr><td class=\"wrap\">(\w+)</td>\s*<td><span class=\"pill\">(\w+)</span>", who))
    assert audience["reader"] == "READ"
    assert audience["nobody"] == "EDIT"
    assert "carol" not in audience
    assert "group:team-a" in who
    nobody = sign_in(ui["app"], "nobody", "Reset-By-Admin-8812")  # membership changes end sessions
    assert "shared-exp" in nobody.get("/").text
    changed = post("/admin/grants/put", subject="group:team-a", resource=f"experiment:{shared}", permission="READ")
    assert changed.status_code == 303
    assert post("/admin/grants/revoke", subject="group:team-a", resource=f"experiment:{shared}").status_code == 303
    assert "shared-exp" not in nobody.get("/").text
    bad = post("/admin/grants/put", subject="user:ghost", resource="experiment:1", permission="READ")
    assert bad.status_code == 400
    assert "ghost" in bad.text
    # An open redirect through the form's "back" field is not possible.
    away = post("/admin/grants/put", subject="group:team-a", resource="experiment:1", permission="READ",
                back="//evil.example/admin/grants")
    assert away.headers["location"].startswith("/admin/grants?")

    # Every change above is in the audit log, filterable by principal, action and outcome.
    audit = admin.get("/admin/audit", params={"action": "grant"}).text
    assert "group:team-a experiment:" in audit
    assert "user.create" not in audit
    created = admin.get("/admin/audit", params={"action": "user.create", "actor": "admin"}).text
    assert "carol" in created
    assert "ci-bot" in created
    assert "No records match." in admin.get("/admin/audit", params={"actor": "nobody-at-all"}).text
    assert admin.get("/admin/audit", params={"since": "yesterday"}).status_code == 400


def test_audit_log_pages_newest_first(ui):
    api, admin = ui["api"], ui["admin"]()
    for i in range(60):
        ok(api.post("/api/2.0/mlgate/groups/create", json={"name": f"g{i:02d}"}))
    first = admin.get("/admin/audit", params={"action": "group.create"}).text
    assert first.index(">g59<") < first.index(">g58<")  # newest first
    assert ">g09<" not in first
    assert ">g10<" in first
    older = re.search(r'href="(/admin/audit\?[^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    second = admin.get(older).text
    assert ">g09<" in second
    assert ">g00<" in second
    assert ">g10<" not in second
    assert 'rel="next"' not in second


def test_policy_page_shows_the_loaded_file_and_its_source(ui, tmp_path, app_factory):
    from gateway.ui.admin import remember_policy_file

    policy = tmp_path / "access.yaml"
    loaded = (b"access:\n  grants:\n    - {principal: \"group:ml\", resource: \"experiment-name:ml/*\", "
              b"permission: READ}\n")
    policy.write_bytes(loaded)
    app = app_factory(policy_file=str(policy))
    with TestClient(app, base_url=BASE):
        admin = sign_in(app, "admin", TEST_ADMIN_PASSWORD)
        page = admin.get("/admin/policy").text
        assert str(policy) in page
        assert "experiment-name:ml/*" in page
        assert hashlib.sha256(loaded).hexdigest() in page
        assert 'class="notice"' not in page
        # The file changes on disk after start: the page still shows what was loaded, and warns.
        policy.write_text("access:\n  grants: []\n")
        page = admin.get("/admin/policy").text
        assert "experiment-name:ml/*" in page
        assert hashlib.sha256(loaded).hexdigest() in page
        assert "The file on disk has changed since the server loaded it" in page
        assert hashlib.sha256(policy.read_bytes()).hexdigest() in page
        # Gone from disk: still the loaded text, with a note.
        policy.unlink()
        page = admin.get("/admin/policy").text
        assert "experiment-name:ml/*" in page
        assert "The file cannot be read now" in page
        # Replaced between loading and keeping its bytes: the page does not claim the new text was loaded.
        policy.write_text("access:\n  grants: []\n")
        remember_policy_file(app)
        page = admin.get("/admin/policy").text
        assert "experiment-name:ml/*" not in page
        assert "The file changed while the server was starting" in page
    assert "built-in secure defaults" in ui["admin"]().get("/admin/policy").text


def test_long_account_lists_paginate(ui):
    admin = ui["admin"]()
    token = csrf_of(admin.get("/admin").text)
    for i in range(100):
        ui["app"].state.accounts.create_user(None, f"svc-{i:03d}", None, client=None, service_account=True)
    first = admin.get("/admin").text
    assert ">svc-096<" in first  # admin, reader, nobody, then 97 service accounts
    assert ">svc-097<" not in first
    second_url = re.search(r'href="(/admin\?page=2)" rel="next"', first).group(1)
    second = admin.get(second_url).text
    assert ">svc-097<" in second
    assert ">svc-099<" in second
    assert '<td class="wrap">admin <span class="pill">admin</span>' in first
    assert '<td class="wrap">admin <span class="pill">admin</span>' not in second
    assert 'rel="next"' not in second
    assert token  # the form token of the listing page stays usable across pages
    assert csrf_of(second) == token


def test_who_can_see_leaves_out_disabled_accounts_lists_admins_apart_and_says_when_cut(ui, monkeypatch):
    from gateway.ui import admin as admin_pages

    admin, shared, hidden = ui["admin"](), ui["shared"], ui["hidden"]

    def audience(html: str) -> dict:
        table = html.split('<table class="audience">')[1].split("</table>")[0]
        return dict(re.findall(r"<tr><td class=\"wrap\">([\w-]+)</td>\s*<td><span class=\"pill\">(\w+)</span>", table))

    token = csrf_of(admin.get("/admin").text)
    granted = admin.post("/admin/grants/put", data={"csrf_token": token, "subject": "user:nobody",
                                                    "resource": f"experiment:{shared}", "permission": "EDIT"})
    assert granted.status_code == 303
    page = admin.get("/admin/grants", params={"experiment_id": shared}).text
    assert audience(page) == {"reader": "READ", "nobody": "EDIT"}  # the admin is not a row: listed apart
    assert 'Administrators see everything: <span class="pill">admin</span>' in page
    assert "Nobody but administrators." not in page
    assert "disabled account" not in page
    # A disabled account keeps its grant but cannot use it: not listed as having access, only counted.
    assert admin.post("/admin/users/update", data={"csrf_token": token, "username": "nobody",
                                                   "action": "disable"}).status_code == 303
    page = admin.get("/admin/grants", params={"experiment_id": shared}).text
    assert audience(page) == {"reader": "READ"}
    assert "1 disabled account not listed" in page
    # An experiment only administrators may see says so.
    page = admin.get("/admin/grants", params={"experiment_id": hidden}).text
    assert audience(page) == {}
    assert "Nobody but administrators." in page
    assert "Only the first" not in page
    # The explanation is capped; the page says how many accounts it checked.
    monkeypatch.setattr(admin_pages, "MAX_EXPLAINED_ACCOUNTS", 2)
    page = admin.get("/admin/grants", params={"experiment_id": shared}).text
    assert "Only the first 2 of 3 accounts were checked" in page
    assert audience(page) == {"reader": "READ"}


def test_make_admin_and_the_audit_outcome_and_time_filters(ui):
    admin = ui["admin"]()
    token = csrf_of(admin.get("/admin").text)
    made = admin.post("/admin/users/update", data={"csrf_token": token, "username": "reader", "action": "make_admin"})
    assert made.status_code == 303
    reader = sign_in(ui["app"], "reader", READER_PASSWORD)
    assert 'href="/admin"' in reader.get("/").text
    assert "hidden-exp" in reader.get("/").text  # an administrator sees every experiment
    assert reader.get("/admin").status_code == 200
    undone = admin.post("/admin/users/update", data={"csrf_token": token, "username": "reader",
                                                     "action": "remove_admin"})
    assert undone.status_code == 303
    reader = sign_in(ui["app"], "reader", READER_PASSWORD)
    assert reader.get("/admin").status_code == 403
    assert "hidden-exp" not in reader.get("/").text
    # The audit log: outcome and time filters, both ways.
    TestClient(ui["app"], base_url=BASE).get(f"{A}/experiments/search", auth=("reader", "wrong-password"))

    def outcomes(**filters) -> list[str]:
        page = admin.get("/admin/audit", params=filters)
        assert page.status_code == 200
        return re.findall(r'<span class="status outcome-(\w+)">', page.text)

    assert set(outcomes(actor="admin", action="user.admin", outcome="success")) == {"success"}
    assert len(outcomes(actor="admin", action="user.admin")) == 2
    assert outcomes(actor="reader", action="login", outcome="failure") == ["failure"]
    assert set(outcomes(actor="reader", action="login", outcome="success")) == {"success"}
    assert outcomes(actor="admin", action="user.admin", outcome="denied") == []
    assert len(outcomes(actor="admin", action="user.admin", since="2000-01-01T00:00")) == 2
    assert outcomes(actor="admin", action="user.admin", until="2000-01-01T00:00") == []
    assert outcomes(actor="admin", action="user.admin", since="2100-01-01T00:00") == []


def test_reloading_the_page_that_shows_a_new_token_creates_no_second_token_nor_shows_it_again(ui):
    # Issue #19: the create form re-rendered the page, so a reload posted the form again (a second token).
    reader = ui["reader"]()
    posted = reader.post("/account/tokens/create",
                         data={"csrf_token": csrf_of(reader.get("/account").text), "name": "laptop", "days": "7"})
    assert posted.status_code == 303
    shown = reader.get("/account")
    secret = re.search(r"export MLFLOW_TRACKING_TOKEN=(mlg_[A-Za-z0-9_\-]+)", shown.text).group(1)
    reloaded = reader.get("/account")  # what a reload of the shown page does after a redirect-after-post
    assert secret not in reloaded.text
    assert "export MLFLOW_TRACKING_TOKEN=" not in reloaded.text
    assert [t["name"] for t in _tokens(ui["api"], "reader")] == ["laptop"]
    # The cookie carrying it is sealed to the session: replayed in another session of the same user, it shows
    # nothing (and it is never readable: AES-GCM).
    other = ui["reader"]()
    again = reader.post("/account/tokens/create",
                        data={"csrf_token": csrf_of(reader.get("/account").text), "name": "desk", "days": "7"})
    sealed = again.cookies.get("mlgate_new_token")
    assert sealed
    assert "mlg_" not in sealed
    other.cookies.set("mlgate_new_token", sealed, path="/account")
    assert "export MLFLOW_TRACKING_TOKEN=" not in other.get("/account").text


@pytest.mark.parametrize("form", ["create", "bad-revoke", "bad-password"])
def test_the_account_page_re_rendered_by_a_form_lists_only_what_the_user_may_see(ui, form):
    # Issue #18 (5): these forms re-render the page; it listed every experiment when no scope was set.
    reader = ui["reader"]()
    token = csrf_of(reader.get("/account").text)
    if form == "create":
        posted = reader.post("/account/tokens/create", data={"csrf_token": token, "name": "laptop", "days": "7"})
        assert posted.status_code == 303
        page = reader.get(posted.headers["location"])
        assert "export MLFLOW_TRACKING_TOKEN=" in page.text
    elif form == "bad-revoke":
        page = reader.post("/account/tokens/revoke", data={"csrf_token": token, "token_id": "no-such-token"})
        assert page.status_code == 400
    else:
        page = reader.post("/account/password", data={"csrf_token": token, "current_password": "not-it",
                                                      "new_password": "x" * 20, "repeat_password": "y" * 20})
        assert page.status_code == 400
    assert "shared-exp" in page.text
    assert "hidden-exp" not in page.text
