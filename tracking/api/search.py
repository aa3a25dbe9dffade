"""REST endpoints: experiments/search and runs/search (filled in by its owner)."""

from fastapi import APIRouter

router = APIRouter()
