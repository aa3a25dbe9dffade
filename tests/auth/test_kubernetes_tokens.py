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
from auth.oidc import TokenRejected

ISSUER = "https://kubernetes.default.svc.cluster.local"
AUDIENCE = "mlgate"
NOW = 1_800_000_000.0
RULES = (ServiceAccountRule("team-a", "trainer", "svc:trainer"),
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


def _verify(token, source, workspace=None):
    return verify(token, issuer=ISSUER, audience=AUDIENCE, keys=KeyCache(source), rules=RULES, now=NOW,
                  workspace=workspace)


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
    ({"sub": "system:serviceaccount:team-c:trainer"}, "not mapped"),
    ({"sub": "alice"}, "not a Kubernetes service account"),
    ({"sub": "system:serviceaccount:team-a:trainer:extra"}, "malformed"),
])
def test_refusals(rsa_key, over, message):
    with pytest.raises(TokenRejected, match=message):
        _verify(_token(rsa_key, **over), _Source(_jwks(("k1", rsa_key))))


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


def test_workspace_header_must_equal_the_namespace(rsa_key):
    source = _Source(_jwks(("k1", rsa_key)))
    assert _verify(_token(rsa_key), source, workspace="team-a").namespace == "team-a"
    with pytest.raises(PermissionDenied, match="workspace"):
        _verify(_token(rsa_key), source, workspace="team-b")
