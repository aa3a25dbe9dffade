"""Copy a run's artifact files from MLflow's artifact root into mlgate's artifact storage.

The source is a local directory or an object store (see :mod:`gateway.mlflow_import.artifact_sources`);
the destination is mlgate's artifact root, whatever its backend. Every file is streamed through an
:class:`~tracking.artifacts.repository.ArtifactWriter`, which publishes nothing before its commit: a copy
that fails midway (the source or the destination stops answering) aborts that file, so mlgate holds either
the whole file or none of it, and the import stops with :class:`ArtifactCopyFailed` naming the file. Running
the command again counts what is already there (same size) as present and copies the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from gateway.mlflow_import.artifact_sources import SKIPPED_NAME, SourceFile, open_artifact_tree
from gateway.mlflow_import.logged_model_copy import ImportedModel
from gateway.mlflow_import.tally import Tally
from gateway.mlflow_import.tracking_copy import ImportedRun
from tracking.artifacts.paths import ArtifactPath, parse_artifact_path
from tracking.artifacts.storage import repository_for_root
from tracking.errors import MlflowError

CHUNK = 1024 * 1024
KIND = "artifacts"
READING = "reading it from MLflow's artifact store"
WRITING = "writing it to mlgate's artifact store"

T = TypeVar("T")


class ArtifactCopyFailed(Exception):
    """Copying one file failed; the message names it and says what was kept (no cause's text, no secret)."""


class ArtifactCopier:
    """Copies the files of imported runs; a file already there with the same size counts as present."""

    def __init__(self, source_root: str | None, destination_root: str, tally: Tally):
        self.source = open_artifact_tree(source_root)
        self.repository = repository_for_root(destination_root)
        self.tally = tally

    def copy_run(self, run: ImportedRun) -> None:
        """Copy every file under the run's MLflow artifact directory to its mlgate location."""
        self.copy_directory(run.source_uri, f"{run.experiment_id}/{run.run_id}/artifacts", "runs")

    def copy_logged_model(self, model: ImportedModel) -> None:
        """Copy a logged model's artifact files to its mlgate location."""
        self.copy_directory(model.source_uri, f"{model.experiment_id}/models/{model.model_id}/artifacts",
                            "logged models")

    def copy_directory(self, source_uri: str | None, target: str, owners: str) -> None:
        """Copy every file under an MLflow artifact directory to ``target`` (root-relative) in mlgate."""
        if self.source is None:
            self.tally.skipped(KIND, f"{owners} whose artifacts were not read: MLflow's artifact root was not "
                                     "given (--artifacts)")
            return
        location = self.source.locate(source_uri)
        if isinstance(location, str):
            self.tally.skipped(KIND, f"{owners} whose artifacts were not read: {location}")
            return
        sizes: dict[tuple[str, ...], dict[str, int | None]] = {}
        try:
            for file in self.source.files(location, lambda reason: self.tally.skipped(KIND, reason)):
                self._copy_file(target, file, sizes)
        except MlflowError as exc:  # listing the source or the destination failed
            raise ArtifactCopyFailed(f"listing the artifacts of {target} failed: {exc.message} Nothing partial "
                                     "was written; run the same command again to continue.") from None

    def _copy_file(self, prefix: str, file: SourceFile, sizes: dict[tuple[str, ...], dict[str, int | None]]) -> None:
        try:
            target = parse_artifact_path(f"{prefix}/{file.relative}", for_write=True)
        except MlflowError:
            self.tally.skipped(KIND, SKIPPED_NAME)
            return
        parent = ArtifactPath(target.segments[:-1], target.owner, target.owner_depth)
        if parent.segments not in sizes:
            sizes[parent.segments] = {e.name: e.file_size for e in self.repository.list_dir(parent) if not e.is_dir}
        if sizes[parent.segments].get(target.name) == file.size:
            self.tally.present(KIND)
            return
        try:
            self._stream(file, target)
        except _StepFailed as failed:
            # The cause's class only: an SDK's message may quote a signed URL or an upload session.
            cause = failed.cause.message if isinstance(failed.cause, MlflowError) else type(failed.cause).__name__
            raise ArtifactCopyFailed(
                f"copying artifact '{target.path}' stopped while {failed.step} ({cause}). That file was not "
                "written; everything imported before it is kept. Run the same command again to continue.") from None
        self.tally.imported(KIND)

    def _stream(self, file: SourceFile, target: ArtifactPath) -> None:
        reader = _step(READING, file.open)
        try:
            writer = _step(WRITING, self.repository.open_writer, target)
            try:
                while chunk := _step(READING, reader.read, CHUNK):
                    _step(WRITING, writer.write, chunk)
                _step(WRITING, writer.commit)
            except BaseException:
                writer.abort()
                raise
        finally:
            reader.close()


class _StepFailed(Exception):
    def __init__(self, step: str, cause: Exception):
        super().__init__(step)
        self.step = step
        self.cause = cause


def _step(step: str, call: Callable[..., T], *args) -> T:
    """``call(*args)``, its failure labelled with the side of the copy that failed."""
    try:
        return call(*args)
    except Exception as exc:
        raise _StepFailed(step, exc) from None
