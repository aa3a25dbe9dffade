"""Readable random names for runs created without one (MLflow names them ``<word>-<word>-<number>``)."""

from __future__ import annotations

import secrets

_FIRST = (
    "amber", "brisk", "calm", "daring", "eager", "fluent", "gentle", "hardy", "idle", "jolly", "keen",
    "lucid", "mellow", "nimble", "orderly", "patient", "quiet", "rapid", "steady", "tidy", "upbeat",
    "vivid", "witty", "young", "zesty",
)
_SECOND = (
    "badger", "comet", "delta", "ember", "falcon", "glacier", "harbor", "island", "juniper", "kestrel",
    "lagoon", "meadow", "nebula", "orchid", "pebble", "quartz", "river", "summit", "tundra", "uplift",
    "valley", "willow", "yarrow", "zephyr",
)


def random_run_name() -> str:
    """A name like ``steady-falcon-427``."""
    return f"{secrets.choice(_FIRST)}-{secrets.choice(_SECOND)}-{secrets.randbelow(1000)}"
