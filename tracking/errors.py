"""MLflow-style errors: a stable ``error_code`` and a message, mapped to an HTTP status at the edge."""

from __future__ import annotations

# MLflow's protobuf ErrorCode names and the HTTP status its server answers with for each.
HTTP_STATUS_BY_CODE: dict[str, int] = {
    "INTERNAL_ERROR": 500,
    "TEMPORARILY_UNAVAILABLE": 503,
    "BAD_REQUEST": 400,
    "INVALID_PARAMETER_VALUE": 400,
    "MALFORMED_REQUEST": 400,
    "INVALID_STATE": 400,
    "RESOURCE_ALREADY_EXISTS": 400,
    "RESOURCE_CONFLICT": 409,
    "RESOURCE_DOES_NOT_EXIST": 404,
    "ENDPOINT_NOT_FOUND": 404,
    "NOT_FOUND": 404,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "REQUEST_LIMIT_EXCEEDED": 429,
    "RESOURCE_EXHAUSTED": 429,
    "NOT_IMPLEMENTED": 501,
    "FEATURE_DISABLED": 501,
    "ABORTED": 409,
    "CANCELLED": 499,
}


class MlflowError(Exception):
    """A request failed in a way the client should see as ``{"error_code": ..., "message": ...}``."""

    def __init__(self, message: str, error_code: str = "INVALID_PARAMETER_VALUE", status: int | None = None):
        super().__init__(message)
        self.message = message
        self.error_code = error_code
        self.status = status if status is not None else HTTP_STATUS_BY_CODE.get(error_code, 500)

    def to_dict(self) -> dict[str, str]:
        """The JSON body MLflow's server sends for this error."""
        return {"error_code": self.error_code, "message": self.message}


def invalid_parameter(message: str) -> MlflowError:
    """400 INVALID_PARAMETER_VALUE."""
    return MlflowError(message, "INVALID_PARAMETER_VALUE")


def not_found(message: str) -> MlflowError:
    """404 RESOURCE_DOES_NOT_EXIST."""
    return MlflowError(message, "RESOURCE_DOES_NOT_EXIST")


def already_exists(message: str) -> MlflowError:
    """400 RESOURCE_ALREADY_EXISTS (MLflow's status for duplicates)."""
    return MlflowError(message, "RESOURCE_ALREADY_EXISTS")


def invalid_state(message: str) -> MlflowError:
    """400 INVALID_STATE, e.g. logging to a deleted run."""
    return MlflowError(message, "INVALID_STATE")
