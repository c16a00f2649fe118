"""From announcements to client events: the listener's sink, and the coalesced unread count.

A batch is everything the listener had queued, in commit order. The rows that one-row inserts
and updates name are read in ONE query, then each announcement becomes exactly one event (a bulk
statement only its bulk event). A row that is gone when read was deleted meanwhile: its insert or
update is skipped, and the delete's own announcement follows in this batch or a later one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol
from uuid import UUID

from psycopg_pool import AsyncConnectionPool

from server.background import cancel_and_wait
from server.db import Connection
from server.realtime.events import (
    NOTIFICATION_CREATED,
    NOTIFICATION_DELETED,
    NOTIFICATION_UPDATED,
    NOTIFICATIONS_BULK_UPDATED,
    NOTIFICATIONS_RESYNC,
    NOTIFICATIONS_UNREAD_COUNT,
    BulkAnnouncement,
    EventName,
    ListenerItem,
    NotificationPayload,
    Payload,
    Resync,
    RowAnnouncement,
)
from server.serialization import notification_payload
from server.store.notifications import notifications_by_ids

logger = logging.getLogger(__name__)


class Emit(Protocol):
    """SocketGateway.emit: one call per event, to ROOM unless `to` says otherwise."""

    def __call__(
        self, event: EventName, data: Payload, *, to: str | list[str] = ...
    ) -> Awaitable[None]: ...


class EmitMany(Protocol):
    """SocketGateway.emit_many: several events to ROOM, in order."""

    def __call__(self, events: Sequence[tuple[EventName, Payload]]) -> Awaitable[None]: ...


class Broadcaster:
    def __init__(
        self,
        *,
        emit_many: EmitMany,
        pool: AsyncConnectionPool[Connection],
        cursor_secret: str,
        counts_changed: Callable[[], None],
        has_listeners: Callable[[], bool] = lambda: True,
    ) -> None:
        self._emit_many = emit_many
        self._pool = pool
        self._cursor_secret = cursor_secret
        self._counts_changed = counts_changed
        self._has_listeners = has_listeners

    async def __call__(self, batch: Sequence[ListenerItem]) -> None:
        if not self._has_listeners():
            # No socket in this process (an API-only process, or between clients): reading and
            # serialising rows for nobody is work every write would pay. A socket that joins
            # later catches up from its cursor, as it must after any connect.
            self._counts_changed()
            return
        rows = await self._read_rows(
            {item.id for item in batch if isinstance(item, RowAnnouncement) and item.op != "delete"}
        )
        events: list[tuple[EventName, Payload]] = []
        for item in batch:
            if isinstance(item, Resync):
                logger.info("action=resync_broadcast reason=%s", item.reason)
                events.append((NOTIFICATIONS_RESYNC, {}))
            elif isinstance(item, BulkAnnouncement):
                events.append(
                    (NOTIFICATIONS_BULK_UPDATED, {"action": item.action, "count": item.count})
                )
            elif item.op == "delete":
                events.append((NOTIFICATION_DELETED, {"id": str(item.id)}))
            else:
                row = rows.get(item.id)
                if row is None:
                    logger.debug("action=announced_row_gone id=%s op=%s", item.id, item.op)
                    continue
                event: EventName = (
                    NOTIFICATION_CREATED if item.op == "insert" else NOTIFICATION_UPDATED
                )
                events.append((event, row))
        # One call for the batch: a socket gets all of its events in one write (fanout.py).
        await self._emit_many(events)
        # Every statement on notifications may move the unread count, and so may what a resync
        # stands for.
        self._counts_changed()

    async def _read_rows(self, ids: set[UUID]) -> dict[UUID, NotificationPayload]:
        if not ids:
            return {}
        async with self._pool.connection() as conn:
            found = await notifications_by_ids(conn, ids=sorted(ids))
        payloads: dict[UUID, NotificationPayload] = {}
        for row in found:
            payloads[row["id"]] = notification_payload(row, cursor_secret=self._cursor_secret)
        return payloads


class UnreadCounter:
    """`notifications:unread-count`, at most one count query per `min_interval` per process.

    Requests only set flags; one task runs the query when flagged, then rests `min_interval`, so
    a burst of announcements (or of connecting sockets) costs one query. The query runs after the
    request that caused it, so the count includes every commit announced before it. Each count
    goes to every socket: at 1,000 sockets and a steady stream of writes, a rest of 0.1 s made
    counts a quarter of all deliveries; 0.25 s keeps the badge within a quarter second and the
    count's share at about a tenth (bench/RESULTS.md). A broadcast is emitted unhurried, so it
    rides in the next notification's socket write when one follows within 25 ms.
    With no socket to tell, a broadcast runs `unheard` instead: the fold that keeps the count
    cheap for getUnreadCount still happens in a process that serves only the API.
    """

    def __init__(
        self,
        *,
        count: Callable[[], Awaitable[int]],
        emit: Emit,
        room: str,
        min_interval: float = 0.25,
        has_listeners: Callable[[], bool] = lambda: True,
        unheard: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._count = count
        self._emit = emit
        self._room = room
        self._min_interval = min_interval
        self._has_listeners = has_listeners
        self._unheard = unheard
        self._wake = asyncio.Event()
        self._broadcast = False
        self._sids: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def broadcast(self) -> None:
        """Every socket in the room should get the count."""
        self._broadcast = True
        self._wake.set()

    def send_to(self, sid: str) -> None:
        """One socket (that just connected) should get the count."""
        self._sids.add(sid)
        self._wake.set()

    def forget(self, sid: str) -> None:
        self._sids.discard(sid)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="unread-counter")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            broadcast, sids = self._broadcast, self._sids
            self._broadcast, self._sids = False, set()
            try:
                if not sids and not self._has_listeners():
                    if self._unheard is not None:
                        await self._unheard()
                elif broadcast:
                    count = await self._count()
                    await self._emit(NOTIFICATIONS_UNREAD_COUNT, {"count": count}, to=self._room)
                elif sids:
                    count = await self._count()
                    await self._emit(NOTIFICATIONS_UNREAD_COUNT, {"count": count}, to=sorted(sids))
            except Exception:
                logger.exception("action=unread_count_failed")
                # Try again after a longer rest; nobody who asked is forgotten.
                self._broadcast = self._broadcast or broadcast
                self._sids |= sids
                self._wake.set()
                await asyncio.sleep(1.0)
            await asyncio.sleep(self._min_interval)
