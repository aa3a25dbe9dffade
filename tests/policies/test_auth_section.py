"""The policy file's auth: section: defaults and every problem listed with its key."""

import pytest

from policies.file.auth import AuthConfig, AuthConfigError, load_auth_config


def test_defaults_are_secure():
    cfg = load_auth_config({})
    assert cfg.methods == ("session", "bearer", "basic")
    assert cfg.passwords.hash_rounds == 12
    assert cfg.passwords.min_length == 12
    assert cfg.lockout.user_max_failures == 5
    assert cfg.tokens.max_lifetime_days == 365


@pytest.mark.parametrize(
    ("data", "problems"),
    [
        ({"methods": []}, ["auth.methods: at least one method is required"]),
        ({"methods": ["basic", "basic"]}, ["auth.methods: a method is listed twice"]),
        ({"methods": ["Basic!"]}, ["auth.methods: not method names: 'Basic!'"]),
        ({"methods": ["trusted_header"]},
         ["auth: trusted_header is enabled but trusted_header.proxies is empty"]),
        ({"trusted_header": {"header": "Authorization"}},
         ["auth.trusted_header.header: 'Authorization' cannot carry a trusted identity"]),
        ({"trusted_header": {"proxies": ["10.0.0.0/8", "proxy.local"]}},
         ["auth.trusted_header.proxies: not IP addresses or networks: 'proxy.local'"]),
        ({"passwords": {"hash_rounds": 4, "min_length": 6}},
         ["auth.passwords.min_length: Input should be greater than or equal to 8",
          "auth.passwords.hash_rounds: Input should be greater than or equal to 10"]),
        ({"lockout": {"base_seconds": 60, "max_seconds": 10}},
         ["auth.lockout: max_seconds must be at least base_seconds"]),
        ({"sessions": {"idle_timeout_seconds": 7200, "absolute_timeout_seconds": 3600}},
         ["auth.sessions: absolute_timeout_seconds must be at least idle_timeout_seconds"]),
        ({"tokens": {"max_lifetime_days": 0}, "surprise": 1},
         ["auth.tokens.max_lifetime_days: Input should be greater than or equal to 1",
          "auth.surprise: Extra inputs are not permitted"]),
        ("basic", ["auth: must be a mapping"]),
    ],
)
def test_every_problem_is_listed_with_its_key(data, problems):
    with pytest.raises(AuthConfigError) as info:
        load_auth_config(data)
    assert info.value.problems == problems


def test_trusted_header_with_proxies_is_accepted():
    cfg = load_auth_config({"methods": ["trusted_header", "basic"],
                            "trusted_header": {"header": "X-Remote-User", "proxies": ["127.0.0.1/32"]}})
    assert isinstance(cfg, AuthConfig)
    assert cfg.trusted_header.header == "X-Remote-User"
