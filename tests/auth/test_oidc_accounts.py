"""Just-in-time users: linked by subject, groups replaced or added at each login, admin by group."""

from __future__ import annotations

import pytest

from auth.accounts import Accounts
from auth.grants import list_grants, put_grant
from auth.oidc import NotAllowed
from auth.oidc_accounts import OidcAccounts, ProviderIdentity, check_allowed, identity_from_claims
from auth.passwords import PasswordHasher
from auth.principal import Principal
from auth.store import IdentityStore
from policies.file.oidc import OidcProvider


def provider(**overrides) -> OidcProvider:
    return OidcProvider(**{"name": "corp", "issuer": "https://idp.example.com", "client_id": "mlgate", **overrides})


def store_hash(password: str | None) -> str | None:
    """A password hash (cheap rounds) for a local account, or None for a passwordless one."""
    return None if password is None else PasswordHasher(rounds=4, min_length=8).hash(password)


def who(groups: set[str], username: str = "alice", subject: str = "sub-1") -> ProviderIdentity:
    return ProviderIdentity("corp", subject, username, "alice@example.com", frozenset(groups))


def test_replace_mode_makes_groups_exactly_the_providers_at_each_login(engine):
    accounts, store = OidcAccounts(engine), IdentityStore(engine)
    user = accounts.provision(provider(), who({"team-a", "readers"}))
    assert store.groups_of(user.id) == {"team-a", "readers"}
    again = accounts.provision(provider(), who({"team-b"}))
    assert again.id == user.id
    assert store.groups_of(user.id) == {"team-b"}
    # The change ends cached identities and older sessions of the user.
    assert again.generation > user.generation


def test_additive_mode_only_adds_groups(engine):
    accounts, store = OidcAccounts(engine), IdentityStore(engine)
    user = accounts.provision(provider(group_sync="additive"), who({"team-a"}))
    accounts.provision(provider(group_sync="additive"), who({"team-b"}))
    assert store.groups_of(user.id) == {"team-a", "team-b"}


def test_an_unchanged_login_keeps_sessions_alive(engine):
    accounts = OidcAccounts(engine)
    first = accounts.provision(provider(), who({"team-a"}))
    assert accounts.provision(provider(), who({"team-a"})).generation == first.generation


def test_admin_groups_grant_and_revoke_admin_at_login(engine):
    accounts = OidcAccounts(engine)
    cfg = provider(admin_groups=("mlgate-admins",))
    assert accounts.provision(cfg, who({"mlgate-admins"})).is_admin
    assert not accounts.provision(cfg, who({"team-a"})).is_admin


def test_users_are_matched_by_subject_not_name(engine):
    accounts = OidcAccounts(engine)
    alice = accounts.provision(provider(), who(set()))
    # The provider renamed the account: same subject, same mlgate user.
    assert accounts.provision(provider(), who(set(), username="alice2")).id == alice.id
    # Another subject claiming the taken name is refused.
    with pytest.raises(NotAllowed, match="already exists and is not linked"):
        accounts.provision(provider(), who(set(), subject="sub-2"))


def test_an_existing_local_user_is_linked_only_when_configured(engine):
    store, accounts = IdentityStore(engine), OidcAccounts(engine)
    local = store.create_user("alice", None)
    with pytest.raises(NotAllowed):
        accounts.provision(provider(), who(set()))
    assert accounts.provision(provider(link_existing_users=True), who({"team-a"})).id == local.id


@pytest.mark.parametrize(("password", "admin", "setting", "linked"), [
    (None, False, "passwordless", True),
    ("a-long-local-password-1", False, "passwordless", False),  # the name is a claim the user may choose
    (None, True, "passwordless", False),
    ("a-long-local-password-1", True, "any", True),
    (None, False, "never", False),
])
def test_only_plain_passwordless_accounts_are_linked_unless_any_is_configured(engine, password, admin, setting,
                                                                                linked):
    store, accounts = IdentityStore(engine), OidcAccounts(engine)
    local = store.create_user("alice", store_hash(password), is_admin=admin)
    cfg = provider(link_existing_users=setting)
    if linked:
        assert accounts.provision(cfg, who(set())).id == local.id
    else:
        with pytest.raises(NotAllowed, match="already exists and is not linked"):
            accounts.provision(cfg, who(set()))


def test_a_disabled_user_cannot_sign_in_and_nothing_changes(engine):
    store, accounts = IdentityStore(engine), OidcAccounts(engine)
    user = accounts.provision(provider(), who({"team-a"}))
    store.update_user(user.id, disabled=True)
    with pytest.raises(NotAllowed, match="disabled"):
        accounts.provision(provider(), who({"team-b"}))
    assert store.groups_of(user.id) == {"team-a"}


def test_service_accounts_are_created_once_and_never_collide_with_users(engine):
    store, accounts = IdentityStore(engine), OidcAccounts(engine)
    bot = accounts.service_account("ci-bot")
    assert bot.kind == "service"
    assert bot.password_hash is None
    assert accounts.service_account("ci-bot").id == bot.id
    store.create_user("human", None)
    with pytest.raises(NotAllowed, match="not a service account"):
        accounts.service_account("human")


@pytest.mark.parametrize(("claims", "message"), [
    ({"sub": "s"}, "no usable 'preferred_username' claim"),
    ({"sub": "s", "preferred_username": "a b"}, "no usable"),
    ({"sub": "s", "preferred_username": "x:y"}, "no usable"),
])
def test_claims_without_a_usable_name_are_refused(claims, message):
    with pytest.raises(NotAllowed, match=message):
        identity_from_claims(provider(), claims)


