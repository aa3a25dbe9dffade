"""A real OpenID Provider and an mlgate server that trusts it, for the browser SSO tests.

The IdP must know mlgate's redirect URI exactly (port included), so the server's port is picked first.
The server runs with --dev (plain-http cookies) and a policy with one provider named ``corp``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.conftest import LiveServer, start_server
from tests.idp import IdP, start_idp
from tests.services import free_port

BUTTON = "Sign in with Corp SSO"


@contextmanager
def sso_stack(workdir: Path, *, users: dict[str, dict], secret: str, allowed_groups: Sequence[str],
              grants: Sequence[str], experiments: Sequence[str], refresh_tokens: bool = False,
              provider_extra: str = "", access_extra: str = "",
              env: dict[str, str] | None = None) -> Iterator[tuple[LiveServer, IdP]]:
    """Start the IdP and the server; ``grants`` are policy-file grant lines, ``experiments`` made by the admin;
    ``access_extra`` is added under ``access:`` (e.g. ``create`` rules), ``env`` to the server's environment."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    grant_types = ["authorization_code", "refresh_token"] if refresh_tokens else ["authorization_code"]
    idp = start_idp(workdir / "idp", users=users, clients=[{
        "client_id": "mlgate", "client_secret": secret, "redirect_uris": [f"{base}/sso/corp/callback"],
        "post_logout_redirect_uris": [f"{base}/login"], "grant_types": grant_types, "response_types": ["code"]}])
    grant_lines = "\n".join(f"    - {g}" for g in grants)
    policy = workdir / "policy.yaml"
    policy.write_text(f"""
version: 1
auth:
  oidc:
    providers:
      - name: corp
        display_name: Corp SSO
        issuer: {idp.issuer}
        client_id: mlgate
        client_secret: ${{CORP_SECRET}}
        allowed_groups: [{", ".join(allowed_groups)}]
{provider_extra}
access:
  grants:
{grant_lines}
{access_extra}
""")
    try:
        server = start_server(workdir / "server", f"sqlite:///{workdir / 'mlgate.db'}", "--dev",
                              "--policy", str(policy), port=port, env={"CORP_SECRET": secret, **(env or {})})
    except Exception:
        idp.stop()
        raise
    try:
        for name in experiments:
            httpx.post(f"{server.url}/api/2.0/mlflow/experiments/create", json={"name": name},
                       auth=server.admin_auth, timeout=30).raise_for_status()
        yield server, idp
    finally:
        server.stop()
        idp.stop()


def sign_in(page, server: LiveServer, login: str, next_path: str = "/api/2.0/mlflow/users/current") -> None:
    """From mlgate's login page through the IdP's login and consent pages."""
    page.goto(f"{server.url}/login?next={next_path}")
    page.get_by_text(BUTTON).click()
    page.wait_for_selector("input[name=login]")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "any-password")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    if page.locator("input[name=prompt][value=consent]").count():
        page.click("button[type=submit]")
    page.wait_for_load_state()
