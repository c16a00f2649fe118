"""Comments. Adding one creates its notification in the database (trigger)."""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict, cast

from server.db import Connection
from server.store._queries import fetch_one


class CommentRow(TypedDict):
    id: int
    leadId: int
    body: str
    authorEmail: str | None
    createdAt: datetime


async def comment_insert(
    conn: Connection, *, lead_id: int, body: str, author_email: str | None
) -> CommentRow | None:
    """The new comment, or None if there is no such lead."""
    row = await fetch_one(
        conn, "comment_insert", lead_id=lead_id, body=body, author_email=author_email
    )
    return cast(CommentRow | None, row)
