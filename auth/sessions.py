"""Browser sessions: a signed cookie naming a server-side session row.

The cookie holds only a random session id, signed with itsdangerous so a forged or altered id is refused
before any lookup. The row makes revocation work across processes: logout marks it revoked, and a bump of
the user's generation (password change, disable, "log out everywhere") ends every older session.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

from auth.errors import Unauthenticated
from auth.flash import ShownOnce
from auth.store import IdentityStore, SessionRow, UserRow
from policies.file.auth import SessionConfig

COOKIE_NAME = "mlgate_session"
CSRF_COOKIE_NAME = "mlgate_csrf"
CSRF_HEADER = "X-CSRF-Token"
MIN_SECRET_LENGTH = 32


@dataclass(frozen=True)
class ActiveSession:
    """A session that passed every check, with its user."""

    session: SessionRow
    user: UserRow


class SessionManager:
    """Starts, resolves and ends sessions; builds their cookies and CSRF tokens."""

    def __init__(self, secret: str, store: IdentityStore, config: SessionConfig, *, secure: bool,
                 clock: Callable[[], float] = time.time):
        if len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(f"the session secret must be at least {MIN_SECRET_LENGTH} characters")
        self._serializer = URLSafeTimedSerializer(secret, salt="mlgate-session")
        self._form_serializer = URLSafeTimedSerializer(secret, salt="mlgate-form-csrf")
        self._csrf_key = hashlib.sha256(b"mlgate-csrf\x00" + secret.encode()).digest()
        self.store = store
        self.config = config
        self.secure = secure
        self._clock = clock
        self.notices = ShownOnce(secret, clock)  # a new token's secret, shown once after redirect-after-post

    def start(self, user: UserRow) -> tuple[str, str]:
        """Create a session for ``user``; returns (cookie value, session id)."""
        session_id = secrets.token_urlsafe(32)
        self.store.create_session(session_id, user.id, user.generation)
        return self._serializer.dumps(session_id), session_id

    def resolve(self, cookie: str) -> ActiveSession:
        """The live session named by ``cookie``, or :class:`Unauthenticated` saying why not."""
        try:
            session_id = self._serializer.loads(cookie, max_age=self.config.absolute_timeout_seconds)
        except BadSignature:
            raise Unauthenticated("The session cookie is invalid or expired; log in again.") from None
        found = self.store.session_with_user(session_id) if isinstance(session_id, str) else None
        if found is None:
            raise Unauthenticated("The session has ended; log in again.")
        session, user = found
        now = int(self._clock() * 1000)
        if session.revoked_at is not None or user.disabled or session.generation != user.generation:
            raise Unauthenticated("The session has ended; log in again.")
        if now - session.created_at > self.config.absolute_timeout_seconds * 1000:
            raise Unauthenticated("The session has expired; log in again.")
        if now - session.last_seen_at > self.config.idle_timeout_seconds * 1000:
            raise Unauthenticated("The session expired after inactivity; log in again.")
        # Write the activity time only when it moved enough to matter for the idle timeout.
        if now - session.last_seen_at > min(60_000, self.config.idle_timeout_seconds * 250):
            self.store.touch_session(session.id, now)
        return ActiveSession(session, user)

    def session_id_of(self, cookie: str) -> str | None:
        """The session id a well-signed cookie names, live or not (to explain why it ended)."""
        try:
            session_id = self._serializer.loads(cookie, max_age=self.config.absolute_timeout_seconds)
        except BadSignature:
            return None
        return session_id if isinstance(session_id, str) else None

    def end(self, session_id: str) -> None:
        """Revoke one session (logout)."""
        self.store.revoke_session(session_id)

    def csrf_token(self, session_id: str) -> str:
        """The CSRF token bound to a session (sent back in a form field or the X-CSRF-Token header)."""
        return hmac.new(self._csrf_key, session_id.encode(), hashlib.sha256).hexdigest()

    def check_csrf(self, session_id: str, presented: str | None) -> bool:
        """Whether ``presented`` is the session's CSRF token (constant-time)."""
        return bool(presented) and hmac.compare_digest(self.csrf_token(session_id), presented)

    # --- anonymous forms (the login page): a signed double-submit token ---------------------------
    def new_form_token(self) -> str:
        """A signed random token, set as a cookie and echoed in the form."""
        return self._form_serializer.dumps(secrets.token_urlsafe(16))

    def check_form_token(self, cookie: str | None, field: str | None, max_age: int = 3600) -> bool:
        """Whether the form field matches the cookie and the signature is fresh."""
        if not cookie or not field or not hmac.compare_digest(cookie, field):
            return False
        try:
            self._form_serializer.loads(field, max_age=max_age)
        except BadSignature:
            return False
        return True

    def cookie_attributes(self, max_age: int | None) -> dict:
        """Attributes for Set-Cookie: HttpOnly, SameSite=Lax, Secure unless in development mode."""
        return {"httponly": True, "samesite": "lax", "secure": self.secure, "path": "/", "max_age": max_age}
