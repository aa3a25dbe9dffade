"""auth.ldap against a real slapd: search-then-bind over LDAPS and StartTLS, groups, escaping, refusals."""

from __future__ import annotations

import socket

import pytest

from auth.ldap import DirectoryRefused, LdapDirectory, LdapUnavailable, escape_filter_value, normalize_dn
from policies.file.ldap import LdapConfig
from tests.ldap.slapd import GROUPS, ML_TEAM, OTHER_TEAM, PEOPLE, SERVICE_DN, SERVICE_PASSWORD, USERS, Slapd


def config(slapd: Slapd, **overrides) -> LdapConfig:
    values = {"url": slapd.ldaps_url, "ca_file": str(slapd.ca_file), "bind_dn": SERVICE_DN,
              "bind_password_file": "/nonexistent", "user_search_base": PEOPLE,
              "group_map": {ML_TEAM.upper(): "ml-team", OTHER_TEAM: "other-team"}}
    values.update(overrides)
    return LdapConfig.model_validate(values)


def directory(slapd: Slapd, password: str = SERVICE_PASSWORD, **overrides) -> LdapDirectory:
    return LdapDirectory(config(slapd, **overrides), password)


@pytest.mark.parametrize(("value", "escaped"), [
    ("alice", "alice"),
    ("*", r"\2a"),
    ("alice)(uid=*", r"alice\29\28uid=\2a"),
    ("a\\b", r"a\5cb"),
    ("al\x00ice", r"al\00ice"),
    ("jürgen", r"j\c3\bcrgen"),
    ("tab\there", r"tab\09here"),
])
def test_filter_values_are_escaped_as_rfc_4515_says(value, escaped):
    assert escape_filter_value(value) == escaped


def test_dns_compare_ignoring_case_and_spaces():
    assert normalize_dn("CN=ML-Team, OU=Groups,dc=Example,DC=org") == "cn=ml-team,ou=groups,dc=example,dc=org"


@pytest.mark.parametrize("transport", ["ldaps", "starttls"])
def test_a_directory_user_signs_in_with_its_mapped_groups(slapd, transport):
    overrides = {} if transport == "ldaps" else {"url": slapd.ldap_url, "start_tls": True}
    who = directory(slapd, **overrides).authenticate("alice", USERS["alice"])
    assert who.username == "alice"
    assert who.dn == f"uid=alice,{PEOPLE}"
    assert who.groups == frozenset({"ml-team"})


def test_groups_by_group_search_instead_of_member_of(slapd):
    ldap = directory(slapd, group_search_base=GROUPS, group_filter="(&(objectClass=groupOfNames)(member={dn}))")
    assert ldap.authenticate("bob", USERS["bob"]).groups == frozenset({"other-team"})
    assert ldap.authenticate("alice", USERS["alice"]).groups == frozenset({"ml-team"})


def test_the_directorys_spelling_of_the_name_is_the_account_name(slapd):
    assert directory(slapd).authenticate("ALICE", USERS["alice"]).username == "alice"


def test_a_non_ascii_name_is_found_through_its_escaped_bytes(slapd):
    assert directory(slapd).authenticate("jürgen", USERS["jürgen"]).username == "jürgen"


def test_wrong_password_unknown_user_and_empty_password_are_refused(slapd):
    ldap = directory(slapd)
    with pytest.raises(DirectoryRefused, match="wrong password"):
        ldap.authenticate("alice", "not-alices-password")
    with pytest.raises(DirectoryRefused, match="unknown user"):
        ldap.authenticate("nobody-here", USERS["alice"])
    # slapd here allows unauthenticated binds (allow bind_anon_dn): only mlgate's own check refuses this.
    with pytest.raises(DirectoryRefused, match="empty password"):
        ldap.authenticate("alice", "")


@pytest.mark.parametrize("username", [
    "al*",             # a wildcard: would match alice
    "*",               # every entry
    "alice)(uid=*",    # a second assertion: (&(objectClass=inetOrgPerson)(uid=alice)(uid=*))
    "\\61lice",        # \61 is an escaped "a": would match alice
    "alice\x00",       # a NUL ending the value early
    "alice)",          # an unbalanced parenthesis
])
def test_filter_injection_never_finds_another_users_entry(slapd, username):
    with pytest.raises(DirectoryRefused) as refused:
        directory(slapd).authenticate(username, USERS["alice"])
    assert refused.value.reason == "unknown user"


def test_an_unknown_user_costs_a_bind_like_a_wrong_password(slapd, monkeypatch):
    from ldap3 import Connection

    binds = []
    original = Connection.rebind

    def counting(self, *args, **kwargs):
        binds.append(kwargs.get("user"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Connection, "rebind", counting)
    ldap = directory(slapd)
    for name in ("alice", "nobody-here"):
        with pytest.raises(DirectoryRefused):
            ldap.authenticate(name, "not-the-password")
    assert len(binds) == 2
    assert binds[0] == f"uid=alice,{PEOPLE}"
    assert binds[1].startswith("cn=mlgate-no-such-user-")
    assert binds[1].endswith(PEOPLE)


def test_a_wrong_service_password_is_unavailable_not_a_sign_in(slapd):
    with pytest.raises(LdapUnavailable) as unavailable:
        directory(slapd, password="not-the-service-password").authenticate("alice", USERS["alice"])
    assert "service account" in unavailable.value.detail
    assert "not-the-service-password" not in unavailable.value.detail


def test_a_server_that_is_down_is_unavailable(slapd):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    with pytest.raises(LdapUnavailable):
        directory(slapd, url=f"ldaps://localhost:{port}").authenticate("alice", USERS["alice"])


def test_a_server_that_never_answers_times_out(slapd):
    from tests.services import SilentServer

    silent = SilentServer()
    try:
        ldap = directory(slapd, url=f"ldap://localhost:{silent.port}", start_tls=True,
                         connect_timeout_seconds=0.5, receive_timeout_seconds=1)
        import time

        started = time.monotonic()
        with pytest.raises(LdapUnavailable):
            ldap.authenticate("alice", USERS["alice"])
        assert time.monotonic() - started < 5
    finally:
        silent.close()


@pytest.mark.parametrize("transport", ["ldaps", "starttls"])
def test_a_certificate_from_another_ca_is_refused(slapd, transport):
    overrides = {} if transport == "ldaps" else {"url": slapd.ldap_url, "start_tls": True}
    with pytest.raises(LdapUnavailable):
        directory(slapd, ca_file=str(slapd.other_ca_file), **overrides).authenticate("alice", USERS["alice"])


def test_a_certificate_for_another_name_is_refused(slapd):
    # The certificate names localhost only; 127.0.0.1 is the same server under a name it does not carry.
    with pytest.raises(LdapUnavailable):
        directory(slapd, url=f"ldaps://127.0.0.1:{slapd.ldaps_port}").authenticate("alice", USERS["alice"])


def test_plain_ldap_works_only_when_insecure_is_said(slapd):
    with pytest.raises(ValueError, match="plain ldap://"):
        config(slapd, url=slapd.ldap_url, ca_file=None)
    ldap = directory(slapd, url=slapd.ldap_url, ca_file=None, insecure=True)
    assert ldap.authenticate("alice", USERS["alice"]).username == "alice"
