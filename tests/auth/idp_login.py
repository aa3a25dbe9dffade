"""Drive the test IdP's development login and consent pages over HTTP, as a browser would."""

from __future__ import annotations

import html
import re
from urllib.parse import urljoin

import httpx

_FORM = re.compile(r'<form[^>]*action="([^"]+)"[^>]*method="post"[^>]*>(.*?)</form>', re.S)
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')


def sign_in_at_idp(http: httpx.Client, url: str, login: str, redirect_prefix: str) -> str:
    """Follow the provider's pages from ``url`` until it redirects to ``redirect_prefix``; that URL."""
    method, data = "GET", None
    for _ in range(12):
        response = http.request(method, url, data=data)
        if response.is_redirect:
            location = urljoin(url, response.headers["location"])
            if location.startswith(redirect_prefix):
                return location
            method, data, url = "GET", None, location
            continue
        match = _FORM.search(response.text)
        if response.status_code != 200 or match is None:
            raise AssertionError(f"unexpected IdP page {response.status_code}: {response.text[:500]}")
        fields = {k: html.unescape(v) for k, v in _HIDDEN.findall(match.group(2))}
        if fields.get("prompt") == "login":
            fields.update(login=login, password="any-password")
        method, data, url = "POST", fields, urljoin(url, html.unescape(match.group(1)))
    raise AssertionError("the IdP did not redirect back")
