"""Visibility scopes: which experiments and registered models a caller may see.

The gateway computes a scope per request from its policy and stores it on the request; every search
applies it *inside* the SQL query, so counts, ordering and page tokens stay correct. Tracking never
asks who the caller is; it only honours the scope it is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from sqlalchemy import ColumnElement, and_, false, not_, or_, true

REQUEST_STATE_KEY = "visibility_scope"
# The request's workspace (the gateway validates X-MLFLOW-WORKSPACE and membership, then sets it here).
WORKSPACE_STATE_KEY = "workspace"
# MLflow's name for the workspace of every request without an X-MLFLOW-WORKSPACE header, and of all
# data that existed before workspaces (migration 0006).
DEFAULT_WORKSPACE = "default"


@dataclass(frozen=True)
class ResourceScope:
    """One resource kind's visibility: everything, or an allow-list of ids and name globs, minus denials."""

    unrestricted: bool = True
    ids: frozenset[str] = field(default_factory=frozenset)
    name_patterns: tuple[str, ...] = ()
    denied_ids: frozenset[str] = field(default_factory=frozenset)
    denied_name_patterns: tuple[str, ...] = ()
    # Only resources of this workspace are visible (None: the caller filters by workspace itself, as
    # tracking's internal scopes do once the visible experiment ids are resolved).
    workspace: str | None = None

    @classmethod
    def nothing(cls) -> ResourceScope:
        """A scope that shows no resource."""
        return cls(unrestricted=False)

    def in_workspace(self, workspace: str) -> ResourceScope:
        """This scope, limited to ``workspace``."""
        return replace(self, workspace=workspace)

    def allows(self, resource_id: str, name: str | None) -> bool:
        """Whether one resource is visible (the same rule as :meth:`clause`, evaluated in Python)."""
        from fnmatch import fnmatchcase

        if resource_id in self.denied_ids:
            return False
        if name is not None and any(fnmatchcase(name, p) for p in self.denied_name_patterns):
            return False
        if self.unrestricted or resource_id in self.ids:
            return True
        return name is not None and any(fnmatchcase(name, p) for p in self.name_patterns)

    def clause(self, id_column: ColumnElement, name_column: ColumnElement | None,
               workspace_column: ColumnElement | None) -> ColumnElement[bool]:
        """A SQL condition selecting the visible rows of a table with these id, name and workspace columns."""
        if self.workspace is not None:
            if workspace_column is None:
                return false()  # a scope limited to a workspace never widens on a table that cannot say
            return and_(workspace_column == self.workspace,
                        replace(self, workspace=None).clause(id_column, name_column, None))
        if self.unrestricted:
            allowed: ColumnElement[bool] = true()
        else:
            parts = []
            if self.ids:
                parts.append(id_column.in_(sorted(self.ids)))
            if name_column is not None:
                parts.extend(name_column.like(glob_to_like(p), escape="\\") for p in self.name_patterns)
            allowed = or_(*parts) if parts else false()
        denials = []
        if self.denied_ids:
            denials.append(id_column.in_(sorted(self.denied_ids)))
        if name_column is not None:
            denials.extend(name_column.like(glob_to_like(p), escape="\\") for p in self.denied_name_patterns)
        if denials:
            return and_(allowed, not_(or_(*denials)))
        return allowed


@dataclass(frozen=True)
class VisibilityScope:
    """What a caller may see: experiments (and everything inside them) and registered models."""

    experiments: ResourceScope = field(default_factory=ResourceScope)
    registered_models: ResourceScope = field(default_factory=ResourceScope)


UNRESTRICTED = VisibilityScope()


def request_workspace(request) -> str:
    """The workspace the gateway resolved for this request (MLflow's ``default`` when none was named)."""
    return getattr(request.state, WORKSPACE_STATE_KEY, DEFAULT_WORKSPACE)


def glob_to_like(pattern: str) -> str:
    """Translate a shell glob (``*``, ``?``) into a SQL LIKE pattern with ``\\`` as the escape."""
    out = []
    for ch in pattern:
        if ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        elif ch in "%_\\":
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def visibility_scope(request) -> VisibilityScope:
    """The scope the gateway put on this request, else everything of the request's workspace."""
    scope = getattr(request.state, REQUEST_STATE_KEY, None)
    if scope is None:
        workspace = request_workspace(request)
        scope = VisibilityScope(experiments=ResourceScope(workspace=workspace),
                                registered_models=ResourceScope(workspace=workspace))
    return scope
