"""An audit checkpoint key pair and a policy file that signs with it, for tests of the audit section."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from auth.audit_checkpoints import generate_key_pair


def write_key_pair(directory: Path) -> tuple[Path, Path]:
    """A fresh Ed25519 pair: (private key file, 0600; public key file)."""
    private, public = generate_key_pair()
    private_path, public_path = directory / "audit-signing.pem", directory / "audit-signing.pub"
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private)
    public_path.write_bytes(public)
    return private_path, public_path


def write_signing_policy(directory: Path, **audit) -> Path:
    """A policy file whose ``audit:`` section signs with a fresh key (more ``audit`` keys may be given)."""
    private_path, _ = write_key_pair(directory)
    checkpoints = {"signing_key_file": str(private_path), **audit.pop("checkpoints", {})}
    policy = directory / "audit-policy.yaml"
    policy.write_text(yaml.safe_dump({"version": 1, "audit": {"checkpoints": checkpoints, **audit}}))
    return policy
