"""Tables (filled in by their owner)."""

from tracking.db.base import metadata  # noqa: F401
