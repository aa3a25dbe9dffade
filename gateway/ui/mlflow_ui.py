"""MLflow's own web UI (the React build in the ``mlflow`` wheel), served at ``/`` behind mlgate's sign-in.

The build is found once, when the app is built (:func:`find_build`), and only when the full ``mlflow``
distribution is installed at the version mlgate speaks (``pip install 'mlgate[mlflow-ui]'``): its bundle
calls exactly the routes of that version. Nothing of MLflow is imported; the files are only read.

* ``/`` answers the build's ``index.html`` to a signed-in person (anonymous: mlgate's ``/login``, which
  carries the ``#/...`` fragment back, see ``static/login.js``), with one addition: mlgate's bar
  (``static/mlflow-bar.js``), the way back to mlgate's own pages (account, admin, sign-out).
* ``/static-files/<path>`` answers the build's files: a path is resolved inside the build folder and
  must name a regular file there (no ``..``, no absolute paths, no symlink out); content types come from a
  fixed table (anything else is ``application/octet-stream``, with nosniff); the hashed bundle files
  are cached for a year, the rest for five minutes.
"""

from __future__ import annotations

import html
import importlib.metadata
import importlib.util
import logging
from dataclasses import dataclass, replace
from pathlib import Path

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from gateway import MLFLOW_COMPATIBLE_VERSION

log = logging.getLogger("mlgate.ui")

# The UI build mlgate serves: the one of the MLflow version whose REST API it speaks.
PINNED_VERSION = MLFLOW_COMPATIBLE_VERSION
INSTALL_HINT = "pip install 'mlgate[mlflow-ui]'"

# What MLflow's bundle needs, and nothing more (SECURITY.md, "MLflow's web UI"; found by walking every area in
# Chromium with a stricter policy and reading its refusals): scripts, fonts, images and its worker are files of
# this server, its data comes from this server; no eval and no inline script. The one relaxation is inline
# style: its components set style attributes and CSS-in-JS rules at run time ('unsafe-inline' for styles only).
# data: images and fonts are embedded in its bundle; blob: images are artifact previews it downloads first.
# Nothing is loaded from another site.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'"
)

# Extensions of the build's files; anything else is served as bytes (X-Content-Type-Options: nosniff).
CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8",
    ".cjs": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
    ".json": "application/json", ".map": "application/json", ".html": "text/html; charset=utf-8",
    ".txt": "text/plain; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png", ".ico": "image/x-icon",
    ".gif": "image/gif", ".jpg": "image/jpeg", ".webp": "image/webp", ".woff": "font/woff", ".woff2": "font/woff2",
    ".ttf": "font/ttf", ".eot": "application/vnd.ms-fontobject", ".wasm": "application/wasm",
}
IMMUTABLE = "public, max-age=31536000, immutable"  # the bundle's file names carry a content hash
SHORT = "public, max-age=300"
MAX_STATIC_PATH = 512
# Inserted before the bundle's <script>: the session's values as <meta> elements (no inline script), then mlgate's bar.
# Both scripts are deferred, so the bar's runs first and wraps fetch/XMLHttpRequest before the bundle calls.
BAR = ('<meta name="mlgate-csrf-token" content="{csrf}"><meta name="mlgate-user" content="{user}">'
       '<meta name="mlgate-admin" content="{admin}">'
       '<link rel="stylesheet" href="/static/mlflow-bar.css"><script defer src="/static/mlflow-bar.js"></script>')


@dataclass(frozen=True)
class MlflowUiBuild:
    """An installed MLflow UI build: its folder, its version and its index page split where the bar goes."""

    root: Path
    version: str
    index_head: str  # up to the bundle's first <script> (after <meta charset>)
    index_rest: str
    # The page's CSP with the configured framing rule (network.headers.frame_ancestors), see framed().
    content_security_policy: str = CONTENT_SECURITY_POLICY + "; frame-ancestors 'none'"

    def framed(self, frame_ancestors: str) -> MlflowUiBuild:
        """This build with the CSP's frame-ancestors of ``network.headers.frame_ancestors`` ("none" | "self")."""
        ancestors = "'none'" if frame_ancestors == "none" else "'self'"
        return replace(self, content_security_policy=f"{CONTENT_SECURITY_POLICY}; frame-ancestors {ancestors}")

    def index_for(self, csrf_token: str, user: str, is_admin: bool) -> bytes:
        """The index page for one signed-in person, with mlgate's bar and the session's CSRF token."""
        bar = BAR.format(csrf=html.escape(csrf_token), user=html.escape(user), admin="1" if is_admin else "")
        return (self.index_head + bar + self.index_rest).encode("utf-8")


