"""Password hashing: long passwords, MLflow (werkzeug) hashes, rehash on cost change, strength rules."""

import subprocess
import sys

import pytest
from werkzeug.security import generate_password_hash

from auth.errors import WeakPassword
from auth.passwords import PasswordHasher


@pytest.fixture(scope="module")
def hasher() -> PasswordHasher:
    return PasswordHasher(rounds=10, min_length=12)


def test_hash_verifies_only_the_same_password(hasher):
    stored = hasher.hash("correct horse staple 9")
    assert stored.startswith("$bcrypt-sha256$")
    assert hasher.verify("correct horse staple 9", stored).ok
    assert not hasher.verify("correct horse staple 8", stored).ok


def test_passwords_longer_than_72_bytes_are_not_truncated(hasher):
    # Plain bcrypt ignores everything after byte 72; these two differ only at byte 100.
    base = "a-long-shared-prefix-" * 5
    first, second = base + "X", base + "Y"
    assert len(base.encode()) > 72
    stored = hasher.hash(first)
    assert hasher.verify(first, stored).ok
    assert not hasher.verify(second, stored).ok


@pytest.mark.parametrize("method", ["scrypt", "pbkdf2:sha256"])
def test_mlflow_werkzeug_hashes_verify_and_are_upgraded(hasher, method):
    stored = generate_password_hash("imported-from-mlflow-1", method=method)
    result = hasher.verify("imported-from-mlflow-1", stored)
    assert result.ok
    assert result.new_hash is not None
    assert result.new_hash.startswith("$bcrypt-sha256$")
    assert hasher.verify("imported-from-mlflow-1", result.new_hash).ok
    assert not hasher.verify("imported-from-mlflow-2", stored).ok


def test_a_hash_made_at_another_cost_is_rehashed_on_login(hasher):
    stronger = PasswordHasher(rounds=11)
    stored = hasher.hash("cost-changes-here-7")
    result = stronger.verify("cost-changes-here-7", stored)
    assert result.ok
    assert "r=11" in result.new_hash
    assert stronger.verify("cost-changes-here-7", result.new_hash).new_hash is None


def test_unknown_user_verifies_a_dummy_hash_and_fails(hasher):
    before = hasher.verifications
    assert not hasher.verify("whatever-password-1", None).ok
    assert hasher.verifications == before + 1


def test_corrupt_hash_fails_closed(hasher):
    assert not hasher.verify("anything-at-all-1", "$bcrypt-sha256$garbage").ok
    assert not hasher.verify("anything-at-all-1", "scrypt:999999999:8:1$salt$00").ok


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("", "The password must not be empty."),
        ("short-1", "The password must be at least 12 characters long."),
        ("password1234", "The password is too common or too simple; choose another."),
        ("PassWord1234", "The password is too common or too simple; choose another."),
        ("aaaaaaaaaaaaaaaa", "The password is too common or too simple; choose another."),
        ("my-alice-password", "The password must not contain the username."),
        ("x" * 2000 + "é" * 2000 + "abc", "The password must be at most 4096 bytes long."),
    ],
)
def test_weak_passwords_are_refused_with_the_rule(hasher, password, message):
    with pytest.raises(WeakPassword) as info:
        hasher.check_strength(password, "alice")
    assert info.value.message == message


def test_a_strong_password_passes(hasher):
    hasher.check_strength("tangerine-orbit-cello-42", "alice")


@pytest.mark.parametrize("method", ["pbkdf2:sha256:1000", "pbkdf2:sha512:2000", "scrypt:16384:8:1"])
def test_werkzeug_hashes_with_explicit_costs_verify(hasher, method):
    stored = generate_password_hash("explicit-cost-pw-31", method=method)
    assert stored.startswith(method + "$")
    assert hasher.verify("explicit-cost-pw-31", stored).ok
    assert not hasher.verify("explicit-cost-pw-32", stored).ok


@pytest.mark.parametrize("stored", [
    "scrypt:32768:8:1$salt$" + "é" * 128,       # non-ASCII digest: compared as bytes, never raises
    "pbkdf2:sha256:1000$salt$nothex",
    "pbkdf2:md5:1000$salt$00",                   # digest not accepted
    "pbkdf2:sha256:99999999$salt$00",            # cost beyond the bound an imported row may demand
    "scrypt:32768:8$salt$00",                    # missing p
    "scrypt:32768:8:1$only-salt",
    "plain$salt$00",
])
def test_malformed_werkzeug_hashes_fail_closed(hasher, stored):
    result = hasher.verify("whatever-password-9", stored)
    assert not result.ok
    assert result.new_hash is None


def test_werkzeug_verification_does_not_import_werkzeug():
    stored = generate_password_hash("no-werkzeug-at-runtime-1", method="scrypt")
    code = ("import sys; from auth.passwords import PasswordHasher; "
            f"assert PasswordHasher(rounds=4).verify('no-werkzeug-at-runtime-1', {stored!r}).ok; "
            "assert 'werkzeug' not in sys.modules, 'werkzeug imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
