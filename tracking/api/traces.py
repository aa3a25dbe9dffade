"""REST endpoints: traces (filled in by its owner)."""

from fastapi import APIRouter

router_v2 = APIRouter()
router_v3 = APIRouter()
