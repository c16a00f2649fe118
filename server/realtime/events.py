"""What the database announces and what Socket.IO clients receive (docs/EVENTS.md).

An announcement is the parsed `pg_notify` payload of `tg_notifications__announce`: it names one
row id (a one-row statement) or an action and a count (a bulk statement), never a row, so the
listener reads rows itself. A client event is what goes out on the socket.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final, Literal, TypedDict
from uuid import UUID

# The notification as GraphQL serves it: one definition for both.
from server.serialization import NotificationPayload as NotificationPayload

CHANNEL: Final = "notifications"

Op = Literal["insert", "update", "delete"]
BulkAction = Literal["bulk-create", "bulk-update", "mark-all-read", "bulk-delete"]

EventName = Literal[
    "notification:created",
    "notification:updated",
    "notification:deleted",
    "notifications:bulk-updated",
    "notifications:resync",
    "notifications:unread-count",
]
NOTIFICATION_CREATED: Final = "notification:created"
NOTIFICATION_UPDATED: Final = "notification:updated"
NOTIFICATION_DELETED: Final = "notification:deleted"
NOTIFICATIONS_BULK_UPDATED: Final = "notifications:bulk-updated"
NOTIFICATIONS_RESYNC: Final = "notifications:resync"
NOTIFICATIONS_UNREAD_COUNT: Final = "notifications:unread-count"


# --- client payloads (NotificationPayload is GraphQL's, from server.serialization) ------


class DeletedPayload(TypedDict):
    id: str


class BulkUpdatedPayload(TypedDict):
    action: BulkAction
    count: int


class ResyncPayload(TypedDict):
    """Empty: the client refetches."""


class UnreadCountPayload(TypedDict):
    count: int


Payload = (
    NotificationPayload | DeletedPayload | BulkUpdatedPayload | ResyncPayload | UnreadCountPayload
)


# --- announcements ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RowAnnouncement:
    """A statement changed exactly one notification row."""

    op: Op
    id: UUID
    seq: int


@dataclass(frozen=True)
class BulkAnnouncement:
    """A statement changed several rows; clients refetch."""

    op: Op
    count: int
    action: BulkAction
    seq: int


@dataclass(frozen=True)
class Resync:
    """Clients must refetch: the listener may have missed announcements (it reconnected, or
    overflowed), or the table was truncated (TRUNCATE has no rows to announce)."""

    reason: Literal["reconnected", "overflow", "dispatch-failed", "truncated"]


Announcement = RowAnnouncement | BulkAnnouncement
ListenerItem = RowAnnouncement | BulkAnnouncement | Resync


class MalformedAnnouncement(ValueError):
    """A payload that is not what tg_notifications__announce sends."""


def _op(value: object) -> Op:
    if value == "insert":
        return "insert"
    if value == "update":
        return "update"
    if value == "delete":
        return "delete"
    raise MalformedAnnouncement(f"unknown op {value!r}")


def _action(value: object) -> BulkAction:
    if value == "bulk-create":
        return "bulk-create"
    if value == "bulk-update":
        return "bulk-update"
    if value == "mark-all-read":
        return "mark-all-read"
    if value == "bulk-delete":
        return "bulk-delete"
    raise MalformedAnnouncement(f"unknown action {value!r}")


def _positive_int(value: object, name: str) -> int:
    # bool is an int subclass; JSON true is not a count.
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MalformedAnnouncement(f"{name} is not a non-negative integer: {value!r}")
    return value


def parse_announcement(payload: str) -> Announcement | Resync:
    """The typed announcement, or MalformedAnnouncement (the caller logs and skips it)."""
    try:
        raw = json.loads(payload)
    except ValueError as exc:
        raise MalformedAnnouncement("payload is not JSON") from exc
    if not isinstance(raw, dict):
        raise MalformedAnnouncement("payload is not a JSON object")
    if raw.get("op") == "truncate":
        _positive_int(raw.get("seq"), "seq")
        return Resync(reason="truncated")
    op = _op(raw.get("op"))
    count = _positive_int(raw.get("count"), "count")
    seq = _positive_int(raw.get("seq"), "seq")
    if count == 1:
        row_id = raw.get("id")
        if not isinstance(row_id, str):
            raise MalformedAnnouncement("a one-row announcement has no id")
        try:
            return RowAnnouncement(op=op, id=UUID(row_id), seq=seq)
        except ValueError as exc:
            raise MalformedAnnouncement(f"id is not a UUID: {row_id!r}") from exc
    if count == 0:
        raise MalformedAnnouncement("count is 0: the trigger never announces nothing")
    return BulkAnnouncement(op=op, count=count, action=_action(raw.get("action")), seq=seq)
