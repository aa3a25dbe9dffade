"""The test IdP itself works: discovery, JWKS and a client-credentials JWT verifiable with its keys."""

import httpx
from authlib.jose import JsonWebKey, jwt

from tests.idp import start_idp


def test_idp_issues_verifiable_client_credentials_jwt(tmp_path):
    idp = start_idp(
        tmp_path,
        clients=[{"client_id": "ci-bot", "client_secret": "bot-secret-bot-secret-bot",
                  "grant_types": ["client_credentials"], "response_types": [], "redirect_uris": [],
                  "x-groups": ["ml-ci"]}],
        users={"alice": {"email": "alice@example.com", "groups": ["team-a"]}},
    )
    try:
        token = idp.client_credentials_token("ci-bot")
        keys = JsonWebKey.import_key_set(httpx.get(f"{idp.issuer}/jwks").json())
        claims = jwt.decode(token, keys)
        claims.validate()
        assert claims["iss"] == idp.issuer
        assert claims["aud"] == "http://mlgate-api"
        assert claims["client_id"] == "ci-bot"
        assert claims["groups"] == ["ml-ci"]
    finally:
        idp.stop()