def installed_version() -> str | None:
    """The version of the full ``mlflow`` distribution (``mlflow-skinny`` has no UI), or None."""
    try:
        return importlib.metadata.version("mlflow")
    except importlib.metadata.PackageNotFoundError:
        return None


def find_build() -> tuple[MlflowUiBuild | None, str | None]:
    """The installed UI build at the pinned version, or None and why not (without importing mlflow)."""
    version = installed_version()
    if version is None:
        return None, f"MLflow's web UI is not installed ({INSTALL_HINT})"
    if version != PINNED_VERSION:
        return None, (f"the installed mlflow {version} is not the pinned {PINNED_VERSION} whose API mlgate serves "
                      f"({INSTALL_HINT})")
    spec = importlib.util.find_spec("mlflow")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        root = Path(location, "server", "js", "build").resolve()
        index = root / "index.html"
        if index.is_file():
            text = index.read_text("utf-8")
            at = text.find("<script")  # before the bundle's script, after <meta charset>
            if at < 0 or at > text.find("</head>"):
                return None, f"mlflow {version}'s UI build has no script in its index.html head"
            return MlflowUiBuild(root, version, text[:at], text[at:]), None
    return None, f"mlflow {version} is installed without its UI build (server/js/build/index.html)"


def choose_build(web_ui: str) -> tuple[MlflowUiBuild | None, list[str]]:
    """The build to serve for the ``--web-ui`` setting, and the startup problems (``mlflow`` without it)."""
    if web_ui == "mlgate":
        return None, []
    build, why_not = find_build()
    if build is None and web_ui == "mlflow":
        return None, [f"--web-ui / MLGATE_WEB_UI: mlflow was chosen but {why_not}"]
    if build is None and installed_version() not in (None, PINNED_VERSION):
        log.warning("Serving mlgate's own pages at /: %s", why_not)
    return build, []


def build_of(request: Request) -> MlflowUiBuild:
    """The build this app serves (routes are only mounted when there is one)."""
    return request.app.state.mlflow_ui


def static_path(root: Path, raw: str) -> Path | None:
    """The regular file ``raw`` names inside ``root``, or None (traversal, hidden names, links out, folders)."""
    if not raw or len(raw) > MAX_STATIC_PATH or "\\" in raw or "\x00" in raw or raw.startswith("/"):
        return None
    parts = raw.split("/")
    if any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        return None
    candidate = root.joinpath(*parts).resolve()
    if not candidate.is_relative_to(root) or not candidate.is_file():
        return None
    return candidate


router = APIRouter(include_in_schema=False)


@router.get("/", operation_id="mlflow_ui.index")
def index(request: Request) -> Response:
    """MLflow's UI for a signed-in person (its own routing happens in the ``#/...`` fragment).

    The bundle's XHRs carry no CSRF header; mlgate's bar script adds the session's token (from a <meta>)
    to its same-origin writes, which cookie-authenticated writes need (gateway/authn.py).
    """
    principal = request.state.principal
    session_id = getattr(request.state, "session_id", None)
    csrf = request.app.state.identity.sessions.csrf_token(session_id) \
        if principal.auth_method == "session" and session_id else ""
    body = build_of(request).index_for(csrf, principal.name, principal.is_admin and not principal.read_only)
    # The bar's sign-out form posts from here: under the default no-referrer Chromium sends "Origin: null" with
    # a form post, which the cross-site write check refuses (403); same-origin keeps the Origin (as render.page).
    return Response(body, media_type="text/html; charset=utf-8",
                    headers={"Content-Security-Policy": build_of(request).content_security_policy,
                             "Cache-Control": "no-store", "Referrer-Policy": "same-origin"})


@router.get("/static-files/{path:path}", operation_id="mlflow_ui.static")
def static_file(request: Request, path: str) -> Response:
    """A file of the build, by a path that must stay inside it."""
    build = build_of(request)
    found = static_path(build.root, path)
    if found is None:
        return Response("Not found", status_code=404, media_type="text/plain")
    media_type = CONTENT_TYPES.get(found.suffix.lower(), "application/octet-stream")
    hashed = path.startswith("static/") or ".worker." in found.name
    headers = {"Cache-Control": IMMUTABLE if hashed else SHORT}
    if media_type.startswith("text/html"):
        headers["Content-Security-Policy"] = build.content_security_policy
    return FileResponse(found, media_type=media_type, headers=headers)
