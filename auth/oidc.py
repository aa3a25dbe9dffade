"""OpenID Connect relying-party protocol steps, one small function per step and spec rule.

I/O stays at the edges: :class:`ProviderClient` fetches discovery, keys and tokens over HTTP; everything
else is pure and takes the time as an argument, so tests pin the clock. Only asymmetric algorithms from
the provider's allowlist are ever accepted: ``none`` and HS* are refused before any key is looked at.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import math
import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote_plus, urlencode

from auth.errors import AuthError, PermissionDenied, Unauthenticated
from policies.file.oidc import ASYMMETRIC_ALGORITHMS, OidcProvider

if TYPE_CHECKING:  # the HTTP and JOSE libraries load on first use: a server without SSO never imports them
    import httpx
    from joserfc.jwk import KeySet

_JWT_SHAPE = re.compile(r"^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
MAX_TOKEN_LENGTH = 16_384
# A burst of tokens with made-up key ids must not make us hammer the provider's JWKS endpoint.
MIN_JWKS_REFETCH_SECONDS = 10.0
METADATA_TTL_SECONDS = 3600.0


class ProviderUnreachable(AuthError):
    """The provider did not answer, or answered something unusable (502)."""

    code = "TEMPORARILY_UNAVAILABLE"


class IssuerMismatch(ProviderUnreachable):
    """The discovery document states another issuer than the configured one: an operator must fix the setting.

    Still a ProviderUnreachable to the session logic (a session is kept, not ended, while it lasts)."""


class ProviderMisconfigured(AuthError):
    """The provider refused mlgate itself (wrong client id or secret, client not allowed): an operator must act."""

    code = "TEMPORARILY_UNAVAILABLE"


class StateMismatch(AuthError):
    """The callback's ``state`` is not the one this browser was sent with (RFC 6749 section 10.12)."""

    code = "INVALID_STATE"


class TokenRejected(Unauthenticated):
    """A token failed validation; the message names the rule, never the token."""


class NotAllowed(PermissionDenied):
    """The provider vouched for the user, but the configuration does not let them in."""


@dataclass(frozen=True)
class ProviderMetadata:
    """The parts of the discovery document mlgate uses (OpenID Connect Discovery 1.0 section 3)."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    end_session_endpoint: str | None = None
    userinfo_endpoint: str | None = None


@dataclass(frozen=True)
class PendingLogin:
    """What the browser carries (signed) between the redirect to the provider and the callback."""

    provider: str
    state: str
    nonce: str
    code_verifier: str
    next_path: str

    def to_dict(self) -> dict:
        """A JSON-ready form for the signed cookie."""
        return {"p": self.provider, "s": self.state, "n": self.nonce, "v": self.code_verifier, "x": self.next_path}

    @classmethod
    def from_dict(cls, data: object) -> PendingLogin:
        """Parse the signed cookie's content; :class:`StateMismatch` if it is not ours."""
        if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in "psnvx"):
            raise StateMismatch("The sign-in attempt is not recognised; start again.")
        return cls(data["p"], data["s"], data["n"], data["v"], data["x"])


# --- discovery and keys --------------------------------------------------------------------------------
def parse_discovery(document: object, issuer: str) -> ProviderMetadata:
    """Check a discovery document: the issuer must equal the configured one exactly (Discovery section 4.3)."""
    if not isinstance(document, dict):
        raise ProviderUnreachable("The identity provider's discovery document is not a JSON object.")
    stated = document.get("issuer")
    if stated != issuer:
        # Discovery section 4.3: the two must be identical, so a trailing slash is a different issuer.
        hint = " (they differ only in the trailing slash)" if isinstance(stated, str) and \
            stated.rstrip("/") == issuer.rstrip("/") else ""
        raise IssuerMismatch(f"The identity provider's discovery document states the issuer {stated!r}, "
                                    f"but mlgate is configured with {issuer!r}{hint}: set the provider's issuer "
                                    "in mlgate's policy file (auth.oidc.providers) exactly as the provider states it.")
    missing = [k for k in ("authorization_endpoint", "token_endpoint", "jwks_uri")
               if not isinstance(document.get(k), str)]
    if missing:
        raise ProviderUnreachable(f"The identity provider's discovery document lacks {', '.join(missing)}.")
    end_session, userinfo = document.get("end_session_endpoint"), document.get("userinfo_endpoint")
    return ProviderMetadata(issuer, document["authorization_endpoint"], document["token_endpoint"],
                            document["jwks_uri"], end_session if isinstance(end_session, str) else None,
                            userinfo if isinstance(userinfo, str) else None)


