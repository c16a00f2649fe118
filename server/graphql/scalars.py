"""Custom scalars."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ariadne import ScalarType

from server.serialization import iso8601

datetime_scalar = ScalarType("DateTime")


@datetime_scalar.serializer
def serialize_datetime(value: Any) -> str:
    if not isinstance(value, datetime):
        raise TypeError(f"DateTime cannot represent {type(value).__name__}")
    return iso8601(value)


@datetime_scalar.value_parser
def parse_datetime(value: Any) -> datetime:
    """No argument takes a DateTime today; this keeps the scalar whole for when one does."""
    if not isinstance(value, str):
        raise ValueError("DateTime must be an ISO 8601 string")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("DateTime needs a time zone")
    return parsed
