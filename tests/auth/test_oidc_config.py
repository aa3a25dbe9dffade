"""The auth.oidc section: every problem listed, each naming its key; secrets only by ${ENV} reference."""

from __future__ import annotations

import pytest
import yaml

from policies.file.loader import load_policy_text
from policies.file.problems import PolicyFileError

VALID = {"name": "corp", "issuer": "https://idp.example.com/realms/ml", "client_id": "mlgate",
         "client_secret": "${CORP_SECRET}"}


def problems(provider: dict, environ: dict | None = None) -> list[str]:
    text = yaml.safe_dump({"version": 1, "auth": {"oidc": {"providers": [provider]}}})
    try:
        load_policy_text(text, environ if environ is not None else {"CORP_SECRET": "s3cret"})
    except PolicyFileError as exc:
        return exc.problems
    return []


def test_a_valid_provider_loads_with_secure_defaults():
    policy = load_policy_text(f"""
version: 1
auth:
  oidc:
    providers:
      - {{name: corp, issuer: "{VALID['issuer']}", client_id: mlgate, client_secret: "${{CORP_SECRET}}"}}
""", {"CORP_SECRET": "s3cret"})
    corp = policy.auth.oidc.provider("corp")
    assert corp.client_secret.get_secret_value() == "s3cret"
    assert corp.algorithms == ("RS256", "PS256", "ES256")
    assert corp.group_sync == "replace"
    assert "openid" in corp.scopes
    assert corp.label == "corp"
    assert corp.link_existing_users == "never"
    assert corp.trust_unverified_email is False
    assert "s3cret" not in repr(policy)


P = "auth.oidc.providers[0]"


@pytest.mark.parametrize(("changes", "expected"), [
    ({"client_secret": "literal"}, f"{P}.client_secret: a secret must be given as a ${{ENV_VAR}} reference, "
                                   "not written in the file"),
    ({"client_secret": "${NOT_SET}"}, f"{P}.client_secret: environment variable NOT_SET is not set"),
    ({"name": "Corp SSO"}, f"{P}.name: 'Corp SSO' is not a provider name (lowercase letters, digits, '-', at most 32)"),
    ({"issuer": "http://idp.example.com"}, f"{P}.issuer: 'http://idp.example.com' must use https (http is accepted "
                                           "only for a loopback address)"),
    ({"issuer": "ftp://idp"}, f"{P}.issuer: 'ftp://idp' is not an http(s) URL"),
    ({"scopes": ["profile"]}, f"{P}.scopes: must include openid"),
    ({"algorithms": ["HS256", "none"]}, f"{P}.algorithms: not allowed: 'HS256', 'none' (only RS256, RS384, RS512, "
                                        "PS256, PS384, PS512, ES256, ES384, ES512, EdDSA)"),
    ({"group_sync": "sometimes"}, f"{P}.group_sync: Input should be 'replace' or 'additive'"),
    ({"allowed_email_domains": ["Example.COM"]}, f"{P}.allowed_email_domains: not lowercase domain names: "
                                                 "'Example.COM'"),
    ({"service_accounts": {"ci-bot": "ci-bot"}}, f"{P}: service_accounts needs audience (machine tokens are checked "
                                                 "against it)"),
    ({"provision_from_api_tokens": True}, f"{P}: provision_from_api_tokens needs audience (API tokens are checked "
                                          "against it)"),
    ({"leeway_seconds": 3600}, f"{P}.leeway_seconds: Input should be less than or equal to 300"),
    ({"revalidate_seconds": 1}, f"{P}.revalidate_seconds: Input should be greater than or equal to 5"),
    ({"claims": {"groups": "bad claim"}}, f"{P}.claims.groups: 'bad claim' is not a claim name"),
    ({"surprise": 1}, f"{P}.surprise: is not a known key"),
    ({"audience": "mlgate"}, f"{P}: audience must differ from client_id (ID tokens carry the client id as their "
                             "audience)"),
    ({"allowed_groups": ["ML Engineers"]}, f"{P}.allowed_groups: 'ML Engineers' is not a valid name (1-256 "
                                           "characters, no spaces, ':' or control characters); map the provider's "
                                           "name to one in group_names"),
    ({"group_names": {"ML Engineers": "ml engineers"}}, f"{P}.group_names: 'ml engineers' is not a valid name "
                                                        "(1-256 characters, no spaces, ':' or control characters)"),
    ({"link_existing_users": "always"}, f"{P}.link_existing_users: Input should be 'never', 'passwordless' or "
                                        "'any'"),
])
def test_each_problem_names_its_key(changes, expected):
    assert problems({**VALID, **changes}) == [expected]


def test_every_problem_is_listed_at_once():
    found = problems({**VALID, "name": "X", "scopes": ["email"], "client_secret": "plain"})
    assert len(found) == 3


def test_provider_names_are_unique():
    text = yaml.safe_dump({"version": 1, "auth": {"oidc": {"providers": [VALID, dict(VALID)]}}})
    with pytest.raises(PolicyFileError) as exc:
        load_policy_text(text, {"CORP_SECRET": "x"})
    assert exc.value.problems == ["auth.oidc.providers: provider names must be unique: corp"]


def test_providers_need_a_method_that_can_carry_their_logins():
    text = yaml.safe_dump({"version": 1, "auth": {"methods": ["basic"], "oidc": {"providers": [VALID]}}})
    with pytest.raises(PolicyFileError) as exc:
        load_policy_text(text, {"CORP_SECRET": "x"})
    assert exc.value.problems == ["auth: oidc providers need the session method (browser sign-in) or the bearer "
                                  "method (machine tokens) in methods"]


def test_link_existing_users_true_links_only_passwordless_accounts():
    assert load_policy_text(yaml.safe_dump({"version": 1, "auth": {"oidc": {"providers": [
        {**VALID, "link_existing_users": True}]}}}), {"CORP_SECRET": "x"}).auth.oidc.providers[0] \
        .link_existing_users == "passwordless"


def test_two_providers_side_by_side_but_only_one_per_issuer_takes_machine_tokens():
    second = {**VALID, "name": "corp-web", "client_id": "mlgate-web"}
    both = yaml.safe_dump({"version": 1, "auth": {"oidc": {"providers": [VALID, second]}}})
    assert [p.name for p in load_policy_text(both, {"CORP_SECRET": "x"}).auth.oidc.providers] == ["corp", "corp-web"]
    machines = yaml.safe_dump({"version": 1, "auth": {"oidc": {"providers": [
        {**VALID, "audience": "api"}, {**second, "audience": "api-2"}]}}})
    with pytest.raises(PolicyFileError) as exc:
        load_policy_text(machines, {"CORP_SECRET": "x"})
    assert exc.value.problems == ["auth.oidc.providers: only one provider per issuer may set audience (machine "
                                  "tokens): https://idp.example.com/realms/ml"]


def test_turning_the_password_form_off_needs_a_provider():
    text = yaml.safe_dump({"version": 1, "auth": {"oidc": {"password_form": False}}})
    with pytest.raises(PolicyFileError) as exc:
        load_policy_text(text, {})
    assert exc.value.problems == ["auth.oidc: password_form: false needs at least one provider (nobody could sign "
                                  "in to the UI)"]