def parse_jwks(document: object) -> dict[str, KeySet]:
    """Signing keys by ``kid`` (keys without one are kept under the empty id); symmetric keys are dropped."""
    from joserfc.errors import JoseError
    from joserfc.jwk import KeySet

    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ProviderUnreachable("The identity provider's key set is not a JWKS document.")
    keys: dict[str, KeySet] = {}
    for item in document["keys"]:
        # An "oct" key in a provider's JWKS could only serve HS* tokens, which are never accepted.
        if not isinstance(item, dict) or item.get("kty") not in ("RSA", "EC", "OKP") or item.get("use") == "enc":
            continue
        try:
            keys[str(item.get("kid", ""))] = KeySet.import_key_set({"keys": [item]})
        except (JoseError, ValueError, TypeError):
            continue
    return keys


# --- the browser flow ----------------------------------------------------------------------------------
def new_pending_login(provider: OidcProvider, next_path: str) -> PendingLogin:
    """Fresh ``state``, ``nonce`` and PKCE verifier for one sign-in attempt."""
    from authlib.common.security import generate_token

    return PendingLogin(provider.name, generate_token(32), generate_token(32), generate_token(64), next_path)


def authorization_url(metadata: ProviderMetadata, provider: OidcProvider, pending: PendingLogin,
                      redirect_uri: str) -> str:
    """The provider's authorization URL: code flow with PKCE S256 (RFC 7636 section 4.3), state and nonce."""
    from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
    from authlib.oauth2.rfc7636 import create_s256_code_challenge

    return prepare_grant_uri(
        metadata.authorization_endpoint, provider.client_id, "code", redirect_uri=redirect_uri,
        scope=" ".join(provider.scopes), state=pending.state, nonce=pending.nonce,
        code_challenge=create_s256_code_challenge(pending.code_verifier), code_challenge_method="S256",
    )


def check_state(pending: PendingLogin, returned: str | None, provider_name: str) -> None:
    """The returned ``state`` must equal the one sent, for the same provider (constant-time)."""
    if not returned or pending.provider != provider_name or not hmac.compare_digest(
            pending.state.encode(), returned.encode()):
        raise StateMismatch("The sign-in response does not match this browser's sign-in attempt; start again.")


def end_session_url(metadata: ProviderMetadata, provider: OidcProvider, post_logout_redirect_uri: str,
                    id_token_hint: str | None = None) -> str | None:
    """RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0 section 2), when the provider supports it.

    ``id_token_hint`` (the session's last ID token) tells the provider whose session to end; several
    providers (Okta among them) honour ``post_logout_redirect_uri`` only with it.
    """
    if not metadata.end_session_endpoint:
        return None
    params = {"client_id": provider.client_id, "post_logout_redirect_uri": post_logout_redirect_uri}
    if id_token_hint:
        params = {"id_token_hint": id_token_hint, **params}
    query = urlencode(params)
    sep = "&" if "?" in metadata.end_session_endpoint else "?"
    return f"{metadata.end_session_endpoint}{sep}{query}"


# --- JWT validation ------------------------------------------------------------------------------------
def looks_like_jwt(value: str) -> bool:
    """Whether ``value`` has the shape of a compact JWS (three base64url parts, a JSON header)."""
    return len(value) <= MAX_TOKEN_LENGTH and bool(_JWT_SHAPE.match(value))


def _b64json(segment: str) -> dict:
    try:
        data = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        raise TokenRejected("The token is malformed.") from None
    if not isinstance(data, dict):
        raise TokenRejected("The token is malformed.")
    return data


def token_header(token: str) -> dict:
    """The unverified JOSE header (only to choose the key and refuse algorithms early)."""
    if not looks_like_jwt(token):
        raise TokenRejected("The token is malformed.")
    return _b64json(token.split(".", 1)[0])


