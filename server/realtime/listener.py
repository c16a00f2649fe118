"""The LISTEN loop: one autocommit connection per server process, never one from the pool.

A reader task turns each `notifications` announcement into a typed item and puts it on a bounded
queue; a dispatcher task takes whatever has queued up (in commit order) and hands it to the sink
as one batch, so a slow emit never stalls the reader and the sink can read many rows in one
query. The first connection must succeed (start-up fails loudly otherwise); a connection lost
later is reopened forever, with exponential backoff and jitter, and every reopening is followed
by a `Resync` item: whatever was announced while nobody listened is gone, the table is the truth.

The same connection listens on `user_revocations` (server/revocation.py) when given a
Revocations: those are handled in the reader itself, never queued (a full queue must not drop
one), and the Revocations cache is suspended while the connection is down and emptied when it is
back, since announcements made meanwhile are lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from server import revocation
from server.background import cancel_and_wait
from server.metrics import LISTENER_RECONNECTS
from server.realtime.events import (
    CHANNEL,
    ListenerItem,
    MalformedAnnouncement,
    Resync,
    parse_announcement,
)

logger = logging.getLogger(__name__)

ListenConnection = psycopg.AsyncConnection[Any]
ConnectionFactory = Callable[[], Awaitable[ListenConnection]]
Sink = Callable[[Sequence[ListenerItem]], Awaitable[None]]

APPLICATION_NAME = "crm-listener"


@dataclass(frozen=True)
class ListenerOptions:
    # How long one notifies() window lasts; a liveness `SELECT 1` follows each, so a connection
    # that died without a word (a dropped network path) is noticed within about this long.
    window_seconds: float = 5.0
    liveness_timeout_seconds: float = 5.0
    connect_timeout_seconds: float = 5.0
    backoff_initial_seconds: float = 0.25
    backoff_max_seconds: float = 30.0
    # Past this many unhandled items the reader drops everything still queued and queues one
    # resync instead: memory stays bounded and clients still converge (they refetch).
    queue_size: int = 10_000
    batch_size: int = 500


def connection_factory(database_url: str, *, connect_timeout: float = 5.0) -> ConnectionFactory:
    """Fresh autocommit connections, named so that operators (and tests) can find them."""

    async def connect() -> ListenConnection:
        return await psycopg.AsyncConnection.connect(
            database_url,
            autocommit=True,
            connect_timeout=max(1, round(connect_timeout)),
            application_name=APPLICATION_NAME,
        )

    return connect


def backoff_delay(attempt: int, options: ListenerOptions, rand: Callable[[], float]) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random, so that many processes
    that lost the database together do not all come back in the same instant."""
    ceiling = min(options.backoff_max_seconds, options.backoff_initial_seconds * 2.0**attempt)
    return ceiling / 2 + ceiling / 2 * rand()


