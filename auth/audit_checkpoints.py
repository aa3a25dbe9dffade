"""Signed checkpoints of the audit chain: Ed25519 over (record id, chain position, hash, time, kind).

The chain (:mod:`auth.audit_chain`) proves the log unaltered only against someone who cannot also recompute
every later hash and the head row; anyone who can write the database can. A checkpoint is signed with a
private key the operator keeps out of the database (a file or a variable only the server reads), and is
verified with the public key alone (RFC 8032 Ed25519, through the ``cryptography`` package), so a database
writer can delete checkpoints but cannot make one. Checkpoints are stored in ``auth_audit_checkpoints`` and
written off-host (the checkpoint file and the SIEM export), where deleting them is out of that writer's reach.

The signed message is ``mlgate-audit-checkpoint/v1`` and a canonical JSON object on the next line, so a
signature over anything else mlgate signs can never be replayed as a checkpoint.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

DOMAIN = b"mlgate-audit-checkpoint/v1\n"
KINDS = ("every", "periodic", "manual", "anchor")


class CheckpointKeyError(Exception):
    """A signing or public key could not be used; the message names the source, never the key."""


@dataclass(frozen=True)
class Checkpoint:
    """One signed statement: record ``seq`` is the ``count``-th chained record and its hash is ``hash``."""

    seq: int
    count: int
    hash: str
    at: int
    kind: str
    key_id: str
    signature: str

    def message(self) -> bytes:
        """The exact bytes signed."""
        body = {"at": self.at, "count": self.count, "hash": self.hash, "key_id": self.key_id, "kind": self.kind,
                "seq": self.seq}
        return DOMAIN + json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    def to_json(self) -> dict:
        """As stored, exported and read back by ``mlgate audit verify --checkpoints FILE``."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping) -> Checkpoint:
        """Parse one exported checkpoint; raises ValueError on a malformed one."""
        try:
            checkpoint = cls(seq=int(data["seq"]), count=int(data["count"]), hash=str(data["hash"]),
                             at=int(data["at"]), kind=str(data["kind"]), key_id=str(data["key_id"]),
                             signature=str(data["signature"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a checkpoint: {exc.__class__.__name__} {exc}") from None
        return checkpoint


def key_id_of(public_key: Ed25519PublicKey) -> str:
    """A short, stable name of a public key: the first 16 hex digits of SHA-256 over its raw bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


class CheckpointSigner:
    """Signs checkpoints with the operator's Ed25519 private key (kept in memory, out of every repr)."""

    def __init__(self, private_key: Ed25519PrivateKey):
        self._key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id_of(self.public_key)

    def __repr__(self) -> str:
        return f"CheckpointSigner(key_id={self.key_id!r})"

    def sign(self, *, seq: int, count: int, hash: str, at: int, kind: str) -> Checkpoint:
        """A signed checkpoint of these values."""
        unsigned = Checkpoint(seq, count, hash, at, kind, self.key_id, "")
        signature = base64.urlsafe_b64encode(self._key.sign(unsigned.message())).rstrip(b"=").decode()
        return Checkpoint(seq, count, hash, at, kind, self.key_id, signature)

    def verifier(self) -> CheckpointVerifier:
        """A verifier trusting this signer's public key."""
        return CheckpointVerifier([self.public_key])


class CheckpointVerifier:
    """Checks checkpoint signatures against the trusted public keys (several: keys rotate)."""

    def __init__(self, public_keys: Iterable[Ed25519PublicKey]):
        self.keys = {key_id_of(k): k for k in public_keys}

    def knows(self, checkpoint: Checkpoint) -> bool:
        """Whether the checkpoint names one of the trusted keys."""
        return checkpoint.key_id in self.keys

    def valid(self, checkpoint: Checkpoint) -> bool:
        """Whether a trusted key signed exactly this checkpoint."""
        key = self.keys.get(checkpoint.key_id)
        if key is None:
            return False
        try:
            padded = checkpoint.signature + "=" * (-len(checkpoint.signature) % 4)
            key.verify(base64.urlsafe_b64decode(padded.encode("ascii")), checkpoint.message())
        except (InvalidSignature, ValueError, UnicodeEncodeError):
            return False
        return True


def load_private_key(pem: bytes, source: str) -> CheckpointSigner:
    """A signer from a PEM (PKCS#8) Ed25519 private key; ``source`` names where it came from in errors."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        reason = "it is encrypted (use an unencrypted key readable by the server only)" \
            if isinstance(exc, TypeError) else "it is not a PEM private key"
        raise CheckpointKeyError(f"{source}: {reason}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise CheckpointKeyError(f"{source}: not an Ed25519 key (generate one with `mlgate audit keygen`)")
    return CheckpointSigner(key)


def load_private_key_file(path: str) -> CheckpointSigner:
    """A signer from a key file that only its owner can read (a group- or world-readable key is refused)."""
    try:
        info = os.stat(path)
        pem = Path(path).read_bytes()
    except OSError as exc:
        raise CheckpointKeyError(f"{path}: cannot read the signing key ({exc.strerror or exc})") from None
    if os.name == "posix" and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CheckpointKeyError(f"{path}: the signing key is readable by other users (mode "
                                 f"{stat.S_IMODE(info.st_mode):o}); chmod 600 it")
    return load_private_key(pem, path)


def load_public_key(pem: bytes, source: str) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM (SubjectPublicKeyInfo), as ``mlgate audit keygen`` writes it."""
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError:
        raise CheckpointKeyError(f"{source}: not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise CheckpointKeyError(f"{source}: not an Ed25519 public key")
    return key


def generate_key_pair() -> tuple[bytes, bytes]:
    """A new (private PEM, public PEM) pair."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public
