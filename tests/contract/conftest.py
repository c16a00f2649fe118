"""Contract fixtures: the Socket.IO JSON Schema and a validator for one event's payload."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONTRACT_DIR = PROJECT_ROOT / "contract"
EVENTS_SCHEMA_PATH = CONTRACT_DIR / "socket-events.schema.json"


@cache
def events_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(EVENTS_SCHEMA_PATH.read_text())
    return schema


@cache
def validator_for(event: str) -> Draft202012Validator:
    """Checks one event's payload, formats (uuid, date-time) included."""
    schema = events_schema()
    if event not in schema["properties"]:
        raise AssertionError(f"{event!r} is not an event of {EVENTS_SCHEMA_PATH.name}")
    subschema = {
        "$schema": schema["$schema"],
        "$defs": schema["$defs"],
        **schema["properties"][event],
    }
    return Draft202012Validator(subschema, format_checker=FormatChecker())


def assert_valid(event: str, payload: Any) -> None:
    errors = sorted(validator_for(event).iter_errors(payload), key=lambda e: list(e.path))
    assert not errors, f"{event} payload {payload!r} breaks the schema: " + "; ".join(
        f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message}" for e in errors
    )
