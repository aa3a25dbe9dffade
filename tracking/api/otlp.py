"""OTLP/HTTP trace ingestion at /v1/traces (filled in by its owner)."""

from fastapi import APIRouter

router = APIRouter()