def unverified_claims(token: str) -> dict:
    """The claims before verification, only to pick the provider whose keys must verify them."""
    parts = token.split(".")
    if len(parts) != 3 or not looks_like_jwt(token):
        raise TokenRejected("The token is malformed.")
    return _b64json(parts[1])


def check_algorithm(header: dict, allowed: tuple[str, ...]) -> str:
    """The header's ``alg`` if it is an allowed asymmetric one (RFC 8725 section 3.1): never none or HS*."""
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in allowed or alg not in ASYMMETRIC_ALGORITHMS:
        raise TokenRejected(f"The token's signing algorithm {str(alg)[:16]!r} is not accepted.")
    return alg


def verify_signature(token: str, key: KeySet, alg: str) -> dict:
    """Verify the signature with ``key`` for exactly ``alg``; the verified claims."""
    from joserfc import jws
    from joserfc.errors import JoseError

    try:
        payload = jws.deserialize_compact(token, key, algorithms=[alg]).payload
    except (JoseError, ValueError, TypeError):
        raise TokenRejected("The token's signature is invalid.") from None
    try:
        claims = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise TokenRejected("The token's claims are not JSON.") from None
    if not isinstance(claims, dict):
        raise TokenRejected("The token's claims are not a JSON object.")
    return claims


def check_issuer(claims: dict, issuer: str) -> None:
    """``iss`` must equal the provider's issuer exactly (OIDC Core section 3.1.3.7 rule 2)."""
    if claims.get("iss") != issuer:
        raise TokenRejected("The token was issued by another issuer.")


def check_audience(claims: dict, audience: str, *, authorized_party: str | None = None) -> None:
    """``aud`` must contain ``audience``; with several audiences, ``azp`` must name us (OIDC Core 3.1.3.7 rules 3-5)."""
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if audience not in audiences:
        raise TokenRejected("The token is meant for another audience.")
    azp = claims.get("azp")
    if authorized_party is not None and (len(audiences) > 1 or azp is not None) and azp != authorized_party:
        raise TokenRejected("The token was issued to another client (azp).")


def _number(claims: dict, name: str, required: bool) -> float | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise TokenRejected(f"The token has no {name} claim.")
        return None
    # NaN and infinities (which Python's JSON reader accepts) are not NumericDate values (RFC 7519 section 2):
    # an exp of NaN would never expire, since every comparison with it is false.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TokenRejected(f"The token's {name} claim is not a number.")
    return float(value)


def check_times(claims: dict, now: float, leeway: float, *, require_iat: bool = True) -> None:
    """``exp`` in the future, ``iat``/``nbf`` not in the future, each with a small leeway (RFC 7519 4.1.4-4.1.6)."""
    exp = _number(claims, "exp", True)
    if now - leeway >= exp:
        raise TokenRejected("The token has expired.")
    iat = _number(claims, "iat", require_iat)
    if iat is not None and iat > now + leeway:
        raise TokenRejected("The token was issued in the future.")
    nbf = _number(claims, "nbf", False)
    if nbf is not None and nbf > now + leeway:
        raise TokenRejected("The token is not valid yet.")


def check_nonce(claims: dict, nonce: str) -> None:
    """``nonce`` must equal the one sent with this browser's request (OIDC Core section 3.1.3.7 rule 11)."""
    found = claims.get("nonce")
    if not isinstance(found, str) or not hmac.compare_digest(found.encode(), nonce.encode()):
        raise TokenRejected("The ID token's nonce does not match this sign-in attempt.")


def check_not_id_token(claims: dict) -> None:
    """Refuse an ID token presented as an access token (RFC 9068 section 4, RFC 8725 section 3.11).

    ID tokens reach the browser (and the provider's logout URL), so they must never work as API credentials:
    a ``nonce`` only ever appears in ID tokens, and Keycloak marks its ID tokens ``typ: ID``.
    """
    if "nonce" in claims or claims.get("typ") == "ID":
        raise TokenRejected("An ID token is not an access token; send an access token issued for the API.")


def check_subject(claims: dict) -> str:
    """The ``sub`` claim, a non-empty string of at most 255 characters (OIDC Core section 2)."""
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > 255:
        raise TokenRejected("The token has no usable subject.")
    return sub


