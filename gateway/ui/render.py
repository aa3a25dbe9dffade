"""Rendering: one Jinja2 environment with autoescaping on for every template, and the page filters.

Run names, params and tags are attacker-controlled; autoescape makes every ``{{ value }}`` text, and no
template marks anything ``|safe``.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import HTMLResponse

from gateway.ui.workspace_menu import workspace_menu

TEMPLATES = Path(__file__).resolve().parent / "templates"


def when(ms: int | None) -> str:
    """A millisecond timestamp as UTC date and time to the second."""
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def duration(info: dict) -> str:
    """A run's wall time (end - start) as 1h 2m 3s, 4.5s or 120ms; empty while it has no end."""
    start, end = info.get("start_time"), info.get("end_time")
    if start is None or end is None or end < start:
        return ""
    ms = end - start
    if ms < 1000:
        return f"{ms}ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f}s"
    seconds = ms // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h {minutes}m {seconds}s" if hours else f"{minutes}m {seconds}s"


def number(value: float | str | None) -> str:
    """A metric value: up to 6 significant digits; NaN and infinities as words."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value  # "NaN", "Infinity": how the JSON carries non-finite values
    if math.isnan(value):
        return "NaN"
    return f"{value:.6g}"


def size(n: int) -> str:
    """A byte count with a binary unit."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)  # pragma: no cover - the loop always returns


@cache
def environment() -> Environment:
    """The shared template environment (built once per process)."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(when=when, duration=duration, number=number, bytes=size)
    return env


def _signed_in(request: Request) -> tuple[str | None, str | None]:
    """The signed-in user's name, and the CSRF token of their session (sign-out and every other form)."""
    principal = getattr(request.state, "principal", None)
    if principal is None:
        return None, None
    session_id = getattr(request.state, "session_id", None)
    if principal.auth_method != "session" or not session_id:
        return principal.name, None  # a token or basic client has no session to end
    return principal.name, request.app.state.identity.sessions.csrf_token(session_id)


def page(request: Request, template: str, *, title: str, status: int = 200, headers: dict[str, str] | None = None,
         **context) -> HTMLResponse:
    """Render ``template`` inside the shared layout as an HTML response."""
    user, logout_token = _signed_in(request)
    principal = getattr(request.state, "principal", None)
    context.setdefault("section", "experiments")
    body = environment().get_template(template).render(
        title=title, user=user, logout_token=logout_token, csrf_token=logout_token,
        is_admin=bool(principal is not None and principal.is_admin and not principal.read_only),
        mlflow_ui=getattr(request.app.state, "mlflow_ui", None), workspace_menu=workspace_menu(request), **context)
    response = HTMLResponse(body, status_code=status, headers=headers)
    # The sign-out form posts from here: under no-referrer Chromium would send "Origin: null", which the
    # cross-site write check refuses; same-origin keeps the Origin and still sends no Referer elsewhere.
    response.headers["Referrer-Policy"] = "same-origin"
    return response
