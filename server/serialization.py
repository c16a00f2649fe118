"""One way to write values for clients, shared by GraphQL and the realtime events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypedDict

from server.cursors import Cursor, FeedCursor, StreamCursor, encode_cursor

if TYPE_CHECKING:
    from server.store.notifications import NotificationRow


def iso8601(dt: datetime) -> str:
    """UTC, microseconds always present, `Z` suffix: "2026-11-24T18:00:00.123456Z".

    A fixed width keeps the strings sortable as text; JavaScript's Date parses them. A naive
    datetime is a bug (the pool speaks UTC and every column is timestamptz), so it is refused.
    """
    if dt.tzinfo is not UTC:
        if dt.tzinfo is None or dt.utcoffset() is None:
            raise ValueError("refusing to serialise a naive datetime")
        dt = dt.astimezone(UTC)
    # isoformat() without `timespec` is twice as fast (a page of 50 notifications writes 100 of
    # these); it leaves out a zero fraction, which is put back.
    text = dt.isoformat()
    return text[:-6] + "Z" if dt.microsecond else text[:-6] + ".000000Z"


class NotificationPayload(TypedDict):
    id: str
    type: str
    title: str
    message: str
    isRead: bool
    relatedLeadId: int | None
    createdAt: str
    updatedAt: str
    cursor: str


def notification_cursor(row: NotificationRow, *, cursor_secret: str) -> str:
    """A feed cursor for a row of a feed page, a stream cursor (its commit position) otherwise."""
    cursor: Cursor
    if "highWater" in row:
        cursor = FeedCursor(
            created_at=row["createdAt"],
            id=row["id"],
            high_water=row["highWater"],
            newest_at=row["newestAt"],
            newest_id=row["newestId"],
        )
    else:
        cursor = StreamCursor(
            created_at=row["createdAt"],
            id=row["id"],
            commit_seq=row["commitSeq"],
            insert_seq=row["insertSeq"],
        )
    return encode_cursor(cursor, cursor_secret)


def notification_payload(row: NotificationRow, *, cursor_secret: str) -> NotificationPayload:
    """A notification as GraphQL serves it and Socket.IO sends it (§4 of the contract)."""
    return NotificationPayload(
        id=str(row["id"]),
        type=row["type"],
        title=row["title"],
        message=row["message"],
        isRead=row["isRead"],
        relatedLeadId=row["relatedLeadId"],
        createdAt=iso8601(row["createdAt"]),
        updatedAt=iso8601(row["updatedAt"]),
        cursor=notification_cursor(row, cursor_secret=cursor_secret),
    )
