"""A secret shown once after a redirect (a new access token): sealed into a short-lived cookie bound to the
session, so the page that shows it can be reloaded without repeating the action (redirect-after-post) and the
secret never appears in a URL, a log line or the database.

The cookie holds AES-256-GCM ciphertext (key derived with HKDF-SHA256 from the session secret; the associated
data names the session, so the cookie is useless in another session) of the issue time and the text. It is
read once: the page that shows the secret deletes the cookie in the same answer, and it expires after
``MAX_AGE`` seconds even when never read.
"""

from __future__ import annotations

import base64
import binascii
import os
import time
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAX_AGE = 60  # seconds between the POST and the page that shows the secret
_NONCE_BYTES = 12  # NIST SP 800-38D section 8.2: 96-bit random nonces


class ShownOnce:
    """Seal and open one-time notices bound to a session id."""

    def __init__(self, secret: str, clock: Callable[[], float] = time.time):
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"mlgate-shown-once",
                   info=b"one-time notice cookie v1").derive(secret.encode())
        self._aead = AESGCM(key)
        self._clock = clock

    def seal(self, text: str, *, session_id: str) -> str:
        """The cookie value carrying ``text`` for this session."""
        nonce = os.urandom(_NONCE_BYTES)
        plain = f"{int(self._clock())}:{text}".encode()
        return base64.urlsafe_b64encode(nonce + self._aead.encrypt(nonce, plain, session_id.encode())).decode()

    def open(self, sealed: str | None, *, session_id: str) -> str | None:
        """The text, or None when absent, altered, of another session or older than ``MAX_AGE``."""
        if not sealed or len(sealed) > 4096:
            return None
        try:
            raw = base64.urlsafe_b64decode(sealed)
            plain = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], session_id.encode()).decode()
        except (binascii.Error, ValueError, InvalidTag, UnicodeDecodeError):
            return None
        issued, _, text = plain.partition(":")
        if not issued.isdigit() or not 0 <= self._clock() - int(issued) <= MAX_AGE:
            return None
        return text
