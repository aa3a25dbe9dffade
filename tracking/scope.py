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
    """One resource kind's visibility: everything, or an allow-list of ids and name globs, minus denials.

    The default shows nothing: a scope that allows must say so (``unrestricted=True`` or what it lists).
    """

    unrestricted: bool = False
    ids: frozenset[str] = field(default_factory=frozenset)
    name_patterns: tuple[str, ...] = ()
    denied_ids: frozenset[str] = field(default_factory=frozenset)
    denied_name_patterns: tuple[str, ...] = ()
    # Exact names (registered models named by a policy file): shown, hidden unless allowed by id, denied.
    names: frozenset[str] = field(default_factory=frozenset)
    hidden_names: frozenset[str] = field(default_factory=frozenset)
    denied_names: frozenset[str] = field(default_factory=frozenset)
    # Only resources of this workspace are visible (None: the caller filters by workspace itself, as
    # tracking's internal scopes do once the visible experiment ids are resolved).
    workspace: str | None = None
    # A further scope every visible resource must also pass (the gateway's scoped tokens): an intersection.
    within: ResourceScope | None = None

    @classmethod
    def nothing(cls) -> ResourceScope:
        """A scope that shows no resource."""
        return cls(unrestricted=False)

    def in_workspace(self, workspace: str) -> ResourceScope:
        """This scope, limited to ``workspace``."""
        return replace(self, workspace=workspace)

    def allows(self, resource_id: str, name: str | None, workspace: str | None = None) -> bool:
        """Whether one resource of ``workspace`` is visible (the same rule as :meth:`clause`, in Python).

        A scope limited to a workspace shows nothing of another one, nor a resource whose workspace the
        caller did not say (fail closed).
        """
        from fnmatch import fnmatchcase

        if self.workspace is not None and workspace != self.workspace:
            return False
        if self.within is not None and not self.within.allows(resource_id, name, workspace):
            return False
        if resource_id in self.denied_ids:
            return False
        if name is not None and (name in self.denied_names
                                 or any(fnmatchcase(name, p) for p in self.denied_name_patterns)):
            return False
        if resource_id in self.ids or (name is not None and name in self.names):
            return True
        if name is not None and name in self.hidden_names:
            return False
        return self.unrestricted or (name is not None and any(fnmatchcase(name, p) for p in self.name_patterns))

    def clause(self, id_column: ColumnElement, name_column: ColumnElement | None,
               workspace_column: ColumnElement | None) -> ColumnElement[bool]:
        """A SQL condition selecting the visible rows of a table with these id, name and workspace columns."""
        if self.within is not None:
            return and_(replace(self, within=None).clause(id_column, name_column, workspace_column),
                        self.within.clause(id_column, name_column, workspace_column))
        if self.workspace is not None:
            if workspace_column is None:
                return false()  # a scope limited to a workspace never widens on a table that cannot say
            return and_(workspace_column == self.workspace,
                        replace(self, workspace=None).clause(id_column, name_column, None))
        if self.unrestricted:
            broad: ColumnElement[bool] = true()
        else:
            patterns = [] if name_column is None else [name_column.like(glob_to_like(p), escape="\\")
                                                        for p in self.name_patterns]
            broad = or_(*patterns) if patterns else false()
        if self.hidden_names and name_column is not None:
            broad = and_(broad, name_column.not_in(sorted(self.hidden_names)))
        exact = []
        if self.ids:
            exact.append(id_column.in_(sorted(self.ids)))
        if self.names and name_column is not None:
            exact.append(name_column.in_(sorted(self.names)))
        allowed = or_(*exact, broad) if exact else broad
        denials = []
        if self.denied_ids:
            denials.append(id_column.in_(sorted(self.denied_ids)))
        if name_column is not None:
            if self.denied_names:
                denials.append(name_column.in_(sorted(self.denied_names)))
            denials.extend(name_column.like(glob_to_like(p), escape="\\") for p in self.denied_name_patterns)
        if denials:
            return and_(allowed, not_(or_(*denials)))
        return allowed


@dataclass(frozen=True)
class VisibilityScope:
    """What a caller may see: experiments (and everything inside them) and registered models (nothing unless set)."""

    experiments: ResourceScope = field(default_factory=ResourceScope.nothing)
    registered_models: ResourceScope = field(default_factory=ResourceScope.nothing)


# Set explicitly by the gateway for administrators; never assumed.
UNRESTRICTED = VisibilityScope(ResourceScope(unrestricted=True), ResourceScope(unrestricted=True))
NOTHING = VisibilityScope()


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
    """The scope the gateway put on this request; nothing is visible when none was set (fail closed).

    A handler that lists or searches and is reached without the gateway setting a scope (a route the
    table does not mark as scoped, an app composed without the authorizer) shows an empty result,
    never everything.
    """
    return getattr(request.state, REQUEST_STATE_KEY, NOTHING)
