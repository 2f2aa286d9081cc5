"""structlog set up once: JSON lines on stderr (never stdout), rendered by msgspec."""

from __future__ import annotations

import logging
import sys
from typing import Any

import msgspec
import structlog

__all__ = ["configure", "get_logger"]

_enc = msgspec.json.Encoder(enc_hook=repr)


def _serialize(obj: Any, **_: Any) -> bytes:
    # JSONRenderer always passes default=...; msgspec's encoder takes no such argument.
    return _enc.encode(obj)


def configure(level: str = "info") -> None:
    """Route every shellsieve log event to stderr as one JSON object per line."""
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(serializer=_serialize),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper(), logging.INFO)),
        logger_factory=structlog.BytesLoggerFactory(file=sys.stderr.buffer),
        cache_logger_on_first_use=True,
    )


def get_logger() -> Any:
    return structlog.get_logger("shellsieve")
