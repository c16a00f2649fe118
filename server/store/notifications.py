"""Notifications: the feed, the unread count and the three writes clients may make."""

from __future__ import annotations

from datetime import datetime
from typing import NotRequired, TypedDict, cast
from uuid import UUID

from server.cursors import Cursor, FeedCursor
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
    # The row's place in commit order (0 if its transaction is unknown): a stream cursor.
    commitSeq: NotRequired[int]
    insertSeq: NotRequired[int]
    # Rows of a feed page: what the page's read saw, for a feed cursor (see server/cursors.py).
    highWater: NotRequired[int]
    newestAt: NotRequired[datetime]
    newestId: NotRequired[UUID]


# (commitSeq, insertSeq) after every row of a transaction: "all of it" for a high water.
_END_OF_TRANSACTION = 2**63 - 1


async def notifications_by_ids(conn: Connection, *, ids: list[UUID]) -> list[NotificationRow]:
    """The rows that still exist, newest first."""
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


async def notification_catch_up(
    conn: Connection, *, after: Cursor, limit: int, unread_only: bool
) -> list[NotificationRow]:
    """The `limit` rows closest after the cursor (what it does not stand for), the furthest
    first: the first row's cursor is where the next call goes on from.

    From a page's cursor: first the rows between it and the page's newest row that the page's
    read saw, in feed order, then everything committed after that read, in commit order. From a
    stream cursor: everything committed after it, in commit order.
    """
    taken: list[NotificationRow] = []
    if isinstance(after, FeedCursor):
        if (after.created_at, after.id) < (after.newest_at, after.newest_id):
            taken = cast(
                list[NotificationRow],
                await fetch_all(
                    conn,
                    "notification_catch_up_seen",
                    limit=limit,
                    unread_only=unread_only,
                    after_created_at=after.created_at,
                    after_id=after.id,
                    newest_created_at=after.newest_at,
                    newest_id=after.newest_id,
                    high_water=after.high_water,
                ),
            )
            for row in taken:  # still within that read: their cursors are feed cursors too
                row["highWater"] = after.high_water
                row["newestAt"] = after.newest_at
                row["newestId"] = after.newest_id
        commit_seq, insert_seq = after.high_water, _END_OF_TRANSACTION
    else:
        commit_seq, insert_seq = after.commit_seq, after.insert_seq
    if len(taken) < limit:
        committed = await fetch_all(
            conn,
            "notification_catch_up_committed",
            limit=limit - len(taken),
            unread_only=unread_only,
            commit_seq=commit_seq,
            insert_seq=insert_seq,
        )
        taken.extend(cast(list[NotificationRow], committed))
    taken.reverse()
    return taken


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


async def notification_unread_fold(conn: Connection) -> int | None:
    """Fold the transactions committed since the last fold; the commitSeq folded through, or
    None when there was nothing to fold or another process was folding."""
    lock = await fetch_one(conn, "notification_unread_fold_lock")
    if lock is None or not lock["locked"]:
        return None
    row = await fetch_one(conn, "notification_unread_fold")
    return None if row is None or row["foldedThrough"] is None else int(row["foldedThrough"])


async def notification_mark_all_read(conn: Connection) -> int:
    """How many rows went from unread to read."""
    return await execute(conn, "notification_mark_all_read")


async def notification_delete(conn: Connection, *, id: UUID) -> bool:
    return await execute(conn, "notification_delete", id=id) > 0
