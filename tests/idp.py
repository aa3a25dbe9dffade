"""A real OpenID Provider (the npm package oidc-provider) started on a free loopback port for SSO tests."""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, quote_plus, urlencode, urlsplit

import httpx

from tests.services import free_port, require_node, unavailable

IDP_DIR = Path(__file__).resolve().parent / "oidc"


def rsa_jwks(kid: str = "test-key-1") -> dict:
    """A private RSA JWKS so the provider's keys stay the same across restarts of one test."""
    from authlib.jose import JsonWebKey

    key = JsonWebKey.generate_key("RSA", 2048, is_private=True, options={"kid": kid})
    data = key.as_dict(is_private=True)
    data.update({"kid": kid, "use": "sig", "alg": "RS256"})
    return {"keys": [data]}


@dataclass
class IdP:
    """A running oidc-provider process."""

    issuer: str
    api_audience: str
    config: dict
    process: subprocess.Popen
    workdir: Path
    clients: dict[str, dict] = field(default_factory=dict)

    def change_account(self, account: str, *, disabled: bool | None = None, groups: list[str] | None = None,
                       revoke_grants: bool = False) -> dict:
        """Change an account while the provider runs (its admin endpoint, guarded by the fixture's secret)."""
        changes: dict = {"revoke_grants": revoke_grants}
        if disabled is not None:
            changes["disabled"] = disabled
        if groups is not None:
            changes["groups"] = groups
        response = httpx.post(f"{self.issuer}/admin/accounts/{account}", json=changes,
                              headers={"x-admin-secret": self.config["admin_secret"]}, timeout=10)
        response.raise_for_status()
        return response.json()

    def forge_next_id_token(self, claims: dict | None = None, alg: str = "RS256") -> None:
        """Make the next token response carry a forged ID token: the real claims with ``claims`` merged in
        (None deletes one), signed with the provider's key (RS256), unsigned ("none"), or HMAC-signed with
        the provider's public key ("HS256-public-key")."""
        response = httpx.post(f"{self.issuer}/admin/forge-id-token", json={"claims": claims or {}, "alg": alg},
                              headers={"x-admin-secret": self.config["admin_secret"]}, timeout=10)
        response.raise_for_status()

    def kubernetes_token(self, namespace: str, name: str, *, audience: str = "mlgate", ttl_seconds: int = 3600,
                         unpublished_key: bool = False) -> str:
        """A projected service-account token as a cluster's issuer makes it (``TokenRequest``), signed with the
        provider's published key (or, ``unpublished_key``, a key its JWKS never shows); a negative ttl has
        already expired."""
        response = httpx.post(f"{self.issuer}/admin/kubernetes-token", json={
            "namespace": namespace, "name": name, "audience": audience, "ttl_seconds": ttl_seconds,
            "unpublished_key": unpublished_key}, headers={"x-admin-secret": self.config["admin_secret"]}, timeout=30)
        response.raise_for_status()
        return response.json()["token"]

    def access_token(self, claims: dict) -> str:
        """An API access token signed with the provider's published key (issuer, API audience, 10 minutes),
        ``claims`` merged in: to give it the shape another provider's client-credentials token has."""
        response = httpx.post(f"{self.issuer}/admin/access-token", json={"claims": claims},
                              headers={"x-admin-secret": self.config["admin_secret"]}, timeout=30)
        response.raise_for_status()
        return response.json()["token"]

    def user_tokens(self, client_id: str, login: str, redirect_uri: str, *, resource: str | None = None,
                    scope: str = "openid profile email groups") -> dict:
        """The token response of ``login`` signing in through ``client_id``'s authorization-code flow (PKCE),
        driven over HTTP; with ``resource``, the access token is a JWT for that API (RFC 8707)."""
        from authlib.common.security import generate_token
        from authlib.oauth2.rfc7636 import create_s256_code_challenge

        from tests.auth.idp_login import sign_in_at_idp

        verifier = generate_token(64)
        params = {"client_id": client_id, "response_type": "code", "redirect_uri": redirect_uri, "scope": scope,
                  "state": generate_token(16), "nonce": generate_token(16), "code_challenge_method": "S256",
                  "code_challenge": create_s256_code_challenge(verifier)}
        if resource:
            params["resource"] = resource
        with httpx.Client(timeout=10) as browser:
            back = sign_in_at_idp(browser, f"{self.issuer}/auth?{urlencode(params)}", login, redirect_uri)
        code = parse_qs(urlsplit(back).query)["code"][0]
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                "code_verifier": verifier, **({"resource": resource} if resource else {})}
        # client_secret_basic form-encodes both parts first (RFC 6749 section 2.3.1): client ids may be URLs.
        secret = self.clients[client_id]["client_secret"]
        response = httpx.post(f"{self.issuer}/token", data=data, auth=(quote_plus(client_id), quote_plus(secret)),
                              timeout=10)
        response.raise_for_status()
        return response.json()

    def client_credentials_token(self, client_id: str, scope: str = "api:read api:write") -> str:
        """A JWT access token for ``client_id`` through the client-credentials grant."""
        client = self.clients[client_id]
        response = httpx.post(
            f"{self.issuer}/token",
            data={"grant_type": "client_credentials", "resource": self.api_audience, "scope": scope},
            auth=(client_id, client["client_secret"]),
            timeout=10,
        )
        response.raise_for_status()
        return response.json()["access_token"]

    def stop(self) -> None:
        """Terminate the provider."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def start_idp(workdir: Path, *, clients: list[dict], users: dict[str, dict], port: int | None = None,
              jwks: dict | None = None, api_audience: str = "http://mlgate-api", access_token_ttl: int | None = None,
              id_token_ttl: int | None = None, rotate_refresh_tokens: bool = False,
              profile_in_access_tokens: bool = False) -> IdP:
    """Start oidc-provider with these clients and users; waits until discovery answers.

    Clients whose ``grant_types`` include ``refresh_token`` get a refresh token at sign-in (as Keycloak
    does); :meth:`IdP.change_account` disables accounts, changes groups or revokes grants at run time.
    ``profile_in_access_tokens``: a person's API access tokens carry preferred_username, e-mail and groups
    (Keycloak's default), not only sub.
    """
    require_node()
    if not (IDP_DIR / "node_modules" / "oidc-provider").exists():
        unavailable("the test IdP's node packages (oidc-provider) are not installed",
                    "(cd tests/oidc && npm ci)")
    port = port or free_port()
    issuer = f"http://127.0.0.1:{port}"
    config = {"port": port, "issuer": issuer, "clients": clients, "users": users,
              "jwks": jwks or rsa_jwks(), "api_audience": api_audience, "admin_secret": secrets.token_urlsafe(24),
              "rotate_refresh_tokens": rotate_refresh_tokens, "profile_in_access_tokens": profile_in_access_tokens}
    if access_token_ttl is not None:
        config["access_token_ttl"] = access_token_ttl
    if id_token_ttl is not None:
        config["id_token_ttl"] = id_token_ttl
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "idp.json"
    config_path.write_text(json.dumps(config))
    log = open(workdir / "idp.log", "ab")
    proc = subprocess.Popen(["node", str(IDP_DIR / "idp.mjs"), str(config_path)], cwd=IDP_DIR,
                            stdout=log, stderr=subprocess.STDOUT)
    idp = IdP(issuer, api_audience, config, proc, workdir, {c["client_id"]: c for c in clients})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((workdir / "idp.log").read_text())
        try:
            if httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=1).status_code == 200:
                return idp
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    idp.stop()
    raise RuntimeError("oidc-provider did not start:\n" + (workdir / "idp.log").read_text())
