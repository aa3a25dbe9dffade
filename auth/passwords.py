"""Password hashing: the only module that imports passlib.

New hashes are bcrypt over an HMAC-SHA256 pre-hash (passlib's ``bcrypt_sha256``), so passwords longer than
bcrypt's 72-byte input are not silently truncated. Hashes made by MLflow's basic-auth app (werkzeug
``scrypt:``/``pbkdf2:``) are verified too, so users can be imported, and replaced on their next login.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from dataclasses import dataclass

from passlib.context import CryptContext

from auth.errors import WeakPassword

MAX_PASSWORD_BYTES = 4096
# Well-known passwords refused outright (length alone does not stop these).
DENY_LIST = frozenset(
    {
        "password", "password1", "password12", "password123", "password1234", "passw0rd", "p@ssw0rd",
        "p@ssword123", "123456789012", "1234567890123", "12345678901234", "qwertyuiopas", "qwerty123456",
        "letmein12345", "welcome12345", "changeme1234", "administrator", "admin1234567", "adminadmin12",
        "mlflowmlflow", "mlflow123456", "mlgatemlgate", "iloveyou1234", "trustno1trustno1",
        "correcthorsebatterystaple", "abcdefghijkl", "abc123abc123", "000000000000", "111111111111",
        "passwordpassword",
    }
)


@dataclass(frozen=True)
class VerifyResult:
    """Whether the password matched, and the new hash to store when the old one is outdated."""

    ok: bool
    new_hash: str | None = None


def _verify_werkzeug(password: str, stored: str) -> bool:
    """Verify a werkzeug ``method$salt$hexdigest`` hash (MLflow basic-auth's format)."""
    try:
        method, salt, expected = stored.split("$", 2)
        pw, salt_b = password.encode("utf-8"), salt.encode("utf-8")
        if method.startswith("scrypt:"):
            _, n, r, p = method.split(":")
            n_, r_, p_ = int(n), int(r), int(p)
            # Bound the work an imported row can demand (werkzeug's default is n=2**15, r=8, p=1).
            if n_ > 2**20 or r_ > 32 or p_ > 16:
                return False
            digest = hashlib.scrypt(pw, salt=salt_b, n=n_, r=r_, p=p_, maxmem=132 * n_ * r_ * p_).hex()
        elif method.startswith("pbkdf2:"):
            parts = method.split(":")
            name = parts[1]
            iterations = int(parts[2]) if len(parts) > 2 else 600_000
            if name not in ("sha256", "sha512", "sha1") or iterations > 5_000_000:
                return False
            digest = hashlib.pbkdf2_hmac(name, pw, salt_b, iterations).hex()
        else:
            return False
    except (ValueError, TypeError):
        return False
    # Bytes, not str: compare_digest raises on non-ASCII text, and a corrupt imported hash must fail closed.
    return hmac.compare_digest(digest.encode("ascii"), expected.encode("utf-8", "surrogatepass"))


def is_werkzeug_hash(stored: str) -> bool:
    """Whether ``stored`` is in werkzeug's format (imported from MLflow's basic-auth database)."""
    return stored.startswith(("scrypt:", "pbkdf2:"))


class PasswordHasher:
    """Hashes and verifies passwords at a configured bcrypt cost; counts verifications (tests, metrics)."""

    def __init__(self, rounds: int = 12, min_length: int = 12):
        self.rounds = rounds
        self.min_length = min_length
        self._context = CryptContext(schemes=["bcrypt_sha256"], bcrypt_sha256__rounds=rounds)
        self._lock = threading.Lock()
        self.verifications = 0
        # Verified when the username is unknown, so that answer costs the same as a wrong password. Hashing
        # it takes as long as a login (bcrypt releases the GIL), so it is made beside the server's start-up
        # instead of delaying it; the first verify waits for it.
        self._dummy: list[str | BaseException] = []
        self._dummy_made = threading.Event()
        # Not a daemon: a process that exits meanwhile (a CLI command, a refused start) waits for the hash
        # instead of having the thread killed inside bcrypt's native code, which aborts the interpreter.
        threading.Thread(target=self._make_dummy_hash, name="mlgate-dummy-hash").start()

    def _make_dummy_hash(self) -> None:
        try:
            self._dummy.append(self._context.hash("mlgate-dummy-password-for-timing"))
        except BaseException as exc:  # re-raised by the verify that needs it
            self._dummy.append(exc)
        finally:
            self._dummy_made.set()

    @property
    def _dummy_hash(self) -> str:
        self._dummy_made.wait()
        made = self._dummy[0]
        if isinstance(made, BaseException):
            raise made
        return made

    def hash(self, password: str) -> str:
        """A new hash of ``password``."""
        return self._context.hash(password)

    def _count(self) -> None:
        with self._lock:
            self.verifications += 1

    def verify(self, password: str, stored: str | None) -> VerifyResult:
        """Check ``password`` against ``stored`` (None: verify a dummy hash and fail, in the same time)."""
        self._count()
        if len(password.encode("utf-8", "surrogatepass")) > MAX_PASSWORD_BYTES:
            self._context.verify("x", self._dummy_hash)
            return VerifyResult(False)
        if stored is None:
            self._context.verify(password, self._dummy_hash)
            return VerifyResult(False)
        if is_werkzeug_hash(stored):
            if _verify_werkzeug(password, stored):
                return VerifyResult(True, self.hash(password))
            return VerifyResult(False)
        try:
            ok, new_hash = self._context.verify_and_update(password, stored)
        except ValueError:
            # An unrecognised or corrupt hash: spend the same time, then fail closed.
            self._context.verify(password, self._dummy_hash)
            return VerifyResult(False)
        return VerifyResult(bool(ok), new_hash if ok else None)

    def check_strength(self, password: str, username: str | None = None) -> None:
        """Refuse short, well-known or username-derived passwords with a message saying which rule."""
        if not isinstance(password, str) or not password:
            raise WeakPassword("The password must not be empty.")
        if len(password) < self.min_length:
            raise WeakPassword(f"The password must be at least {self.min_length} characters long.")
        if len(password.encode("utf-8", "surrogatepass")) > MAX_PASSWORD_BYTES:
            raise WeakPassword(f"The password must be at most {MAX_PASSWORD_BYTES} bytes long.")
        lowered = password.lower()
        if lowered in DENY_LIST or len(set(password)) < 4:
            raise WeakPassword("The password is too common or too simple; choose another.")
        if username and username.lower() in lowered:
            raise WeakPassword("The password must not contain the username.")
