"""Copy a run's artifact files from MLflow's artifact root into mlgate's artifact storage.

Only files inside the ``--artifacts`` directory are read: an MLflow database names its runs' artifact
locations itself, and a crafted one must not make the import copy other local files (``/etc``...)
into a run that someone else can download. Symbolic links are skipped for the same reason.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from gateway.mlflow_import.logged_model_copy import ImportedModel
from gateway.mlflow_import.tally import Tally
from gateway.mlflow_import.tracking_copy import ImportedRun
from tracking.artifacts.paths import ArtifactPath, parse_artifact_path
from tracking.artifacts.storage import repository_for_root
from tracking.errors import MlflowError

CHUNK = 1024 * 1024
KIND = "artifacts"


class ArtifactCopier:
    """Copies the files of imported runs; a file already there with the same size counts as present."""

    def __init__(self, source_root: str | None, destination_root: str, tally: Tally):
        self.source_root = Path(source_root).resolve() if source_root else None
        self.repository = repository_for_root(destination_root)
        self.tally = tally

    def _source_dir(self, artifact_uri: str | None) -> Path | str:
        """The run's local artifact directory, or the reason it cannot be read."""
        if self.source_root is None:
            return "MLflow's artifact root was not given (--artifacts)"
        parts = urlsplit(artifact_uri or "")
        if parts.scheme == "mlflow-artifacts":
            # The MLflow server's proxied artifacts: <artifacts destination>/<path>.
            candidate = self.source_root / unquote(parts.path).lstrip("/")
        elif parts.scheme in ("", "file") and not parts.netloc:
            candidate = Path(unquote(parts.path))
        else:
            return f"the '{parts.scheme}' artifact store is not copied (copy those files yourself)"
        resolved = candidate.resolve()
        if not resolved.is_relative_to(self.source_root):
            return "the run's artifact location is outside --artifacts"
        return resolved

    def copy_run(self, run: ImportedRun) -> None:
        """Copy every file under the run's MLflow artifact directory to its mlgate location."""
        self.copy_directory(run.source_uri, f"{run.experiment_id}/{run.run_id}/artifacts", "runs")

    def copy_logged_model(self, model: ImportedModel) -> None:
        """Copy a logged model's artifact files to its mlgate location."""
        self.copy_directory(model.source_uri, f"{model.experiment_id}/models/{model.model_id}/artifacts",
                            "logged models")

    def copy_directory(self, source_uri: str | None, target: str, owners: str) -> None:
        """Copy every file under an MLflow artifact directory to ``target`` (root-relative) in mlgate."""
        found = self._source_dir(source_uri)
        if isinstance(found, str):
            self.tally.skipped(KIND, f"{owners} whose artifacts were not read: {found}")
            return
        if not found.is_dir():
            return  # nothing was logged there
        sizes: dict[tuple[str, ...], dict[str, int | None]] = {}
        for directory, subdirs, files in os.walk(found, followlinks=False):
            for name in sorted(subdirs):
                if os.path.islink(os.path.join(directory, name)):
                    self.tally.skipped(KIND, "symbolic links (not followed)")
            for name in sorted(files):
                path = os.path.join(directory, name)
                if os.path.islink(path):
                    self.tally.skipped(KIND, "symbolic links (not followed)")
                    continue
                relative = os.path.relpath(path, found).replace(os.sep, "/")
                self._copy_file(target, Path(path), relative, sizes)

    def _copy_file(self, prefix: str, path: Path, relative: str,
                   sizes: dict[tuple[str, ...], dict[str, int | None]]) -> None:
        try:
            target = parse_artifact_path(f"{prefix}/{relative}", for_write=True)
        except MlflowError:
            self.tally.skipped(KIND, "file names mlgate refuses (control characters, reserved names)")
            return
        parent = ArtifactPath(target.segments[:-1], target.owner, target.owner_depth)
        if parent.segments not in sizes:
            sizes[parent.segments] = {e.name: e.file_size for e in self.repository.list_dir(parent) if not e.is_dir}
        size = path.stat().st_size
        if sizes[parent.segments].get(target.name) == size:
            self.tally.present(KIND)
            return
        writer = self.repository.open_writer(target)
        try:
            # O_NOFOLLOW: a link swapped in after the walk is refused, not followed.
            with os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb") as handle:
                while chunk := handle.read(CHUNK):
                    writer.write(chunk)
            writer.commit()
        except BaseException:
            writer.abort()
            raise
        self.tally.imported(KIND)
