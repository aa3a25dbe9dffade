"""Protobuf JSON times (``Timestamp`` as RFC 3339, ``Duration`` as ``"1.5s"``) to and from milliseconds."""

from __future__ import annotations

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from tracking.errors import invalid_parameter


def timestamp_to_ms(value: object, field: str) -> int:
    """A Timestamp JSON string in milliseconds since the epoch; 400 when malformed."""
    if not isinstance(value, str):
        raise invalid_parameter(f"Invalid value for parameter '{field}': expected an RFC 3339 timestamp string.")
    ts = Timestamp()
    try:
        ts.FromJsonString(value)
    except ValueError:
        raise invalid_parameter(f"Invalid value {value[:60]!r} for parameter '{field}': "
                                "expected an RFC 3339 timestamp such as 2025-01-31T12:00:00.000Z.") from None
    return ts.ToMilliseconds()


def duration_to_ms(value: object, field: str) -> int:
    """A Duration JSON string (``"0.25s"``) in milliseconds; 400 when malformed or negative."""
    if not isinstance(value, str):
        raise invalid_parameter(f"Invalid value for parameter '{field}': expected a duration string such as '1.5s'.")
    d = Duration()
    try:
        d.FromJsonString(value)
    except ValueError:
        raise invalid_parameter(f"Invalid value {value[:60]!r} for parameter '{field}': "
                                "expected a duration string such as '1.5s'.") from None
    ms = d.ToMilliseconds()
    if ms < 0:
        raise invalid_parameter(f"Parameter '{field}' must not be negative.")
    return ms


def ms_to_timestamp(ms: int) -> str:
    """Milliseconds since the epoch as a Timestamp JSON string."""
    ts = Timestamp()
    ts.FromMilliseconds(ms)
    return ts.ToJsonString()


def ms_to_duration(ms: int) -> str:
    """Milliseconds as a Duration JSON string."""
    d = Duration()
    d.FromMilliseconds(ms)
    return d.ToJsonString()
