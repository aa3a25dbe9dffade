"""Provider tokens kept server-side, encrypted at rest (AES-256-GCM) and bound to the row they belong to.

A refresh token is a long-lived credential for the user's account at the identity provider: it never
travels in a cookie, a URL or a log line, and the database holds only ciphertext. The key is derived
(HKDF-SHA256) from the session secret, so a copy of the database alone reveals nothing, and the
associated data names the session and the token's kind, so a ciphertext moved to another row (or used as
another kind of token) does not decrypt. A changed secret makes old ciphertexts unreadable, which ends
those sessions the safe way: by asking for a new sign-in.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = "v1."
_NONCE_BYTES = 12  # NIST SP 800-38D section 8.2: 96-bit random nonces


class TokenVault:
    """Seal and open provider tokens with a key derived from the session secret."""

    def __init__(self, secret: str):
        if len(secret) < 32:
            raise ValueError("the token vault needs a secret of at least 32 characters")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"mlgate-token-vault",
                   info=b"oidc provider tokens v1").derive(secret.encode())
        self._aead = AESGCM(key)

    @staticmethod
    def _context(owner: str, kind: str) -> bytes:
        return f"{kind}\x00{owner}".encode()

    def seal(self, token: str, *, owner: str, kind: str) -> str:
        """Ciphertext of ``token`` bound to ``owner`` (a session id) and ``kind`` (refresh, id)."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, token.encode(), self._context(owner, kind))
        return _VERSION + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, sealed: str | None, *, owner: str, kind: str) -> str | None:
        """The token, or None when there is none or it cannot be decrypted for this owner and kind."""
        if not sealed or not sealed.startswith(_VERSION):
            return None
        try:
            raw = base64.urlsafe_b64decode(sealed[len(_VERSION):])
            return self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], self._context(owner, kind)).decode()
        except (binascii.Error, ValueError, InvalidTag, UnicodeDecodeError):
            return None
