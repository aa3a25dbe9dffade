"""MLflow 3.18's skill registry (``/api/3.0/mlflow/skills``): not served by mlgate, said plainly.

Without these routes a 3.18 client would get the framework's 404, which it reads as "this skill does
not exist". Every method on the registry's paths answers MLflow's ``NOT_IMPLEMENTED`` (501) instead, which
no MLflow client retries and which names what is missing. (MLflow's own server has no switch for the
registry; its only refusal, in ``--artifacts-only`` mode, is 503 TEMPORARILY_UNAVAILABLE, which clients
retry as if the server were busy.) The routes are classified for signed-in callers only, so they tell an
anonymous caller nothing.
"""

from __future__ import annotations

from fastapi import APIRouter

from tracking.errors import MlflowError

router = APIRouter()  # mounted at /api/3.0/mlflow and /ajax-api/3.0/mlflow

METHODS = ("GET", "POST", "PATCH", "DELETE")


def not_served() -> None:
    """MLflow's NOT_IMPLEMENTED answer for every skill registry request."""
    raise MlflowError("The skill registry (/api/3.0/mlflow/skills) is not served by mlgate; "
                      "keep skills in a prompt or an artifact instead.", "NOT_IMPLEMENTED")


for _method in METHODS:
    router.add_api_route("/skills", not_served, methods=[_method], include_in_schema=False,
                         operation_id=f"skills.not_served.{_method.lower()}")
    router.add_api_route("/skills/{path:path}", not_served, methods=[_method], include_in_schema=False,
                         operation_id=f"skills.not_served.{_method.lower()}_path")
