"""From the policy's ``audit:`` section to a checked plan: the signing key, the sinks, the schedule.

:func:`plan_audit` reads the key and checks every path, listing every problem (each naming its key) and
creating nothing, so the server refuses to start on a bad audit configuration instead of starting without
checkpoints or export. :func:`start_audit` wires the plan to an app's auditor once the settings are good.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from auth.audit import Auditor
from auth.audit_checkpoints import CheckpointKeyError, CheckpointSigner, load_private_key, load_private_key_file
from auth.audit_export import AuditExporter, JsonLinesWriter, LossListener, OtlpLogsSender
from auth.audit_keeper import AuditKeeper, KeeperPlan
from policies.file.audit import AuditConfig, JsonLinesSink


@dataclass(frozen=True)
class AuditPlan:
    """The checked ``audit:`` section: a signer (None: no checkpoints) and the configuration."""

    config: AuditConfig
    signer: CheckpointSigner | None


def plan_audit(config: AuditConfig) -> tuple[AuditPlan | None, list[str]]:
    """The plan, or None and every problem found."""
    problems: list[str] = []
    signer = None
    checkpoints = config.checkpoints
    try:
        if checkpoints.signing_key_file is not None:
            signer = load_private_key_file(checkpoints.signing_key_file)
        elif checkpoints.signing_key is not None:
            signer = load_private_key(checkpoints.signing_key.get_secret_value().encode(),
                                      "the variable given as audit.checkpoints.signing_key")
    except CheckpointKeyError as exc:
        key = "signing_key_file" if checkpoints.signing_key_file is not None else "signing_key"
        problems.append(f"audit.checkpoints.{key}: {exc}")
    if checkpoints.file is not None:
        problems += _writable("audit.checkpoints.file", checkpoints.file)
    for index, sink in enumerate(config.export):
        if isinstance(sink, JsonLinesSink) and sink.path != "-":
            problems += _writable(f"audit.export[{index}].path", sink.path, private=True)
    return (None if problems else AuditPlan(config, signer)), problems


def _writable(key: str, path: str, *, private: bool = False) -> list[str]:
    """Problems with appending to ``path``; ``private``: audit records, which every local user must not read."""
    target = Path(path)
    if target.is_symlink():
        # The server would append wherever a link planted at the path points.
        return [f"{key}: {path} is a symbolic link; name the file itself"]
    if private and target.is_file() and os.name == "posix" and target.stat().st_mode & stat.S_IRWXO:
        return [f"{key}: {path} is readable by every user (mode {stat.S_IMODE(target.stat().st_mode):o}); chmod 600 "
                "it (audit records name users and addresses)"]
    if target.exists():
        if not target.is_file() or not os.access(target, os.W_OK):
            return [f"{key}: {path} is not a writable file"]
        return []
    if not target.parent.is_dir() or not os.access(target.parent, os.W_OK):
        return [f"{key}: cannot create {path}: its directory does not exist or is not writable"]
    return []


def build_exporter(config: AuditConfig, on_loss: LossListener | None = None) -> AuditExporter | None:
    """The SIEM exporter for the configured sinks (not started), or None without any."""
    if not config.export:
        return None
    senders = []
    for sink in config.export:
        if isinstance(sink, JsonLinesSink):
            senders.append(JsonLinesWriter(sink.path))
        else:
            senders.append(OtlpLogsSender(sink.endpoint, {k: v.get_secret_value() for k, v in sink.headers.items()},
                                          sink.timeout_seconds))
    return AuditExporter(senders, config.export_queue_size, on_loss=on_loss)


@dataclass
class AuditServices:
    """What one app runs for its audit trail: the exporter and the keeper (either may be None)."""

    exporter: AuditExporter | None
    keeper: AuditKeeper | None

    def start(self) -> None:
        """Start the threads."""
        if self.exporter is not None:
            self.exporter.start()
        if self.keeper is not None:
            self.keeper.start()

    def stop(self) -> None:
        """Stop the keeper, then deliver what the exporter holds."""
        if self.keeper is not None:
            self.keeper.stop()
        if self.exporter is not None:
            self.exporter.stop()


def attach_audit(plan: AuditPlan, engine: Engine, auditor: Auditor, *,
                 on_loss: LossListener | None = None) -> AuditServices:
    """Build the exporter and keeper and register them with ``auditor`` (threads start with :meth:`start`);
    ``on_loss`` is told of records a sink lost (the app counts them in its metrics)."""
    exporter = build_exporter(plan.config, on_loss)
    if exporter is not None:
        auditor.listeners.append(exporter.listener)
    keeper = None
    if plan.signer is not None:
        checkpoints = plan.config.checkpoints
        keeper = AuditKeeper(engine, auditor, KeeperPlan(
            plan.signer, every_records=checkpoints.every_records, interval_seconds=checkpoints.interval_seconds,
            checkpoint_file=checkpoints.file, retention_days=plan.config.retention_days), exporter=exporter)
        auditor.listeners.append(keeper.listener)
    return AuditServices(exporter, keeper)
