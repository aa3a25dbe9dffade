"""CSRF for the UI's forms: every POST carries the session's CSRF token in a ``csrf_token`` field.

The authentication middleware checks the ``X-CSRF-Token`` header on cookie-authenticated writes, except on
the UI's form paths (:data:`FORM_PREFIXES`): a plain HTML form cannot send headers, so the dependency
below checks the form field instead, against the same per-session token (``SessionManager.csrf_token``).
Forms are for browser sessions only: a bearer or basic client has no session to bind a token to.
"""

from __future__ import annotations

from fastapi import Depends
from starlette.requests import Request

from tracking.errors import MlflowError

FORM_PREFIXES = ("/account/", "/admin/")  # every UI form posts below one of these
MAX_FIELD = 8192
MAX_FIELDS = 40


def _refused(message: str) -> MlflowError:
    return MlflowError(message, "PERMISSION_DENIED")


async def checked_form(request: Request) -> dict[str, str]:
    """The posted fields, after checking the session's CSRF token (403 otherwise; nothing is changed)."""
    principal = getattr(request.state, "principal", None)
    session_id = getattr(request.state, "session_id", None)
    if principal is None or principal.auth_method != "session" or not session_id:
        raise _refused("Forms need a signed-in browser session.")
    try:
        form = await request.form(max_files=0, max_fields=MAX_FIELDS, max_part_size=MAX_FIELD)
    except Exception:
        raise _refused("The form could not be read; reload the page and try again.") from None
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    if not request.app.state.identity.sessions.check_csrf(session_id, fields.get("csrf_token")):
        raise _refused("The form's security token is missing or expired; reload the page and try again.")
    return fields


FORM = Depends(checked_form)