def check_same_subject(claims: dict, subject: str) -> None:
    """A renewed identity must be the same provider account (OIDC Core sections 5.3.2 and 12.2)."""
    if not hmac.compare_digest(check_subject(claims).encode(), subject.encode()):
        raise TokenRejected("The identity provider answered for a different account.")


# --- the provider over HTTP ----------------------------------------------------------------------------
class ProviderClient:
    """Discovery, keys and the token endpoint of one provider; metadata and keys are cached."""

    def __init__(self, provider: OidcProvider, http: httpx.Client | None = None, clock=time.time):
        import httpx

        self.provider = provider
        self.http = http or httpx.Client(timeout=provider.timeout_seconds, follow_redirects=False)
        self.clock = clock
        self._lock = threading.Lock()
        self._metadata: tuple[float, ProviderMetadata] | None = None
        self._keys: dict[str, KeySet] = {}
        self._keys_fetched_at = float("-inf")

    def _get_json(self, url: str) -> object:
        import httpx

        try:
            response = self.http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError:
            raise ProviderUnreachable("The identity provider could not be reached.") from None
        if response.status_code != 200:
            raise ProviderUnreachable(f"The identity provider answered HTTP {response.status_code}.")
        try:
            return response.json()
        except ValueError:
            raise ProviderUnreachable("The identity provider answered something that is not JSON.") from None

    def metadata(self) -> ProviderMetadata:
        """The discovery document (cached for an hour)."""
        cached = self._metadata
        if cached is not None and self.clock() - cached[0] < METADATA_TTL_SECONDS:
            return cached[1]
        issuer = self.provider.issuer
        metadata = parse_discovery(self._get_json(issuer.rstrip("/") + "/.well-known/openid-configuration"), issuer)
        self._metadata = (self.clock(), metadata)
        return metadata

    def key_for(self, kid: str) -> KeySet:
        """The signing key with ``kid``; the JWKS is refetched once when the id is unknown (key rotation)."""
        key = self._keys.get(kid)
        if key is not None:
            return key
        with self._lock:
            key = self._keys.get(kid)
            if key is None and self.clock() - self._keys_fetched_at >= MIN_JWKS_REFETCH_SECONDS:
                self._keys = parse_jwks(self._get_json(self.metadata().jwks_uri))
                self._keys_fetched_at = self.clock()
                key = self._keys.get(kid)
        if key is None:
            raise TokenRejected("The token is signed with a key the identity provider does not publish.")
        return key

    def verified_claims(self, token: str) -> dict:
        """Claims of a JWT whose algorithm is allowed and whose signature checks with the provider's key."""
        header = token_header(token)
        alg = check_algorithm(header, self.provider.algorithms)
        kid = header.get("kid", "")
        return verify_signature(token, self.key_for(kid if isinstance(kid, str) else ""), alg)

    def _token_request(self, data: dict) -> tuple[int, object]:
        """POST to the token endpoint with client authentication; (status, parsed JSON or None)."""
        import httpx

        auth = None
        if self.provider.client_secret is not None:
            # client_secret_basic: RFC 6749 section 2.3.1 form-encodes both parts before Basic encoding.
            auth = httpx.BasicAuth(_form_encode(self.provider.client_id),
                                   _form_encode(self.provider.client_secret.get_secret_value()))
        else:
            data["client_id"] = self.provider.client_id
        try:
            response = self.http.post(self.metadata().token_endpoint, data=data, auth=auth,
                                      headers={"Accept": "application/json"})
        except httpx.HTTPError:
            raise ProviderUnreachable("The identity provider could not be reached.") from None
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, None

    def exchange_code(self, code: str, code_verifier: str, redirect_uri: str) -> dict:
        """Trade the authorization code for tokens (RFC 6749 section 4.1.3, with the PKCE verifier)."""
        status, body = self._token_request({"grant_type": "authorization_code", "code": code,
                                            "redirect_uri": redirect_uri, "code_verifier": code_verifier})
        error = body.get("error") if isinstance(body, dict) and isinstance(body.get("error"), str) else None
        if status == 400 and error == "invalid_grant":
            raise TokenRejected("The sign-in code was refused (already used or expired); start again.")
        if status in (400, 401) and error in ("invalid_client", "unauthorized_client"):
            # RFC 6749 section 5.2: the provider does not accept mlgate's client id or secret. Retrying will
            # not help the user; the message names the error code only, never the credentials.
            raise ProviderMisconfigured(f"The identity provider refused mlgate's client credentials ({error}). "
                                        "An administrator must check this provider's client_id and client_secret.")
        if status != 200 or not isinstance(body, dict) or not isinstance(body.get("id_token"), str):
            raise ProviderUnreachable(f"The identity provider refused the code exchange (HTTP {status}).")
        return body

    def refresh(self, refresh_token: str) -> dict:
        """Renew the user's tokens with the refresh token grant (RFC 6749 section 6).

        A refusal (the user was disabled or logged out at the provider, the grant or token was revoked)
        is :class:`TokenRejected`; no answer, a server error or an unusable answer is
        :class:`ProviderUnreachable`, so the caller can tell "no" from "cannot ask".
        """
        status, body = self._token_request({"grant_type": "refresh_token", "refresh_token": refresh_token})
        if status in (400, 401) and isinstance(body, dict) and isinstance(body.get("error"), str):
            # RFC 6749 section 5.2: invalid_grant (revoked, expired, user gone), invalid_client, ...
            raise TokenRejected(f"The identity provider refused to renew the session ({body['error'][:64]}).")
        if status != 200 or not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise ProviderUnreachable(f"The identity provider could not renew the session (HTTP {status}).")
        return body

    def userinfo(self, access_token: str) -> dict:
        """The UserInfo claims for an access token (OIDC Core section 5.3), when no ID token came back."""
        import httpx

        endpoint = self.metadata().userinfo_endpoint
        if not endpoint:
            raise TokenRejected("The identity provider sent no ID token and has no userinfo endpoint.")
        try:
            response = self.http.get(endpoint, headers={"Authorization": f"Bearer {access_token}",
                                                        "Accept": "application/json"})
        except httpx.HTTPError:
            raise ProviderUnreachable("The identity provider could not be reached.") from None
        if response.status_code == 401:
            raise TokenRejected("The identity provider refused the renewed access token.")
        try:
            claims = response.json() if response.status_code == 200 else None
        except ValueError:
            claims = None
        if not isinstance(claims, dict):
            raise ProviderUnreachable(f"The identity provider's userinfo answer is unusable (HTTP "
                                      f"{response.status_code}).")
        return claims

    def validate_id_token(self, id_token: str, nonce: str, now: float) -> dict:
        """Every ID token rule of OIDC Core section 3.1.3.7 mlgate relies on; the claims."""
        claims = self.verified_claims(id_token)
        check_issuer(claims, self.provider.issuer)
        check_audience(claims, self.provider.client_id, authorized_party=self.provider.client_id)
        check_times(claims, now, self.provider.leeway_seconds)
        check_nonce(claims, nonce)
        check_subject(claims)
        return claims

    def validate_refreshed_id_token(self, id_token: str, subject: str, now: float) -> dict:
        """An ID token from a refresh (OIDC Core section 12.2): the usual rules, and the same ``sub`` as before."""
        claims = self.verified_claims(id_token)
        check_issuer(claims, self.provider.issuer)
        check_audience(claims, self.provider.client_id, authorized_party=self.provider.client_id)
        check_times(claims, now, self.provider.leeway_seconds)
        check_same_subject(claims, subject)
        return claims

    def validate_access_token(self, token: str, now: float) -> dict:
        """A machine's JWT access token (RFC 9068): signature, issuer, configured audience, expiry; the claims."""
        if not self.provider.audience:
            raise TokenRejected("This provider's tokens are not accepted for API access.")
        claims = self.verified_claims(token)
        check_issuer(claims, self.provider.issuer)
        check_audience(claims, self.provider.audience)
        check_not_id_token(claims)
        check_times(claims, now, self.provider.leeway_seconds, require_iat=False)
        check_subject(claims)
        return claims


def _form_encode(value: str) -> str:
    return quote_plus(value)
