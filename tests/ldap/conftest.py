"""One private slapd per test session (tests/ldap/slapd.py): seeded users and groups, LDAPS and StartTLS."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.ldap.slapd import Slapd, slapd_server


@pytest.fixture(scope="session")
def slapd() -> Iterator[Slapd]:
    """The running test directory (skips with the install command when slapd is absent; fails under CI)."""
    with slapd_server() as server:
        yield server
