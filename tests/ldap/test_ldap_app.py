"""auth.ldap at the edges of an app: refused configurations at startup, and a directory that cannot be asked (503)."""

from __future__ import annotations

import base64
import logging
import re
import socket
import subprocess
import sys

import pytest
import yaml
from starlette.testclient import TestClient

from gateway.settings import SettingsError
from tests.conftest import TEST_ADMIN_TOKEN
from tests.ldap.slapd import PEOPLE, SERVICE_DN, SERVICE_PASSWORD, USERS, Slapd
from tests.ldap.test_ldap_server import BIND_PASSWORD_VARIABLE, ldap_section

BASE = "http://127.0.0.1:5000"
API = "/api/2.0/mlflow/experiments/search?max_results=1"


def basic(username: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


@pytest.fixture
def build(app_factory, tmp_path, monkeypatch):
    """An app whose policy file has this ``auth.ldap`` section."""
    monkeypatch.setenv(BIND_PASSWORD_VARIABLE, SERVICE_PASSWORD)

    def make(section: dict):
        path = tmp_path / "policy.yaml"
        path.write_text(yaml.safe_dump({"version": 1, "auth": {"ldap": section}}))
        return app_factory(policy_file=str(path))

    return make


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def audit_reasons(app) -> list[str]:
    return [r["reason"] or "" for r in app.state.identity.store.audit_records()]


@pytest.mark.parametrize("broken", ["down", "wrong_ca"])
def test_a_directory_that_cannot_be_asked_is_a_503_never_a_sign_in(build, slapd: Slapd, broken):
    section = (ldap_section(slapd, url=f"ldaps://localhost:{closed_port()}") if broken == "down"
               else ldap_section(slapd, ca_file=str(slapd.other_ca_file)))
    app = build(section)
    with TestClient(app, base_url=BASE) as client:
        response = client.get(API, headers=basic("alice", USERS["alice"]))
        assert response.status_code == 503
        assert response.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
        assert "LDAP" in response.json()["message"]
        assert response.headers["Retry-After"] == "5"
        assert SERVICE_PASSWORD not in response.text
        assert USERS["alice"] not in response.text
        page = client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        form = client.post("/login", data={"csrf_token": token, "username": "alice", "password": USERS["alice"]},
                           headers={"Origin": BASE}, follow_redirects=False)
        assert form.status_code == 503
        assert "mlgate_session" not in form.cookies
    reasons = audit_reasons(app)
    assert any(r.startswith("basic: ldap unavailable:") for r in reasons)
    assert any(r.startswith("form: ldap unavailable:") for r in reasons)
    assert not any(SERVICE_PASSWORD in r or USERS["alice"] in r for r in reasons)


def test_local_accounts_still_sign_in_while_the_directory_is_down(build, slapd):
    from tests.conftest import TEST_ADMIN_PASSWORD, TEST_ADMIN_USERNAME

    with TestClient(build(ldap_section(slapd, url=f"ldaps://localhost:{closed_port()}")), base_url=BASE) as client:
        assert client.get(API, headers=basic(TEST_ADMIN_USERNAME, TEST_ADMIN_PASSWORD)).status_code == 200


def test_plain_ldap_is_refused_at_startup_unless_insecure(build, slapd, caplog):
    with pytest.raises(SettingsError) as refused:
        build(ldap_section(slapd, url=slapd.ldap_url, ca_file=None))
    assert any("auth.ldap: plain ldap:// would send passwords in the clear" in p for p in refused.value.problems)
    with caplog.at_level(logging.WARNING, logger="mlgate.identity"):
        app = build(ldap_section(slapd, url=slapd.ldap_url, ca_file=None, insecure=True))
    assert any("auth.ldap.insecure is true" in r.getMessage() for r in caplog.records)
    with TestClient(app, base_url=BASE) as client:
        assert client.get(API, headers=basic("alice", USERS["alice"])).status_code == 200
        # The administration page names where the account comes from.
        page = client.get("/admin", headers={"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"})
        assert page.status_code == 200
        row = re.search(r"<tr>\s*<td class=\"wrap\">alice</td>.*?</tr>", page.text, re.S)
        assert row is not None
        assert "<td>ldap</td>" in row.group(0)


def test_startup_lists_every_file_problem_at_once(build, slapd, tmp_path):
    empty = tmp_path / "empty-password"
    empty.write_text("")
    with pytest.raises(SettingsError) as refused:
        build(ldap_section(slapd, bind_password=None, bind_password_file=str(empty),
                           ca_file=str(tmp_path / "missing-ca.pem")))
    problems = "\n".join(refused.value.problems)
    assert "auth.ldap.ca_file:" in problems
    assert "auth.ldap.bind_password_file:" in problems


def validate(path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway.cli", "policy", "validate", str(path)],
                          capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": sys.path[0]},
                          check=False)


def test_policy_validate_lists_every_ldap_problem(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "auth": {"methods": ["bearer"], "ldap": {
        "url": "ldap://directory.example.org", "bind_dn": SERVICE_DN, "bind_password": "written-in-the-file",
        "user_search_base": PEOPLE, "user_filter": "(uid=alice)"}}}))
    done = validate(path)
    assert done.returncode == 1
    assert "auth.ldap.bind_password: a secret must be given as a ${ENV_VAR} reference" in done.stderr
    assert "auth.ldap.user_filter: must contain {username}" in done.stderr
    assert "written-in-the-file" not in done.stderr
    path.write_text(yaml.safe_dump({"version": 1, "auth": {"methods": ["bearer"], "ldap": {
        "url": "ldap://directory.example.org", "bind_dn": SERVICE_DN, "bind_password_file": "/run/secrets/ldap",
        "user_search_base": PEOPLE}}}))
    done = validate(path)
    assert done.returncode == 1
    assert "plain ldap:// would send passwords in the clear" in done.stderr
    # Checked once the section itself is valid (pydantic runs the auth-wide check only then).
    path.write_text(yaml.safe_dump({"version": 1, "auth": {"methods": ["bearer"], "ldap": {
        "url": "ldaps://directory.example.org", "ca_file": "/etc/ssl/ldap-ca.pem", "bind_dn": SERVICE_DN,
        "bind_password_file": "/run/secrets/ldap", "user_search_base": PEOPLE}}}))
    done = validate(path)
    assert done.returncode == 1
    assert "ldap needs the basic method (HTTP Basic) or the session method" in done.stderr


