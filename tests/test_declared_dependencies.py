"""pyproject.toml declares what mlgate's packages import, and every declared runtime dependency has a use."""

from __future__ import annotations

import ast
import sys
from importlib import metadata
from pathlib import Path

from packaging.utils import canonicalize_name

from tests.security.lock_deps import root_requirements

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("gateway", "tracking", "auth", "policies")
# Declared but never imported by name: each is used through another library, and says how.
USED_INDIRECTLY = {
    "python-multipart": "Starlette parses the UI's and login's form posts with it",
    "bcrypt": "passlib (libpass) hashes passwords with it",
    "psycopg": "SQLAlchemy's postgresql+psycopg dialect loads it for PostgreSQL databases",
}


def imported_top_level_modules(packages=PACKAGES) -> dict[str, str]:
    """Imported module (full dotted name) -> the first file importing it, for every import in mlgate's packages."""
    found: dict[str, str] = {}
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name, str(path.relative_to(ROOT)))
    return found


def third_party(modules: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Distribution (canonical name) -> (module, file), for the modules neither stdlib nor mlgate's own."""
    owners = metadata.packages_distributions()
    out: dict[str, tuple[str, str]] = {}
    for module, where in modules.items():
        top = module.split(".")[0]
        if top in sys.stdlib_module_names or top in PACKAGES or top == "__future__":
            continue
        candidates = owners.get(top, [f"<no installed distribution provides {top}>"])
        if len(candidates) > 1:  # a namespace package (google, opentelemetry): the one holding this module
            candidates = [dist for dist in candidates if _provides(dist, module)] or candidates
        for dist in candidates:
            out.setdefault(canonicalize_name(dist), (module, where))
    return out


def _provides(dist: str, module: str) -> bool:
    """Whether distribution ``dist`` installs ``module`` (a package directory or a module file)."""
    prefix = module.replace(".", "/")
    return any(str(file).startswith(prefix + "/") or str(file) == prefix + ".py"
               for file in metadata.distribution(dist).files or ())


# Optional extras that mlgate's own packages import from (lazily, only when that store is configured).
STORE_EXTRAS = ("gcs", "azure")


def declared_runtime() -> set[str]:
    """The distributions mlgate's packages may import: the dependencies and the object-store extras."""
    return {canonicalize_name(req.name) for req in root_requirements(extras=STORE_EXTRAS)}


def problems(declared: set[str], used: dict[str, tuple[str, str]]) -> list[str]:
    """Every import without a declaration and every declaration without a use."""
    out = [f"{module} (distribution {dist}) is imported by {where} but not declared in pyproject.toml"
           for dist, (module, where) in sorted(used.items()) if dist not in declared]
    out += [f"{dist} is declared but nothing in {', '.join(PACKAGES)} imports it"
            for dist in sorted(declared - set(used) - {canonicalize_name(n) for n in USED_INDIRECTLY})]
    return out


def test_declared_dependencies_match_the_imports():
    assert problems(declared_runtime(), third_party(imported_top_level_modules())) == []


def test_the_check_sees_an_undeclared_import_and_an_unused_declaration():
    used = third_party(imported_top_level_modules())
    declared = declared_runtime()
    assert problems(declared - {"joserfc"}, used) == [
        "joserfc.jwk (distribution joserfc) is imported by auth/oidc.py but not declared in pyproject.toml"]
    assert problems(declared | {"slowapi"}, used) == [
        "slowapi is declared but nothing in gateway, tracking, auth, policies imports it"]
