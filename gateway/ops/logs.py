"""Log formatting for every process: plain text for people, one JSON object per line for collectors.

The request id of the request being served rides on a context variable, so every record logged while a
request runs (an audit line, an unexpected error) carries it, including records from worker threads
(anyio copies the context into them). Records carry only what callers put in them: the access log
(:mod:`gateway.ops.access`) never receives headers, cookies or query strings.
"""

from __future__ import annotations

import json
import logging
import time
from contextvars import ContextVar

REQUEST_ID: ContextVar[str | None] = ContextVar("mlgate_request_id", default=None)
# Attributes every LogRecord has; anything else was passed through ``extra=`` and is a field of the line.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "request_id", "color_message"}  # uvicorn adds color_message: the message with ANSI codes


class RequestIdFilter(logging.Filter):
    """Stamp ``record.request_id`` with the id of the request being served (None outside requests)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = REQUEST_ID.get()
        return True


def _extra_fields(record: logging.LogRecord) -> dict:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, process id, request id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,  # tells the workers of one server apart
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            line["request_id"] = request_id
        line.update(_extra_fields(record))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=True, default=str)


class TextFormatter(logging.Formatter):
    """``LEVEL: logger: message key=value ...``, beside uvicorn's own lines."""

    def format(self, record: logging.LogRecord) -> str:
        fields = _extra_fields(record)
        request_id = getattr(record, "request_id", None)
        if request_id:
            fields = {"request_id": request_id, **fields}
        suffix = "".join(f" {k}={v}" for k, v in fields.items() if v is not None)
        text = f"{record.levelname + ':':<9} {record.name}: {record.getMessage()}{suffix}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def logging_config(log_format: str, level: str = "INFO") -> dict:
    """A ``logging.config.dictConfig`` for mlgate's and uvicorn's loggers (also given to uvicorn workers)."""
    formatter = "json" if log_format == "json" else "text"
    handler = {"class": "logging.StreamHandler", "formatter": formatter, "filters": ["request_id"],
               "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"json": {"()": JsonFormatter}, "text": {"()": TextFormatter}},
        "handlers": {"default": handler},
        "loggers": {
            "mlgate": {"handlers": ["default"], "level": level, "propagate": False},
            "uvicorn": {"handlers": ["default"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            # Access lines come from gateway.ops.access (with principal and operation, without the query).
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }
