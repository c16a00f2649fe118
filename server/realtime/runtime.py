"""The realtime side's start-up and shutdown, entered by the Starlette lifespan."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

from server.collector import CollectorPolicy
from server.db import Connection
from server.realtime.broadcaster import Broadcaster, UnreadCounter
from server.realtime.listener import Listener, ListenerOptions, connection_factory
from server.realtime.sio import ROOM, SocketGateway
from server.realtime.unread_fold import UnreadFolder
from server.revocation import Revocations
from server.settings import Settings
from server.store.notifications import unread_count

logger = logging.getLogger(__name__)


@dataclass
class Realtime:
    gateway: SocketGateway
    listener: Listener
    counter: UnreadCounter

    @property
    def listening(self) -> bool:
        return self.listener.listening


@contextlib.asynccontextmanager
async def running_realtime(
    gateway: SocketGateway,
    *,
    settings: Settings,
    database_url: str,
    pool: AsyncConnectionPool[Connection],
    options: ListenerOptions | None = None,
    revocations: Revocations | None = None,
) -> AsyncIterator[Realtime]:
    """Listen, count and broadcast until the block ends; a first LISTEN that fails raises."""
    options = options or ListenerOptions()

    folder = UnreadFolder(pool)
    await folder.fold()  # what plain SQL writers committed while no server ran

    async def count() -> int:
        await folder.fold_if_due()
        async with pool.connection() as conn:
            return await unread_count(conn)

    def has_listeners() -> bool:
        return gateway.connected > 0

    counter = UnreadCounter(
        count=count,
        emit=gateway.emit_unhurried,
        room=ROOM,
        has_listeners=has_listeners,
        unheard=folder.fold_if_due,
    )
    broadcaster = Broadcaster(
        emit_many=gateway.emit_many,
        pool=pool,
        cursor_secret=settings.jwt_secret,
        counts_changed=counter.broadcast,
        has_listeners=has_listeners,
    )
    listener = Listener(
        connection_factory(database_url, connect_timeout=options.connect_timeout_seconds),
        broadcaster,
        options=options,
        revocations=revocations,
    )
    if revocations is not None:
        # Before the first LISTEN: no announcement may arrive with nobody to act on it.
        revocations.on_revoked = gateway.disconnect_user
        revocations.on_resumed = gateway.recheck_sockets
        gateway.revocations = revocations
    collector = CollectorPolicy()

    def joined(sid: str) -> None:
        counter.send_to(sid)
        collector.socket_joined()

    await listener.start()
    counter.start()
    collector.start()
    gateway.on_join = joined
    gateway.on_leave = counter.forget
    try:
        yield Realtime(gateway=gateway, listener=listener, counter=counter)
    finally:
        gateway.on_join = gateway.on_leave = None
        if revocations is not None:
            revocations.on_revoked = revocations.on_resumed = None
        await gateway.close()
        await collector.stop()
        await counter.stop()
        await listener.stop()
