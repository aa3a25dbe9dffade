"""auth.kubernetes: off by default; a complete section loads; every insecure or incomplete one is refused."""

import pytest

from policies.file.auth import AuthConfigError, load_auth_config

GOOD = {"issuer": "https://kubernetes.default.svc", "audience": "mlgate",
        "jwks_url": "https://kubernetes.default.svc/openid/v1/jwks",
        "mappings": [{"namespace": "team-a", "name": "trainer", "account": "trainer"},
                     {"namespace": "team-b-*", "account": "team-b"}]}


def _problems(section):
    with pytest.raises(AuthConfigError) as caught:
        load_auth_config({"kubernetes": section})
    return "\n".join(caught.value.problems)


def test_off_by_default_and_a_complete_section_loads():
    assert not load_auth_config({}).kubernetes.enabled
    cfg = load_auth_config({"kubernetes": GOOD}).kubernetes
    assert cfg.enabled
    assert cfg.mappings[1].name == "*"
    assert cfg.leeway_seconds == 30


def test_all_missing_parts_are_listed_at_once():
    problems = _problems({"issuer": "https://k8s.example"})
    assert "audience is required" in problems
    assert "mappings is empty" in problems


@pytest.mark.parametrize(("change", "message"), [
    ({"issuer": "http://k8s.example"}, "must use https"),
    ({"jwks_url": "http://k8s.example/jwks"}, "must use https"),
    ({"jwks_file": "/etc/jwks.json"}, "at most one of jwks_url and jwks_file"),
    ({"mappings": [{"namespace": "team-a", "account": "x", "workspaces": ["Team_A"]}]}, "must match the pattern"),
    ({"mappings": [{"namespace": "team-a", "account": "x", "workspaces": []}]}, "at least one workspace"),
    ({"algorithms": ["HS256"]}, "only RS256, ES256"),
    ({"algorithms": ["none"]}, "only RS256, ES256"),
    ({"leeway_seconds": 3600}, "less than or equal to 120"),
    ({"mappings": [{"namespace": "*", "account": "all"}]}, "narrower pattern"),
    # Wildcards only match every namespace just as '*' does (kube-system's controllers included).
    ({"mappings": [{"namespace": "?*", "account": "all"}]}, "narrower pattern"),
    ({"mappings": [{"namespace": "*?*", "account": "all"}]}, "narrower pattern"),
    # The API server's own audience (by default the issuer): every pod's automounted token, sent with every
    # Kubernetes API call and valid up to a year, would sign in without the pod asking for an mlgate token.
    ({"audience": "https://kubernetes.default.svc"}, "API server's audience"),
    ({"audience": "https://kubernetes.default.svc/"}, "API server's audience"),
    ({"audience": "https://kubernetes.default.svc.cluster.local"}, "API server's audience"),
    ({"issuer": "https://oidc.example/id/ABC", "audience": "https://oidc.example/id/ABC"}, "API server's audience"),
    ({"mappings": [{"namespace": "Team_A", "account": "x"}]}, "not a Kubernetes name"),
    ({"mappings": [{"namespace": "team-a", "account": "svc x"}]}, "not an account name"),
    ({"mappings": [{"namespace": "team-a", "account": "svc:x"}]}, "no ':', which grants could not name"),
])
def test_insecure_or_malformed_options_are_refused(change, message):
    assert message in _problems({**GOOD, **change})


def test_loopback_http_is_accepted_for_a_local_test_issuer():
    section = {**GOOD, "issuer": "http://127.0.0.1:8443", "jwks_url": "http://127.0.0.1:8443/jwks"}
    assert load_auth_config({"kubernetes": section}).kubernetes.enabled


def test_keys_are_discovered_when_neither_jwks_option_is_set_and_mappings_default_to_the_default_workspace():
    section = {k: v for k, v in GOOD.items() if k != "jwks_url"}
    cfg = load_auth_config({"kubernetes": section}).kubernetes
    assert cfg.jwks_url is None
    assert cfg.jwks_file is None
    assert cfg.mappings[0].workspaces == ("default",)
    namespaced = {**GOOD, "mappings": [{"namespace": "team-a", "account": "x", "workspaces": ["{namespace}"]}]}
    assert load_auth_config({"kubernetes": namespaced}).kubernetes.mappings[0].workspaces == ("{namespace}",)


def test_options_without_an_issuer_are_refused():
    assert "issuer is required" in _problems({"audience": "mlgate"})


def test_a_section_whose_tokens_could_not_arrive_or_be_told_apart_is_refused_with_both_reasons():
    with pytest.raises(AuthConfigError) as caught:
        load_auth_config({"methods": ["session", "basic"], "kubernetes": GOOD, "oidc": {"providers": [
            {"name": "corp", "issuer": GOOD["issuer"], "client_id": "mlgate", "audience": "api"}]}})
    problems = "\n".join(caught.value.problems)
    assert "'bearer' is not in methods" in problems
    assert "is also the issuer of oidc provider(s) corp" in problems
