"""Grant selectors as people write them and as grants are stored.

People (MLflow's permission APIs, the CLI, the admin API and UI, ``policy apply``) name one registered model
by its name, ``model:<name>``. A stored grant names the model's stable id instead, ``model-id:<id>``, so it
follows the model through a rename and never reaches a later model that takes the name (issue #18). Names
are resolved here when a grant is made, revoked or looked up, and shown again (the current name) when
grants are listed or exported. Policy-file grants keep ``model:<name>``: they mean whichever model has that
name, by design.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import Connection, select

from auth.grants import GrantRow
from policies.model import ResourceKind, ResourceSelector
from tracking.db.registry_tables import registered_models
from tracking.db.tables import experiments
from tracking.scope import DEFAULT_WORKSPACE

MODEL_ID_PREFIX = "model-id:"


class UnknownResource(LookupError):
    """The selector names a registered model that does not exist."""


def stored_selector(conn: Connection, text: str, *, granting: bool = False, workspace: str = DEFAULT_WORKSPACE) -> str:
    """The selector a stored grant uses for ``text`` (ValueError on bad syntax, UnknownResource for no model).

    ``model:<name>`` is the model of that name in ``workspace`` (names are unique per workspace only; the
    MLflow permissions API passes the request's, the administrator tools and the policy file mean
    'default'). A model of the same name elsewhere is no model here.

    ``granting``: a new grant on one experiment needs the experiment too (UnknownResource otherwise). Ids are
    never reused, so a grant naming one not made yet would wait for, and then open, whoever's experiment
    takes it next. Revoking and listing still name ids of experiments gone since.
    """
    selector = ResourceSelector.parse(text)
    if granting and selector.kind is ResourceKind.EXPERIMENT and selector.id is not None:
        found = None
        if selector.id.isascii() and selector.id.isdigit() and len(selector.id) <= 18:
            found = conn.execute(select(experiments.c.experiment_id)
                                 .where(experiments.c.experiment_id == int(selector.id))).scalar()
        if found is None:
            raise UnknownResource(f"Experiment {selector.id!r} does not exist")
        return selector.text
    if selector.kind is not ResourceKind.REGISTERED_MODEL or selector.pattern is not None:
        return selector.text
    if selector.name is not None:
        found = conn.execute(select(registered_models.c.model_id)
                             .where(registered_models.c.workspace == workspace,
                                    registered_models.c.name == selector.name)).scalar()
    else:
        found = conn.execute(select(registered_models.c.model_id)
                             .where(registered_models.c.model_id == selector.id)).scalar()
    if found is None:
        raise UnknownResource(f"Registered model {selector.name or selector.id!r} does not exist")
    return f"{MODEL_ID_PREFIX}{found}"


def shown_rows(conn: Connection, rows: list[GrantRow]) -> list[GrantRow]:
    """``rows`` with each ``model-id:<id>`` shown as ``model:<current name>`` (one query)."""
    ids = {r.resource.removeprefix(MODEL_ID_PREFIX) for r in rows if r.resource.startswith(MODEL_ID_PREFIX)}
    if not ids:
        return rows
    query = (select(registered_models.c.model_id, registered_models.c.name)
             .where(registered_models.c.model_id.in_(sorted(ids))))
    names = {row.model_id: row.name for row in conn.execute(query)}
    out = []
    for row in rows:
        model_id = row.resource.removeprefix(MODEL_ID_PREFIX)
        if row.resource.startswith(MODEL_ID_PREFIX) and model_id in names:
            row = replace(row, resource=f"model:{names[model_id]}")
        out.append(row)
    return out


def experiment_names(conn: Connection, resources: list[str]) -> dict[str, str]:
    """``{"experiment:<id>": <its name>}`` for the one-experiment selectors among ``resources`` (one query).

    Grants on one experiment name its id, which never changes; people know it by its name, so listings and
    exports show both. An experiment gone since has no entry.
    """
    ids = {text.removeprefix("experiment:") for text in resources if text.startswith("experiment:")}
    numbers = sorted(int(i) for i in ids if i.isascii() and i.isdigit() and len(i) <= 18)
    if not numbers:
        return {}
    query = select(experiments.c.experiment_id, experiments.c.name).where(experiments.c.experiment_id.in_(numbers))
    return {f"experiment:{row.experiment_id}": row.name for row in conn.execute(query)}
