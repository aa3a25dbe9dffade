#!/usr/bin/env python3
"""Print docs/architecture.md's diagrams from the code: the import graph and the request's middleware order.

    python3 docs/architecture_diagram.py            # both, as the text architecture.md embeds

The import graph is read with grimp (import-linter's own graph library), so it shows what the code
imports, including imports done inside functions; the middleware order is read off an app that
``create_app`` builds over a throwaway SQLite database.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PACKAGES = ("gateway", "auth", "policies", "tracking")
# gateway's own parts, at the granularity its layer contracts talk about.
GATEWAY_PARTS = ("app", "context", "authn", "authz", "errors", "settings", "identity", "middleware", "ops",
                 "routes", "ui", "commands", "cli", "mlflow_import", "workspaces", "lifecycle", "openapi")


def _group(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] not in PACKAGES:
        return None
    if parts[0] == "gateway" and len(parts) > 1 and parts[1] in GATEWAY_PARTS:
        return f"gateway.{parts[1]}"
    return parts[0]


def import_graph() -> list[tuple[str, str]]:
    """Edges (importer, imported) between the packages and gateway's parts."""
    import grimp

    graph = grimp.build_graph(*PACKAGES, include_external_packages=False)
    edges: set[tuple[str, str]] = set()
    for module in graph.modules:
        source = _group(module)
        for imported in graph.find_modules_directly_imported_by(module):
            target = _group(imported)
            if source is not None and target is not None and target != source:
                edges.add((source, target))
    return sorted(edges)


def _top(group: str) -> str:
    return group.split(".")[0]


def middleware_order() -> list[str]:
    """The middleware a request passes, outermost first, as ``create_app`` installs it."""
    from gateway.app import create_app
    from gateway.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(Settings(backend_store_uri=f"sqlite:///{tmp}/db.sqlite", artifacts_destination=f"{tmp}/a",
                                  data_dir=tmp, web_ui="mlgate"))
        names = [m.cls.__name__ for m in app.user_middleware]
        app.state.services.tracking.dispose()
    return names


def main() -> int:
    edges = import_graph()
    print("Packages (importer -> imported):")
    for source, target in sorted({(_top(a), _top(b)) for a, b in edges if _top(a) != _top(b)}):
        print(f"  {source} -> {target}")
    print("\nInside gateway (importer -> imported):")
    for source, target in edges:
        if source.startswith("gateway.") and target.startswith("gateway."):
            print(f"  {source} -> {target}")
    print("\nA request's way in (outermost first):")
    for i, name in enumerate(middleware_order(), 1):
        print(f"  {i:2}. {name}")
    print("  then routing -> Authorizer (router dependency) -> handler")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