def test_claims_are_read_from_the_configured_names_and_bad_groups_dropped():
    cfg = provider(claims={"username": "email", "groups": "roles"})
    found = identity_from_claims(cfg, {"sub": "s", "email": "a@x.org", "roles": ["ok", "has space", 7, "a:b"]})
    assert found.username == "a@x.org"
    assert found.groups == {"ok"}


def test_group_names_mlgate_cannot_hold_are_renamed_by_the_provider_map():
    # Okta-style names with spaces and Dex-style org:team names: mapped, they count (also for allowed_groups).
    cfg = provider(group_names={"ML Engineers": "ml-engineers", "acme:data": "acme-data"},
                   allowed_groups=["ml-engineers"])
    found = identity_from_claims(cfg, {"sub": "s", "preferred_username": "alice",
                                       "groups": ["ML Engineers", "acme:data", "Other Team", "plain"]})
    assert found.groups == {"ml-engineers", "acme-data", "plain"}
    check_allowed(cfg, found)  # in an allowed group through the map
    with pytest.raises(NotAllowed):
        check_allowed(cfg, identity_from_claims(cfg, {"sub": "t", "preferred_username": "bob",
                                                      "groups": ["Other Team"]}))


def test_allowed_email_domains_need_a_verified_address():
    cfg = provider(allowed_email_domains=("example.com",))
    base = {"sub": "s", "preferred_username": "a"}
    check_allowed(cfg, identity_from_claims(cfg, {**base, "email": "a@Example.com", "email_verified": True}))
    for claims in ({"email": "a@evil.com", "email_verified": True}, {"email": "a@example.com", "email_verified": False},
                   {"email": "a@example.com"}, {"email": "a@example.com", "email_verified": "true"}, {}):
        with pytest.raises(NotAllowed, match="not in a domain"):
            check_allowed(cfg, identity_from_claims(cfg, {**base, **claims}))


def test_a_provider_trusted_with_unverified_addresses_is_taken_at_its_word():
    cfg = provider(allowed_email_domains=("example.com",), trust_unverified_email=True)
    check_allowed(cfg, identity_from_claims(cfg, {"sub": "s", "preferred_username": "a", "email": "a@example.com"}))


def test_a_user_deleted_and_signed_in_again_by_name_starts_with_nothing(engine, identity):
    # Issue #18, finding 2: accounts are made from preferred_username whenever the name is free, so a new
    # person claiming a deleted account's name signs in as a fresh account; on main it inherited every
    # stored grant of the deleted one (its owner grants included).
    accounts = OidcAccounts(engine)
    first = accounts.provision(provider(), who({"team-a"}, subject="sub-old"))
    with engine.begin() as conn:
        put_grant(conn, "user:alice", "experiment:7", "MANAGE", source="owner")
        put_grant(conn, "user:alice", "model-name:alice-*", "EDIT")
    admin = Principal(id=0, kind="user", name="root-test", is_admin=True, groups=frozenset(), auth_method="basic")
    Accounts(identity).delete_user(admin, "alice", client=None)

    second = accounts.provision(provider(), who(set(), subject="sub-new"))
    assert second.id > first.id
    assert accounts.linked_user("corp", "sub-old") is None  # the old provider link went with the account
    with engine.connect() as conn:
        assert list_grants(conn, subject="user:alice") == []
    assert IdentityStore(engine).groups_of(second.id) == frozenset()


def test_a_missing_groups_claim_is_named_as_a_configuration_problem():
    """No groups claim at all (the "groups" scope not requested): say so, not "not in a group"."""
    cfg = provider(allowed_groups=["ml-team"])
    with pytest.raises(NotAllowed) as missing:
        check_allowed(cfg, identity_from_claims(cfg, {"sub": "s", "preferred_username": "alice"}))
    assert missing.value.message == (
        "The identity provider sent no 'groups' claim, so mlgate cannot check your groups. An administrator "
        "must add the \"groups\" scope to this provider's scopes in mlgate's policy file (auth.oidc.providers) "
        "or a groups mapper at the provider.")
    # An empty claim is the provider's word: the person is in no allowed group.
    with pytest.raises(NotAllowed, match="not in a group that may use mlgate"):
        check_allowed(cfg, identity_from_claims(cfg, {"sub": "s", "preferred_username": "alice", "groups": []}))


@pytest.mark.parametrize("other_provider", [False, True])
def test_passwordless_linking_never_hands_one_persons_account_to_another_subject(engine, other_provider):
    # "alice" signed in (or sent an API token, provision_from_api_tokens) and works in her account. A second
    # subject whose name claim is also "alice" (a recycled or self-chosen name, or another provider's user)
    # must not be linked to it: passwordless links accounts an administrator made for the person, not
    # accounts that already belong to an identity.
    store, accounts = IdentityStore(engine), OidcAccounts(engine)
    cfg = provider(link_existing_users="passwordless")
    alice = accounts.provision(cfg, who({"team-a"}))
    other = ProviderIdentity("partner" if other_provider else "corp", "sub-2", "alice", None, frozenset())
    with pytest.raises(NotAllowed, match="already exists and is not linked"):
        accounts.provision(provider(name=other.provider, link_existing_users="passwordless"), other)
    assert accounts.linked_user(other.provider, "sub-2") is None
    assert store.groups_of(alice.id) == {"team-a"}
    # "any" still links by name alone, as documented (names are claims; the operator chose it).
    assert accounts.provision(provider(name=other.provider, link_existing_users="any"), other).id == alice.id
