"""An LDAP account is never taken over by a same-named single sign-on identity (a real slapd, a migrated
database): its password is the directory's, so ``link_existing_users: passwordless`` does not see it as an
account "without a password". Only ``any``, which also links accounts with a password, links it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from auth.ldap import DirectoryRefused, LdapDirectory
from auth.ldap_accounts import LdapSignIn
from auth.oidc import NotAllowed
from auth.oidc_accounts import OidcAccounts, ProviderIdentity
from auth.store import IdentityStore
from gateway.db import upgrade_database
from policies.file.ldap import LdapConfig
from policies.file.oidc import OidcProvider
from tests.ldap.slapd import ML_TEAM, PEOPLE, SERVICE_DN, SERVICE_PASSWORD, USERS, Slapd
from tracking.db.engine import make_engine


@pytest.fixture
def engine(tmp_path) -> Iterator:
    engine = make_engine(f"sqlite:///{tmp_path / 'auth.db'}")
    upgrade_database(engine)
    yield engine
    engine.dispose()


def _sign_in(slapd: Slapd, engine, name: str):
    config = LdapConfig.model_validate({
        "url": slapd.ldaps_url, "ca_file": str(slapd.ca_file), "bind_dn": SERVICE_DN,
        "bind_password_file": "/nonexistent", "user_search_base": PEOPLE, "group_map": {ML_TEAM: "ml-team"}})
    return LdapSignIn(LdapDirectory(config, SERVICE_PASSWORD), engine).sign_in(name, USERS[name]).user


def _sso(setting: str, username: str) -> tuple[OidcProvider, ProviderIdentity]:
    provider = OidcProvider(name="corp", issuer="https://idp.example.com", client_id="mlgate",
                            link_existing_users=setting)
    # preferred_username is a claim the person may choose (Dex, GitHub): the name alone proves nothing.
    return provider, ProviderIdentity("corp", "someone-else", username, "x@example.com", frozenset())


def test_a_passwordless_link_never_takes_over_a_directory_account(slapd, engine):
    alice = _sign_in(slapd, engine, "alice")
    assert IdentityStore(engine).groups_of(alice.id) == {"ml-team"}
    with pytest.raises(NotAllowed, match="already exists and is not linked"):
        OidcAccounts(engine).provision(*_sso("passwordless", "alice"))
    # Nothing was linked: the directory still signs alice in to her account, which has no SSO identity.
    assert _sign_in(slapd, engine, "alice").id == alice.id
    with pytest.raises(NotAllowed):
        OidcAccounts(engine).provision(*_sso("passwordless", "alice"))


def test_any_links_a_directory_account_as_it_links_one_with_a_password(slapd, engine):
    bob = _sign_in(slapd, engine, "bob")
    assert OidcAccounts(engine).provision(*_sso("any", "bob")).id == bob.id


@pytest.mark.parametrize("spelling", ["mal:admin", "mal\x1b[2Kadmin", " admin"])
def test_a_directory_name_mlgate_cannot_hold_is_refused_not_provisioned(slapd, engine, spelling):
    # The account name is the entry's username_attribute, which the directory's administrators (or a
    # self-service profile page) set: a colon cannot round-trip through Basic auth, control characters would
    # forge log lines, surrounding spaces would show as another account's name.
    uid = f"odd-{abs(hash(spelling)) % 10**8}"
    with slapd.admin() as conn:
        conn.add(f"uid={uid},{PEOPLE}", ["inetOrgPerson"],
                 {"uid": uid, "cn": spelling, "sn": uid, "userPassword": "odd-directory-password-1"})
    config = LdapConfig.model_validate({
        "url": slapd.ldaps_url, "ca_file": str(slapd.ca_file), "bind_dn": SERVICE_DN,
        "bind_password_file": "/nonexistent", "user_search_base": PEOPLE, "username_attribute": "cn"})
    sign_in = LdapSignIn(LdapDirectory(config, SERVICE_PASSWORD), engine)
    with pytest.raises(DirectoryRefused, match="not a valid mlgate account name"):
        sign_in.sign_in(uid, "odd-directory-password-1")
    assert IdentityStore(engine).source_of(spelling) is None
