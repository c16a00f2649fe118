"""Checks on arguments that GraphQL's types cannot express, raising BadInput."""

from __future__ import annotations

from uuid import UUID

from server.errors import BadInput

MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 50


def page_size(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_PAGE_SIZE
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise BadInput(f"limit must be between 1 and {MAX_PAGE_SIZE}")
    return limit


def offset_value(offset: int | None) -> int:
    if offset is None:
        return 0
    if offset < 0:
        raise BadInput("offset must not be negative")
    return offset


def uuid_id(value: str, *, name: str = "id") -> UUID:
    try:
        return UUID(value)
    except ValueError as exc:
        raise BadInput(f"{name} is not a UUID") from exc


def required_text(value: str | None, *, name: str) -> str:
    """`value` without surrounding blanks; missing, null or blank is refused."""
    text = (value or "").strip()
    if not text:
        raise BadInput(f"{name} must not be empty")
    return text
