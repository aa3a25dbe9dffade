"""REST endpoints: model registry (filled in by its owner)."""

from fastapi import APIRouter

router = APIRouter()  # /api/2.0/mlflow/registered-models/..., /model-versions/...
root_router = APIRouter()  # /model-versions/get-artifact
