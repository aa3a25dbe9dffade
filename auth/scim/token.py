"""The SCIM provisioning token: one bearer secret from the policy file, good for /scim/v2 and nothing else."""

from __future__ import annotations

import hashlib
import hmac

PREFIX = "/scim/v2"


def is_scim_path(path: str) -> bool:
    """Whether ``path`` is under the SCIM prefix (where no other credential is looked at)."""
    return path == PREFIX or path.startswith(PREFIX + "/")


class ScimToken:
    """Checks ``Authorization: Bearer <token>`` in constant time (RFC 6750 section 2.1)."""

    def __init__(self, secret: str):
        if not secret:
            raise ValueError("the SCIM token is empty")
        # Digests have one length, so the comparison's time says nothing about the secret's length either.
        self._digest = hashlib.sha256(secret.encode("utf-8")).digest()

    def matches(self, authorization: str | None) -> bool:
        """Whether the header carries exactly this token."""
        scheme, _, presented = (authorization or "").partition(" ")
        candidate = hashlib.sha256(presented.strip().encode("utf-8", "surrogatepass")).digest()
        # Compare even for a wrong scheme, so both refusals take the same time.
        return hmac.compare_digest(candidate, self._digest) and scheme.lower() == "bearer"
