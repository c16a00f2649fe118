"""Tasks. Completing one creates its notification in the database (trigger)."""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict, cast

from server.db import Connection
from server.store._queries import fetch_one


class TaskRow(TypedDict):
    id: int
    leadId: int
    title: str
    completedAt: datetime | None
    createdAt: datetime


async def task_insert(conn: Connection, *, lead_id: int, title: str) -> TaskRow | None:
    """The new task, or None if there is no such lead."""
    return cast(TaskRow | None, await fetch_one(conn, "task_insert", lead_id=lead_id, title=title))


async def task_complete(conn: Connection, *, id: int) -> TaskRow | None:
    """The completed task (first completion time kept), or None if there is no such task."""
    return cast(TaskRow | None, await fetch_one(conn, "task_complete", id=id))
