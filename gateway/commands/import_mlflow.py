"""``mlgate import-mlflow``: copy an MLflow server's database, artifacts and basic-auth users into mlgate.

Idempotent: objects are matched by MLflow's ids, uuids and names, so a second run only adds what is new
and reports everything else as already present. The MLflow databases are opened read-only.
"""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

import click

from gateway.commands.output import EXIT_ERROR, CliError, emit_json


def _source_root_problems(root: str) -> list[str]:
    """Problems with MLflow's artifact root: an object store is contacted, a local path must be a directory."""
    from tracking.artifacts.storage import root_problems, store_scheme

    if store_scheme(root) not in (None, "file"):
        return root_problems(root)
    path = Path(root[len("file://"):] if root.startswith("file://") else root)
    return [f"'{path}' is not a directory"] if path.exists() and not path.is_dir() else []


class _Progress:
    """One progress bar on stderr over every object of every kind."""

    def __init__(self, bar):
        self.bar = bar

    def __call__(self, n: int) -> None:
        self.bar.update(n)


def _count_rows(engine, tables: dict, names: tuple[str, ...]) -> int:
    from sqlalchemy import func, select

    total = 0
    with engine.connect() as conn:
        for name in names:
            if name in tables:
                total += conn.execute(select(func.count()).select_from(tables[name])).scalar_one()
    return total


@click.command("import-mlflow")
@click.option("--from", "source_uri", required=True, metavar="URI",
              help="MLflow's tracking database (--backend-store-uri of the MLflow server), e.g. sqlite:///mlflow.db.")
@click.option("--auth-db", "auth_uri", default=None, metavar="URI",
              help="MLflow's basic-auth database (database_uri in basic_auth.ini), e.g. sqlite:///basic_auth.db.")
@click.option("--artifacts", "artifacts_root", default=None, metavar="DIR|URI",
              help="MLflow's artifact root (its --artifacts-destination or --default-artifact-root): a directory "
                   "(./mlartifacts, ./mlruns), s3://bucket/prefix, gs://bucket/prefix or "
                   "wasbs://container@account.blob.core.windows.net/prefix, read with the credentials mlgate's "
                   "server would use there. Only files inside it are copied.")
@click.option("--backend-store-uri", default="sqlite:///mlgate.db", show_default=True,
              help="mlgate's database (created or upgraded first).")
@click.option("--artifacts-destination", default="./mlartifacts", show_default=True,
              help="mlgate's artifact root (as given to mlgate server).")
@click.option("--output", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="Summary format on stdout.")
def import_mlflow(source_uri, auth_uri, artifacts_root, backend_store_uri, artifacts_destination, output) -> None:
    """Import experiments, runs, metrics, params, tags, datasets, models, versions, aliases and artifacts
    from an MLflow database, and users and permissions from MLflow's basic-auth database.

    Stop the MLflow server first (or import from a copy: sqlite3 mlflow.db ".backup copy.db"), so the
    import reads one consistent state. Running it again imports only what is new.

    Example: mlgate import-mlflow --from sqlite:///mlflow.db --auth-db sqlite:///basic_auth.db
    --artifacts ./mlartifacts (or --artifacts gs://mlflow-bucket/artifacts)
    """
    from auth.audit import Auditor
    from auth.store import IdentityStore
    from gateway.db import upgrade_database
    from gateway.mlflow_import.artifact_copy import ArtifactCopier, ArtifactCopyFailed
    from gateway.mlflow_import.auth_copy import copy_permissions, copy_roles, copy_users
    from gateway.mlflow_import.auth_source import read_auth
    from gateway.mlflow_import.logged_model_copy import LOGGED_MODEL_TABLES, copy_logged_models
    from gateway.mlflow_import.registry_copy import copy_registry
    from gateway.mlflow_import.source import SourceError, open_read_only, reflect
    from gateway.mlflow_import.tally import Tally
    from gateway.mlflow_import.tracking_copy import (
        REQUIRED_TRACKING_TABLES,
        TRACKING_TABLES,
        copy_experiments,
        copy_runs,
    )
    from tracking.artifacts.storage import destination_problems
    from tracking.db.engine import make_engine

    actor = f"offline-cli:{getpass.getuser()}"
    try:
        source = open_read_only(source_uri, "--from")
        tables = reflect(source, TRACKING_TABLES + LOGGED_MODEL_TABLES, REQUIRED_TRACKING_TABLES, "--from")
        snapshot = read_auth(open_read_only(auth_uri, "--auth-db"), "--auth-db") if auth_uri else None
    except SourceError as exc:
        raise CliError(str(exc), EXIT_ERROR) from None
    problems = destination_problems(artifacts_destination)
    if artifacts_root is not None:
        problems += [f"--artifacts: {problem}" for problem in _source_root_problems(artifacts_root)]
    if problems:
        raise CliError("; ".join(problems), EXIT_ERROR)
    if "://" not in artifacts_destination:
        # As the server does: a local artifact root is created, then addressed by its absolute path.
        Path(artifacts_destination).mkdir(parents=True, exist_ok=True)
        artifacts_destination = str(Path(artifacts_destination).resolve())
    target = make_engine(backend_store_uri)
    upgrade_database(target)
    tally = Tally()
    copier = ArtifactCopier(artifacts_root, artifacts_destination, tally)
    total = _count_rows(source, tables, ("experiments", "runs", "logged_models", "registered_models"))
    if snapshot is not None:
        total += len(snapshot.users) + len(snapshot.permissions)
    store = IdentityStore(target)
    try:
        with click.progressbar(length=total, label="importing from MLflow", file=sys.stderr) as bar:
            advance = _Progress(bar)
            experiment_ids = copy_experiments(tables, source, target, tally, advance)
            imported_runs = copy_runs(tables, source, target, experiment_ids, tally, advance, copier.copy_run)
            imported_models = copy_logged_models(tables, source, target, experiment_ids, tally, advance,
                                                 copier.copy_logged_model)
            copy_registry(tables, source, target, imported_runs, imported_models, tally, advance)
            if snapshot is not None:
                copy_users(snapshot, store, tally, advance)
                copy_roles(snapshot, store, tally)
                copy_permissions(snapshot, target, experiment_ids, actor, tally, advance)
    except ArtifactCopyFailed as exc:
        Auditor(store).record("mlflow-import", "failure", actor=actor, target="mlflow", reason=str(exc))
        target.dispose()
        source.dispose()
        raise CliError(f"the import stopped: {exc}", EXIT_ERROR) from None
    counts = tally.counts()
    # Recorded after every write transaction has ended: the audit store writes on its own connection.
    Auditor(store).record("mlflow-import", "success", actor=actor, target="mlflow",
                          reason="; ".join(f"{kind}: {c['imported']} imported" for kind, c in counts.items()
                                           if c["imported"])[:1000] or "nothing new")
    target.dispose()
    source.dispose()
    if output == "json":
        emit_json(tally.to_json())
    else:
        click.echo(tally.render())