def test_a_directory_sign_in_costs_a_password_hash_like_a_local_one(build, slapd):
    """Unknown names go to the directory, local ones to bcrypt: both pay one hash verification, so timing does
    not tell which names have local accounts."""
    from tests.conftest import TEST_ADMIN_USERNAME

    app = build(ldap_section(slapd))
    hasher = app.state.identity.hasher
    with TestClient(app, base_url=BASE) as client:
        for name in (TEST_ADMIN_USERNAME, "nobody-in-the-directory", "alice"):
            before = hasher.verifications
            assert client.get(API, headers=basic(name, "not-the-password-1")).status_code == 401
            assert hasher.verifications == before + 1, name


# Spellings slapd matches to the entry uid=bob (its caseIgnoreMatch prepares strings with Unicode compatibility
# normalization, RFC 4518 section 2.3): fullwidth letters, mathematical alphanumerics, other letter case.
BOB_SPELLINGS = ("\uff42\uff4f\uff42", "\U0001d41bob", "b\U0001d428b", "\U0001d5bb\U0001d5c8\U0001d5bb",
                 "\uff22\uff2f\uff22")


def test_spellings_the_directory_treats_as_one_name_share_its_lockout(build, slapd: Slapd):
    app = build(ldap_section(slapd))
    with TestClient(app, base_url=BASE) as client:
        for spelling in BOB_SPELLINGS:
            assert client.get(API, headers=basic(spelling, "not-bobs-password")).status_code == 401
        # Each reached bob's entry (a wrong password, not an unknown name): the directory holds them as one.
        reasons = audit_reasons(app)
        assert sum("ldap: wrong password" in r for r in reasons) == len(BOB_SPELLINGS), reasons
        locked = client.get(API, headers=basic("bob", USERS["bob"]))
        assert locked.status_code == 429
        assert client.get(API, headers=basic("\U0001d41b\U0001d428\U0001d41b", USERS["bob"])).status_code == 429