class Listener:
    def __init__(
        self,
        connect: ConnectionFactory,
        sink: Sink,
        *,
        options: ListenerOptions | None = None,
        channel: str = CHANNEL,
        rand: Callable[[], float] = random.random,
        revocations: revocation.Revocations | None = None,
    ) -> None:
        self._connect = connect
        self._revocations = revocations
        self._sink = sink
        self._options = options or ListenerOptions()
        self._channel = channel
        self._rand = rand
        self._queue: asyncio.Queue[ListenerItem] = asyncio.Queue(self._options.queue_size)
        self._conn: ListenConnection | None = None
        self._listening = False
        self._tasks: list[asyncio.Task[None]] = []
        self.reconnects = 0
        self.dropped = 0  # announcements lost to a full queue (a resync replaced them)
        self._handing_over = False  # the dispatcher is inside the sink (drain waits for it)

    @property
    def listening(self) -> bool:
        """True while a LISTEN connection is open; /readyz reports not ready otherwise."""
        return self._listening and all(not task.done() for task in self._tasks)

    @property
    def backend_pid(self) -> int | None:
        conn = self._conn
        return None if conn is None or conn.closed else conn.info.backend_pid

    async def start(self) -> None:
        """Open the first connection (raising if that fails) and start reading and dispatching."""
        self._conn = await self._open()
        self._listening = True
        if self._revocations is not None:
            self._revocations.resume()
        logger.info("action=listener_started channel=%s", self._channel)
        self._tasks = [
            asyncio.create_task(self._read_forever(), name="listener-reader"),
            asyncio.create_task(self._dispatch_forever(), name="listener-dispatcher"),
        ]

    async def drain(self, within: float) -> None:
        """Shutdown (server/realtime/drain.py): stop listening, hand every announcement already
        received to the sink, waiting up to `within` seconds in all, then stop. What comes
        after the cut reaches clients through catch-up."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                for task in self._tasks:
                    if task.get_name() == "listener-reader":
                        await cancel_and_wait(task)
                if self._revocations is not None:
                    self._revocations.suspend()  # no more revocations will be heard
                await self._take_the_rest()
                while self._handing_over or not self._queue.empty():  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
        await self.stop()

    async def _take_the_rest(self) -> None:
        """UNLISTEN, then queue what the database sent before it took effect (psycopg keeps
        what arrives during a statement for the next notifies())."""
        conn = self._conn
        if conn is None or conn.closed:
            return
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            return  # the reader was cut inside its liveness check: nothing more to read safely
        try:
            await conn.execute("UNLISTEN *")
            async for notify in conn.notifies(timeout=0):
                self._received(notify)
        except psycopg.Error as exc:
            logger.warning("action=listener_drain_failed error=%s", type(exc).__name__)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self._listening = False
        if self._conn is not None:
            await self._close(self._conn)
            self._conn = None
        logger.info("action=listener_stopped")

    async def _open(self) -> ListenConnection:
        async with asyncio.timeout(self._options.connect_timeout_seconds):
            conn = await self._connect()
            try:
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                if self._revocations is not None:
                    await conn.execute(
                        sql.SQL("LISTEN {}").format(sql.Identifier(revocation.CHANNEL))
                    )
            except BaseException:
                await self._close(conn)
                raise
        return conn

    @staticmethod
    async def _close(conn: ListenConnection) -> None:
        with contextlib.suppress(Exception):
            await conn.close()

    # --- reading -----------------------------------------------------------------------------

    async def _read_forever(self) -> None:
        while True:
            conn = self._conn
            assert conn is not None
            try:
                await self._read_until_failure(conn)
            # Not only driver errors: whatever breaks reading, the answer is a fresh connection,
            # never a dead task that leaves the process deaf while it reports ready.
            except Exception as exc:
                logger.warning(
                    "action=listener_connection_lost error=%s detail=%s",
                    type(exc).__name__,
                    str(exc).strip().splitlines()[0] if str(exc).strip() else "",
                )
            self._listening = False
            if self._revocations is not None:
                self._revocations.suspend()
            await self._close(conn)
            self._conn = await self._reopen()
            self._listening = True
            if self._revocations is not None:
                self._revocations.resume(after_loss=True)
            self.reconnects += 1
            LISTENER_RECONNECTS.inc()
            logger.info("action=listener_reconnected reconnects=%d", self.reconnects)
            self._enqueue(Resync(reason="reconnected"))

    async def _read_until_failure(self, conn: ListenConnection) -> None:
        options = self._options
        while True:
            async for notify in conn.notifies(timeout=options.window_seconds):
                self._received(notify)
            async with asyncio.timeout(options.liveness_timeout_seconds):
                await conn.execute("SELECT 1")

    async def _reopen(self) -> ListenConnection:
        attempt = 0
        while True:
            delay = backoff_delay(attempt, self._options, self._rand)
            await asyncio.sleep(delay)
            attempt += 1
            try:
                return await self._open()
            except Exception as exc:
                logger.warning(
                    "action=listener_reconnect_failed attempt=%d waited=%.2fs error=%s",
                    attempt,
                    delay,
                    type(exc).__name__,
                )

    def _received(self, notify: psycopg.Notify) -> None:
        if notify.channel == self._channel:
            self._accept(notify.payload)
        elif notify.channel == revocation.CHANNEL and self._revocations is not None:
            self._revocations.revoke(notify.payload)

    def _accept(self, payload: str) -> None:
        try:
            announcement = parse_announcement(payload)
        except MalformedAnnouncement as exc:
            # Truncated: a payload is at most 8000 bytes, a log line need not be.
            logger.warning(
                "action=listener_malformed_payload error=%s payload=%.200r", exc, payload
            )
            return
        self._enqueue(announcement)

    def _enqueue(self, item: ListenerItem) -> None:
        queue = self._queue
        if not queue.full():
            queue.put_nowait(item)
            return
        # A resync behind the queued items would need room there is not, and one ahead of them
        # would be followed by stale events: it replaces them all (clients refetch). What the
        # dispatcher has already taken is older and goes out first.
        dropped = 0 if isinstance(item, Resync) else 1
        while not queue.empty():
            if not isinstance(queue.get_nowait(), Resync):
                dropped += 1
        self.dropped += dropped
        queue.put_nowait(Resync(reason="overflow"))
        logger.warning(
            "action=listener_queue_full size=%d dropped=%d", self._options.queue_size, dropped
        )

    # --- dispatching -------------------------------------------------------------------------

    async def _dispatch_forever(self) -> None:
        while True:
            batch: list[ListenerItem] = [await self._queue.get()]
            while len(batch) < self._options.batch_size:
                try:
                    batch.append(self._queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            self._handing_over = True
            try:
                await self._sink(batch)
            except Exception:
                logger.exception("action=listener_sink_failed items=%d", len(batch))
                if not all(isinstance(item, Resync) for item in batch):
                    # Clients missed these events; tell them to refetch.
                    self._enqueue(Resync(reason="dispatch-failed"))
            finally:
                self._handing_over = False
