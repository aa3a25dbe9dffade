"""Artifact endpoints (filled in by its owner)."""

from fastapi import APIRouter

proxy_router = APIRouter()  # /api/2.0/mlflow-artifacts/...
ui_router = APIRouter()  # /api/2.0/mlflow/artifacts/list (UI listing by run)
root_router = APIRouter()  # /get-artifact, /model-versions/get-artifact
