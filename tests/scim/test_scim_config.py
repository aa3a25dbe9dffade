"""auth.scim is validated at startup with every problem listed; insecure tokens are refused."""

from __future__ import annotations

import pytest
import yaml

from gateway.settings import SettingsError
from policies.file.auth import AuthConfigError, load_auth_config


@pytest.mark.parametrize(("token", "message"), [
    ("short-token", "auth.scim.token: must be at least 32 characters"),
    ("mlg_" + "a" * 43, "auth.scim.token: must not have the shape of a personal access token"),
    ("a" * 31 + " b", "auth.scim.token: must be printable ASCII without spaces"),
])
def test_weak_or_confusable_tokens_are_refused(token, message):
    with pytest.raises(AuthConfigError) as refused:
        load_auth_config({"scim": {"token": token}, "lockout": {"user_max_failures": 0}})
    assert any(p.startswith(message) for p in refused.value.problems), refused.value.problems
    # Every problem at once: the lockout mistake is listed beside the token's.
    assert any(p.startswith("auth.lockout.user_max_failures") for p in refused.value.problems)


def test_scim_is_off_unless_a_token_is_set():
    assert load_auth_config({}).scim.enabled is False
    assert load_auth_config({"scim": {"token": "t" * 32}}).scim.enabled is True
    with pytest.raises(AuthConfigError) as refused:
        load_auth_config({"scim": {"max_results": 0, "tokn": "x"}})
    assert sorted(p.split(":")[0] for p in refused.value.problems) == ["auth.scim.max_results", "auth.scim.tokn"]


def test_a_token_written_in_the_policy_file_is_refused_at_startup(app_factory, tmp_path, monkeypatch):
    path = tmp_path / "literal.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "auth": {"scim": {"token": "L" * 40}}}))
    with pytest.raises(SettingsError) as refused:
        app_factory(policy_file=str(path))
    assert "auth.scim.token: a secret must be given as a ${ENV_VAR} reference" in str(refused.value)
    assert "L" * 40 not in str(refused.value)
    monkeypatch.setenv("MLGATE_TEST_SHORT", "too-short")
    path.write_text(yaml.safe_dump({"version": 1, "auth": {"scim": {"token": "${MLGATE_TEST_SHORT}"}}}))
    with pytest.raises(SettingsError) as short:
        app_factory(policy_file=str(path))
    assert "auth.scim.token: must be at least 32 characters" in str(short.value)
    assert "too-short" not in str(short.value)
