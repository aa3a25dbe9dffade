"""ID tokens and machine JWTs: only well-signed, fresh tokens from the configured issuer for us are accepted.

The provider is served over an in-memory HTTP transport with real keys, so discovery, the JWKS and its
refetch on an unknown ``kid`` run through the real client code; the clock is pinned.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import httpx
import pytest
from joserfc import jws, jwt
from joserfc.jwk import ECKey, RSAKey

from auth.oidc import (
    IssuerMismatch,
    ProviderClient,
    ProviderUnreachable,
    TokenRejected,
    looks_like_jwt,
    parse_discovery,
    parse_jwks,
)
from policies.file.oidc import OidcProvider

ISSUER = "http://127.0.0.1:9999"
NOW = 1_800_000_000
NONCE = "n-0S6_WzA2Mj"


class FakeProvider:
    """Discovery and a JWKS that a test can rotate; counts JWKS fetches."""

    def __init__(self):
        self.keys = [RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig"})]
        self.jwks_fetches = 0

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/openid-configuration":
            return httpx.Response(200, json={"issuer": ISSUER, "authorization_endpoint": f"{ISSUER}/auth",
                                             "token_endpoint": f"{ISSUER}/token", "jwks_uri": f"{ISSUER}/jwks"})
        if request.url.path == "/jwks":
            self.jwks_fetches += 1
            return httpx.Response(200, json={"keys": [k.as_dict(private=False) for k in self.keys]})
        return httpx.Response(404)


@pytest.fixture
def idp():
    return FakeProvider()


def provider(**overrides) -> OidcProvider:
    return OidcProvider(**{"name": "corp", "issuer": ISSUER, "client_id": "mlgate", "audience": "http://mlgate-api",
                           **overrides})


def client_for(idp: FakeProvider, clock=lambda: NOW, **overrides) -> ProviderClient:
    return ProviderClient(provider(**overrides), http=httpx.Client(transport=httpx.MockTransport(idp.handle)),
                          clock=clock)


def id_claims(**changes) -> dict:
    claims = {"iss": ISSUER, "sub": "alice", "aud": "mlgate", "exp": NOW + 300, "iat": NOW - 5, "nonce": NONCE,
              "preferred_username": "alice"}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def sign(claims: dict, key, alg: str = "RS256", **header) -> str:
    return jwt.encode({"alg": alg, "kid": key.kid, **header}, claims, key, algorithms=[alg])


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_valid_id_token_is_accepted(idp):
    claims = client_for(idp).validate_id_token(sign(id_claims(), idp.keys[0]), NONCE, NOW)
    assert claims["sub"] == "alice"


def test_alg_none_is_refused(idp):
    token = f"{b64(json.dumps({'alg': 'none', 'kid': 'k1'}).encode())}.{b64(json.dumps(id_claims()).encode())}."
    with pytest.raises(TokenRejected, match="algorithm 'none' is not accepted"):
        client_for(idp).validate_id_token(token, NONCE, NOW)
    assert idp.jwks_fetches == 0  # refused before any key was looked up


def test_hs256_signed_with_the_providers_public_key_is_refused(idp):
    # The alg-confusion attack: a verifier that lets the token pick HMAC would use the public key as the secret.
    header = b64(json.dumps({"alg": "HS256", "kid": "k1"}).encode())
    payload = b64(json.dumps(id_claims()).encode())
    secret = idp.keys[0].as_pem(private=False)
    signature = b64(hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    with pytest.raises(TokenRejected, match="algorithm 'HS256' is not accepted"):
        client_for(idp).validate_id_token(f"{header}.{payload}.{signature}", NONCE, NOW)


def test_a_token_signed_by_a_foreign_key_is_refused_after_one_refetch(idp):
    clock = [NOW]
    client = client_for(idp, clock=lambda: clock[0])
    client.validate_id_token(sign(id_claims(), idp.keys[0]), NONCE, NOW)
    clock[0] += 11
    foreign = RSAKey.generate_key(2048, parameters={"kid": "attacker"})
    with pytest.raises(TokenRejected, match="key the identity provider does not publish"):
        client.validate_id_token(sign(id_claims(), foreign), NONCE, NOW)
    assert idp.jwks_fetches == 2
    # More made-up key ids right away do not make mlgate hammer the provider.
    with pytest.raises(TokenRejected):
        client.validate_id_token(sign(id_claims(), RSAKey.generate_key(2048, parameters={"kid": "x2"})), NONCE, NOW)
    assert idp.jwks_fetches == 2


def test_a_foreign_key_reusing_a_known_kid_fails_the_signature(idp):
    impostor = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    with pytest.raises(TokenRejected, match="signature is invalid"):
        client_for(idp).validate_id_token(sign(id_claims(), impostor), NONCE, NOW)


def test_a_rotated_key_is_picked_up_by_refetching_on_its_unknown_kid(idp):
    clock = [NOW]
    client = client_for(idp, clock=lambda: clock[0])
    client.validate_id_token(sign(id_claims(), idp.keys[0]), NONCE, NOW)
    clock[0] += 11
    rotated = ECKey.generate_key("P-256", parameters={"kid": "k2", "use": "sig"})
    idp.keys.append(rotated)
    assert client.validate_id_token(sign(id_claims(), rotated, "ES256"), NONCE, NOW)["sub"] == "alice"
    assert idp.jwks_fetches == 2


def test_an_algorithm_outside_the_providers_allowlist_is_refused(idp):
    with pytest.raises(TokenRejected, match="'RS512' is not accepted"):
        client_for(idp).validate_id_token(sign(id_claims(), idp.keys[0], "RS512"), NONCE, NOW)


@pytest.mark.parametrize(("changes", "message"), [
    ({"iss": "http://127.0.0.1:9998"}, "another issuer"),
    ({"aud": "someone-else"}, "another audience"),
    ({"aud": ["mlgate", "other"]}, "another client"),
    ({"aud": ["mlgate", "other"], "azp": "other"}, "another client"),
    ({"exp": NOW - 61}, "expired"),
    ({"exp": None}, "no exp claim"),
    ({"exp": "tomorrow"}, "exp claim is not a number"),
    ({"iat": NOW + 120}, "issued in the future"),
    ({"nbf": NOW + 120}, "not valid yet"),
    ({"nonce": "replayed-nonce"}, "nonce does not match"),
    ({"nonce": None}, "nonce does not match"),
    ({"sub": ""}, "no usable subject"),
])
def test_id_token_claim_rules(idp, changes, message):
    with pytest.raises(TokenRejected, match=message):
        client_for(idp).validate_id_token(sign(id_claims(**changes), idp.keys[0]), NONCE, NOW)


def test_small_clock_skew_is_tolerated_within_the_leeway(idp):
    claims = id_claims(exp=NOW - 30, iat=NOW + 30, nbf=NOW + 30)
    assert client_for(idp).validate_id_token(sign(claims, idp.keys[0]), NONCE, NOW)["sub"] == "alice"
    with pytest.raises(TokenRejected, match="expired"):
        client_for(idp, leeway_seconds=10).validate_id_token(sign(claims, idp.keys[0]), NONCE, NOW)


def test_machine_tokens_need_the_configured_audience(idp):
    client = client_for(idp)
    good = {"iss": ISSUER, "sub": "ci-bot", "client_id": "ci-bot", "aud": "http://mlgate-api", "exp": NOW + 60}
    assert client.validate_access_token(sign(good, idp.keys[0]), NOW)["client_id"] == "ci-bot"
    # An ID token (audience: the browser client) cannot be replayed as an API token.
    with pytest.raises(TokenRejected, match="another audience"):
        client.validate_access_token(sign(id_claims(), idp.keys[0]), NOW)
    with pytest.raises(TokenRejected, match="expired"):
        client.validate_access_token(sign({**good, "exp": NOW - 120}, idp.keys[0]), NOW)
    with pytest.raises(TokenRejected, match="not accepted for API access"):
        client_for(idp, audience=None).validate_access_token(sign(good, idp.keys[0]), NOW)
    # Even for the API's audience, an ID token (nonce; Keycloak's typ ID) is never an access token.
    for id_like in ({"nonce": NONCE}, {"typ": "ID"}):
        with pytest.raises(TokenRejected, match="An ID token is not an access token"):
            client.validate_access_token(sign({**good, **id_like}, idp.keys[0]), NOW)


def test_discovery_must_name_the_configured_issuer_exactly():
    doc = {"issuer": ISSUER + "/", "authorization_endpoint": "a", "token_endpoint": "t", "jwks_uri": "j"}
    with pytest.raises(IssuerMismatch) as mismatch:
        parse_discovery(doc, ISSUER)
    assert mismatch.value.message == (
        f"The identity provider's discovery document states the issuer {ISSUER + '/'!r}, but mlgate is configured "
        f"with {ISSUER!r} (they differ only in the trailing slash): set the provider's issuer in mlgate's policy "
        "file (auth.oidc.providers) exactly as the provider states it.")
    with pytest.raises(IssuerMismatch, match=r"https://elsewhere\.example"):
        parse_discovery({**doc, "issuer": "https://elsewhere.example"}, ISSUER)
    with pytest.raises(ProviderUnreachable, match="lacks jwks_uri"):
        parse_discovery({"issuer": ISSUER, "authorization_endpoint": "a", "token_endpoint": "t"}, ISSUER)


def test_symmetric_and_encryption_keys_in_a_jwks_are_never_used():
    rsa = RSAKey.generate_key(2048, parameters={"kid": "sig"}).as_dict(private=False)
    keys = parse_jwks({"keys": [{"kty": "oct", "kid": "hmac", "k": b64(b"secret")},
                                {**rsa, "kid": "enc", "use": "enc"}, rsa]})
    assert set(keys) == {"sig"}


def test_an_unreachable_provider_is_reported_as_such():
    def down(request):
        raise httpx.ConnectError("refused")

    client = ProviderClient(provider(), http=httpx.Client(transport=httpx.MockTransport(down)))
    with pytest.raises(ProviderUnreachable, match="could not be reached"):
        client.metadata()


@pytest.mark.parametrize(("value", "expected"), [
    ("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", True),
    ("mlg_" + "a" * 43, False),
    ("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", True),  # shaped like a JWT, so it is refused as one
    ("not.a.jwt", False),
    ("eyJ" + "a" * 20_000 + ".b.c", False),
])
def test_jwts_are_recognised_by_shape(value, expected):
    assert looks_like_jwt(value) is expected


def test_deeply_nested_json_is_refused_not_crashed_on(idp):
    deep_header = b64(b'{"a":' + b"[" * 9000)
    with pytest.raises(TokenRejected, match="malformed"):
        client_for(idp).validate_access_token(f"{deep_header}.{b64(b'{}')}.sig", NOW)
    signed = jws.serialize_compact({"alg": "RS256", "kid": "k1"}, b"[" * 9000, idp.keys[0])
    with pytest.raises(TokenRejected, match="claims are not JSON"):
        client_for(idp).validate_access_token(signed, NOW)
