"""Kubernetes service-account token verification: real RSA/EC keys, real signatures, every refusal."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from auth.errors import PermissionDenied
from auth.kubernetes import KeyCache, ServiceAccountRule, verify
from auth.oidc import NotAllowed, ProviderUnreachable, TokenRejected

ISSUER = "https://kubernetes.default.svc.cluster.local"
AUDIENCE = "mlgate"
NOW = 1_800_000_000.0
RULES = (ServiceAccountRule("team-a", "trainer", "svc:trainer", ("default", "{namespace}")),
         ServiceAccountRule("team-b", "*", "svc:team-b-jobs"))


@pytest.fixture(scope="module")
def rsa_key():
    return RSAKey.generate_key(2048)


def _jwks(*pairs):
    keys = []
    for kid, private in pairs:
        jwk = private.as_dict(private=False)
        jwk.update(kid=kid, use="sig")
        keys.append(jwk)
    return {"keys": keys}


def _claims(**over):
    claims = {"iss": ISSUER, "aud": [AUDIENCE], "sub": "system:serviceaccount:team-a:trainer",
              "iat": NOW - 10, "nbf": NOW - 10, "exp": NOW + 3600}
    claims.update(over)
    return {k: v for k, v in claims.items() if v is not None}


def _token(key, kid="k1", alg="RS256", **over):
    return jwt.encode({"alg": alg, "kid": kid, "typ": "JWT"}, _claims(**over), key)


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class _Source:
    def __init__(self, document):
        self.document, self.calls = document, 0

    def __call__(self):
        self.calls += 1
        return self.document


def _verify(token, source):
    return verify(token, issuer=ISSUER, audience=AUDIENCE, keys=KeyCache(source), rules=RULES, now=NOW)


def test_valid_token_maps_exact_and_pattern_rules(rsa_key):
    source = _Source(_jwks(("k1", rsa_key)))
    assert _verify(_token(rsa_key), source).account == "svc:trainer"
    identity = _verify(_token(rsa_key, sub="system:serviceaccount:team-b:anything"), source)
    assert (identity.namespace, identity.name, identity.account) == ("team-b", "anything", "svc:team-b-jobs")


def test_es256_token_is_accepted():
    key = ECKey.generate_key("P-256")
    assert _verify(_token(key, alg="ES256"), _Source(_jwks(("k1", key)))).account == "svc:trainer"


@pytest.mark.parametrize(("over", "message"), [
    ({"aud": ["kubernetes"]}, "another audience"),
    ({"iss": "https://evil.example"}, "another issuer"),
    ({"exp": NOW - 60}, "expired"),
    ({"exp": None}, "no exp"),
    ({"sub": "alice"}, "not a Kubernetes service account"),
    ({"sub": "system:serviceaccount:team-a:trainer:extra"}, "malformed"),
    ({"nbf": NOW + 3600}, "not valid yet"),
    ({"iat": NOW + 3600}, "issued in the future"),
    # Python's JSON reader takes NaN and Infinity: an exp of NaN would never expire ('now >= NaN' is false).
    ({"exp": float("nan")}, "exp claim is not a number"),
    ({"exp": float("inf")}, "exp claim is not a number"),
    ({"nbf": float("-inf")}, "nbf claim is not a number"),
])
def test_refusals(rsa_key, over, message):
    with pytest.raises(TokenRejected, match=message):
        _verify(_token(rsa_key, **over), _Source(_jwks(("k1", rsa_key))))


def test_an_unmapped_service_account_is_refused_as_not_allowed(rsa_key):
    # The cluster vouched for the pod; the policy does not let it in: 403 (PermissionDenied), not a failed guess.
    with pytest.raises(NotAllowed, match="team-c/trainer is not mapped") as caught:
        _verify(_token(rsa_key, sub="system:serviceaccount:team-c:trainer"), _Source(_jwks(("k1", rsa_key))))
    assert isinstance(caught.value, PermissionDenied)


def test_expiry_leeway_is_small(rsa_key):
    source = _Source(_jwks(("k1", rsa_key)))
    assert _verify(_token(rsa_key, exp=NOW - 5), source).account == "svc:trainer"
    with pytest.raises(TokenRejected, match="expired"):
        _verify(_token(rsa_key, exp=NOW - 31), source)


def test_unknown_kid_refetches_once_then_refuses(rsa_key):
    source = _Source(_jwks(("k1", rsa_key)))
    with pytest.raises(TokenRejected, match="unknown key"):
        _verify(_token(rsa_key, kid="rotated"), source)
    assert source.calls == 2
    other = RSAKey.generate_key(2048)
    with pytest.raises(TokenRejected, match="signature"):   # known kid, wrong key
        _verify(_token(other), source)


def test_rotated_key_is_found_by_the_refetch(rsa_key):
    new = RSAKey.generate_key(2048)
    source = _Source(_jwks(("k1", rsa_key)))
    cache = KeyCache(source)
    verify(_token(rsa_key), issuer=ISSUER, audience=AUDIENCE, keys=cache, rules=RULES, now=NOW)
    source.document = _jwks(("k1", rsa_key), ("k2", new))
    identity = verify(_token(new, kid="k2"), issuer=ISSUER, audience=AUDIENCE, keys=cache, rules=RULES, now=NOW)
    assert identity.account == "svc:trainer"
    assert source.calls == 2


def test_alg_none_and_hs256_confusion_are_refused(rsa_key):
    source = _Source(_jwks(("k1", rsa_key)))
    header = _b64(json.dumps({"alg": "none", "kid": "k1"}).encode())
    unsigned = f"{header}.{_b64(json.dumps(_claims()).encode())}."
    with pytest.raises(TokenRejected, match="algorithm"):
        _verify(unsigned, source)
    # HS256 keyed with the public JWK text: the classic confusion attack.
    secret = json.dumps(_jwks(("k1", rsa_key))["keys"][0]).encode()
    head = _b64(json.dumps({"alg": "HS256", "kid": "k1", "typ": "JWT"}).encode())
    body = _b64(json.dumps(_claims()).encode())
    sig = _b64(hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest())
    with pytest.raises(TokenRejected, match="algorithm"):
        _verify(f"{head}.{body}.{sig}", source)


def test_the_mapping_says_which_workspaces_a_pod_may_work_in(rsa_key):
    source = _Source(_jwks(("k1", rsa_key)))
    assert _verify(_token(rsa_key), source).workspaces == ("default", "team-a")  # {namespace} -> team-a
    other = _verify(_token(rsa_key, sub="system:serviceaccount:team-b:x"), source)
    assert other.workspaces == ("default",)  # a rule without {namespace}: never the namespace's workspace


def test_a_burst_of_unknown_kids_refetches_at_most_once_per_interval(rsa_key):
    source = _Source(_jwks(("k1", rsa_key)))
    now = [0.0]
    cache = KeyCache(source, clock=lambda: now[0], min_refetch_seconds=10)
    for kid in ("a", "b", "c"):
        with pytest.raises(TokenRejected, match="unknown key"):
            cache.key(kid)
    assert source.calls == 2  # the first load and one refetch
    now[0] = 11.0
    with pytest.raises(TokenRejected, match="unknown key"):
        cache.key("d")
    assert source.calls == 3


def test_an_unreachable_issuer_refuses_and_is_not_asked_again_at_once():
    calls = []

    def down():
        calls.append(1)
        raise ProviderUnreachable("down")

    now = [0.0]
    cache = KeyCache(down, clock=lambda: now[0])
    for _ in range(3):
        with pytest.raises(ProviderUnreachable):
            cache.key("k1")
    assert len(calls) == 1
    now[0] = 6.0
    with pytest.raises(ProviderUnreachable):
        cache.key("k1")
    assert len(calls) == 2


def test_a_slow_refetch_for_an_unknown_kid_never_holds_up_tokens_of_known_keys(rsa_key):
    # Anyone can send a token naming a made-up kid: it makes mlgate ask the issuer again (at most every 10 s).
    # If the issuer is slow (up to timeout_seconds), pods whose tokens name the known key must not queue
    # behind that fetch, each holding a worker thread the rest of the server's logins also need.
    import threading
    import time

    document = _jwks(("k1", rsa_key))
    fetching, release = threading.Event(), threading.Event()
    calls = []

    def slow_source():
        calls.append(1)
        if len(calls) > 1:  # the refetch for the unknown kid: the issuer hangs
            fetching.set()
            release.wait(10)
        return document

    cache = KeyCache(slow_source)
    verify(_token(rsa_key), issuer=ISSUER, audience=AUDIENCE, keys=cache, rules=RULES, now=NOW)
    outcome = []

    def made_up_kid():
        try:
            cache.key("made-up")
        except TokenRejected:
            outcome.append("rejected")

    attacker = threading.Thread(target=made_up_kid)
    attacker.start()
    try:
        assert fetching.wait(5)
        started = time.monotonic()
        identity = verify(_token(rsa_key), issuer=ISSUER, audience=AUDIENCE, keys=cache, rules=RULES, now=NOW)
        assert identity.account == "svc:trainer"
        assert time.monotonic() - started < 1.0
    finally:
        release.set()
        attacker.join(10)
    assert outcome == ["rejected"]
