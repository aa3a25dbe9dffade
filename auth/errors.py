"""Typed identity errors with stable codes; the gateway maps them to HTTP at one edge."""

from __future__ import annotations


class AuthError(Exception):
    """Base of identity errors; ``code`` is an MLflow error code name."""

    code = "INVALID_PARAMETER_VALUE"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class Unauthenticated(AuthError):
    """Credentials were presented and are wrong, expired, revoked or disabled (401)."""

    code = "UNAUTHENTICATED"


class LockedOut(AuthError):
    """Too many failed attempts: retry after ``retry_after`` seconds (429)."""

    code = "REQUEST_LIMIT_EXCEEDED"

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(AuthError):
    """A service sign-in depends on did not answer (the lockout counters, the directory): 503, never allowed."""

    code = "TEMPORARILY_UNAVAILABLE"


class PermissionDenied(AuthError):
    """Authenticated, but this identity may not do this (403)."""

    code = "PERMISSION_DENIED"


class InvalidInput(AuthError):
    """A field is missing or unacceptable (400)."""

    code = "INVALID_PARAMETER_VALUE"


class NotFound(AuthError):
    """The user or token does not exist (404)."""

    code = "RESOURCE_DOES_NOT_EXIST"


class AlreadyExists(AuthError):
    """The name is taken (400, MLflow's status for duplicates)."""

    code = "RESOURCE_ALREADY_EXISTS"


class WeakPassword(InvalidInput):
    """The password is too short, deny-listed, or derived from the username."""
