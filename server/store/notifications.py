"""Notifications: the feed, the unread count and the three writes clients may make."""

from __future__ import annotations

from datetime import datetime
from typing import NotRequired, TypedDict, cast
from uuid import UUID

from server.db import Connection
from server.store._queries import execute, fetch_all, fetch_one


class NotificationRow(TypedDict):
    id: UUID
    type: str
    title: str
    message: str
    isRead: bool
    relatedLeadId: int | None
    createdAt: datetime
    updatedAt: datetime
    snapshot: str  # pg_current_snapshot() of the statement that read the row
    # Set only when the row's cursor must not be built from its own position (see
    # server/graphql/notification.py, catch-up pages).
    cursor: NotRequired[str]


async def notifications_by_ids(conn: Connection, *, ids: list[UUID]) -> list[NotificationRow]:
    """The rows that still exist, newest first, each with the snapshot of this read."""
    if not ids:
        return []
    rows = await fetch_all(conn, "notification_by_ids", ids=ids)
    return cast(list[NotificationRow], rows)


async def notification_feed_before(
    conn: Connection,
    *,
    limit: int,
    unread_only: bool,
    before_created_at: datetime | None = None,
    before_id: UUID | None = None,
) -> list[NotificationRow]:
    """The first page (no cursor), or the `limit` rows older than the cursor; newest first."""
    rows = await fetch_all(
        conn,
        "notification_feed_before",
        limit=limit,
        unread_only=unread_only,
        before_created_at=before_created_at,
        before_id=before_id,
    )
    return cast(list[NotificationRow], rows)


async def notification_feed_after(
    conn: Connection,
    *,
    limit: int,
    unread_only: bool,
    after_created_at: datetime,
    after_id: UUID,
    after_snapshot: str,
) -> list[NotificationRow]:
    """Rows newer than the cursor or unseen by its snapshot: the `limit` closest, newest first."""
    rows = await fetch_all(
        conn,
        "notification_feed_after",
        limit=limit,
        unread_only=unread_only,
        after_created_at=after_created_at,
        after_id=after_id,
        after_snapshot=after_snapshot,
    )
    return cast(list[NotificationRow], rows)


async def unread_count(conn: Connection) -> int:
    """How many notifications are unread (what getUnreadCount and the socket count say)."""
    row = await fetch_one(conn, "notification_unread_count")
    return int(row["count"]) if row is not None else 0


async def notification_mark_read(conn: Connection, *, id: UUID) -> NotificationRow | None:
    """The row after the change (or as it is, if it was read already); None if there is none."""
    changed = await fetch_one(conn, "notification_mark_read", id=id)
    if changed is not None:
        return cast(NotificationRow, changed)
    # Read committed: this second statement sees a concurrent writer's commit that the UPDATE
    # waited for, so a row another client just marked read comes back read, a deleted one not.
    rows = await notifications_by_ids(conn, ids=[id])
    return rows[0] if rows else None


async def notification_mark_all_read(conn: Connection) -> int:
    """How many rows went from unread to read."""
    return await execute(conn, "notification_mark_all_read")


async def notification_delete(conn: Connection, *, id: UUID) -> bool:
    return await execute(conn, "notification_delete", id=id) > 0
