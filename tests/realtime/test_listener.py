"""The LISTEN loop driven directly: real Postgres, an injected connection factory and sink."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from types import SimpleNamespace
from typing import Any, cast
from uuid import UUID

import psycopg
import pytest
from psycopg.rows import DictRow

from server.db import create_pool
from server.realtime.broadcaster import Broadcaster
from server.realtime.events import (
    CHANNEL,
    BulkAnnouncement,
    ListenerItem,
    Payload,
    Resync,
    RowAnnouncement,
)
from server.realtime.listener import (
    ConnectionFactory,
    ListenConnection,
    Listener,
    ListenerOptions,
    backoff_delay,
    connection_factory,
)
from server.store._queries import count_statements
from tests.conftest import with_database
from tests.realtime.harness import WAIT

FAST = ListenerOptions(
    window_seconds=0.2,
    liveness_timeout_seconds=1.0,
    backoff_initial_seconds=0.02,
    backoff_max_seconds=0.2,
)


class CollectingSink:
    def __init__(self) -> None:
        self.batches: list[list[ListenerItem]] = []
        self._changed = asyncio.Condition()
        self.gate: asyncio.Event | None = None
        self.calls = 0  # batches handed over, the one held at the gate included

    @property
    def items(self) -> list[ListenerItem]:
        return [item for batch in self.batches for item in batch]

    async def __call__(self, batch: Sequence[ListenerItem]) -> None:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        self.batches.append(list(batch))
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[list[ListenerItem]], bool]) -> None:
        async def wait() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: predicate(self.items))

        await asyncio.wait_for(wait(), WAIT)


@pytest.fixture
async def running(database_url: str) -> AsyncIterator[tuple[Listener, CollectingSink]]:
    sink = CollectingSink()
    listener = Listener(connection_factory(database_url), sink, options=FAST)
    await listener.start()
    try:
        yield listener, sink
    finally:
        await listener.stop()


def insert_lead(conn: psycopg.Connection[DictRow], first: str = "Ada") -> UUID:
    conn.execute('INSERT INTO leads ("firstName", "lastName") VALUES (%s, %s)', (first, "L"))
    row = conn.execute(
        'SELECT id FROM notifications ORDER BY "createdAt" DESC, id DESC LIMIT 1'
    ).fetchone()
    assert row is not None
    return UUID(str(row["id"]))


def rows_of(items: list[ListenerItem]) -> list[RowAnnouncement]:
    return [item for item in items if isinstance(item, RowAnnouncement)]


async def test_the_listener_turns_trigger_announcements_into_typed_items_in_commit_order(
    running: tuple[Listener, CollectingSink], committed_db: psycopg.Connection[DictRow]
) -> None:
    _listener, sink = running
    first = insert_lead(committed_db, "One")
    second = insert_lead(committed_db, "Two")
    committed_db.execute('UPDATE notifications SET "isRead" = true')
    await sink.wait_for(lambda items: len(items) == 3)
    one, two, bulk = sink.items
    assert isinstance(one, RowAnnouncement)
    assert (one.op, one.id) == ("insert", first)
    assert isinstance(two, RowAnnouncement)
    assert (two.op, two.id) == ("insert", second)
    assert isinstance(bulk, BulkAnnouncement)
    assert (bulk.op, bulk.count, bulk.action) == ("update", 2, "mark-all-read")
    assert one.seq < two.seq < bulk.seq


async def test_a_malformed_payload_is_logged_and_skipped_and_the_loop_goes_on(
    running: tuple[Listener, CollectingSink],
    committed_db: psycopg.Connection[DictRow],
    caplog: pytest.LogCaptureFixture,
) -> None:
    _listener, sink = running
    caplog.set_level(logging.WARNING, logger="server.realtime.listener")
    for garbage in ("not json", "[1]", '{"op":"insert","count":1,"seq":1}', '{"op":"drop"}'):
        committed_db.execute("SELECT pg_notify('notifications', %s)", (garbage,))
    row_id = insert_lead(committed_db)
    await sink.wait_for(lambda items: len(rows_of(items)) == 1)
    assert rows_of(sink.items)[0].id == row_id
    assert len(sink.items) == 1
    assert caplog.text.count("action=listener_malformed_payload") == 4


async def test_a_first_connection_that_fails_fails_start_up_loudly(database_url: str) -> None:
    listener = Listener(
        connection_factory(with_database(database_url, "no_such_database")),
        CollectingSink(),
        options=FAST,
    )
    with pytest.raises(psycopg.OperationalError):
        await listener.start()
    assert not listener.listening


async def test_a_killed_listening_connection_is_reopened_and_followed_by_a_resync(
    running: tuple[Listener, CollectingSink], committed_db: psycopg.Connection[DictRow]
) -> None:
    listener, sink = running
    before = insert_lead(committed_db, "Before")
    await sink.wait_for(lambda items: len(items) == 1)
    old_pid = listener.backend_pid
    committed_db.execute("SELECT pg_terminate_backend(%s)", (old_pid,))
    await sink.wait_for(lambda items: any(isinstance(item, Resync) for item in items))
    assert listener.listening
    assert listener.backend_pid not in (None, old_pid)
    after = insert_lead(committed_db, "After")
    await sink.wait_for(lambda items: len(rows_of(items)) == 2)
    assert [item.id for item in rows_of(sink.items)] == [before, after]
    assert sink.items[1] == Resync(reason="reconnected")


async def test_reconnects_back_off_and_the_listener_reports_down_until_one_succeeds(
    database_url: str, committed_db: psycopg.Connection[DictRow]
) -> None:
    real = connection_factory(database_url)
    attempts: list[float] = []
    failures_left = 0

    async def flaky() -> ListenConnection:
        nonlocal failures_left
        attempts.append(asyncio.get_running_loop().time())
        if failures_left > 0:
            failures_left -= 1
            raise psycopg.OperationalError("refused by the test")
        return await real()

    sink = CollectingSink()
    factory: ConnectionFactory = flaky
    listener = Listener(factory, sink, options=FAST, rand=lambda: 1.0)
    await listener.start()
    try:
        failures_left = 4
        committed_db.execute("SELECT pg_terminate_backend(%s)", (listener.backend_pid,))
        async with asyncio.timeout(WAIT):
            while listener.listening:  # noqa: ASYNC110 - the state has no event to wait on
                await asyncio.sleep(0.005)
        await sink.wait_for(lambda items: Resync(reason="reconnected") in items)
        assert listener.listening
        assert listener.reconnects == 1
        gaps = [later - earlier for earlier, later in itertools.pairwise(attempts[1:])]
        # With the jitter at its top: 0.04, 0.08, 0.16, then capped at 0.2. A sleep may run
        # late on a busy machine, never early.
        assert len(gaps) == 4
        for gap, planned in zip(gaps, [0.04, 0.08, 0.16, 0.2], strict=True):
            assert gap >= planned * 0.95
        insert_lead(committed_db)
        await sink.wait_for(lambda items: len(rows_of(items)) == 1)
    finally:
        await listener.stop()


def test_backoff_grows_exponentially_with_jitter_up_to_its_ceiling() -> None:
    options = ListenerOptions(backoff_initial_seconds=0.5, backoff_max_seconds=8.0)
    lowest = [backoff_delay(n, options, lambda: 0.0) for n in range(8)]
    highest = [backoff_delay(n, options, lambda: 1.0) for n in range(8)]
    assert highest == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0]
    assert lowest == [delay / 2 for delay in highest]


async def test_a_full_queue_drops_announcements_for_one_resync_instead_of_blocking(
    database_url: str, committed_db: psycopg.Connection[DictRow]
) -> None:
    sink = CollectingSink()
    sink.gate = asyncio.Event()
    options = ListenerOptions(window_seconds=0.2, queue_size=3, batch_size=100)
    listener = Listener(connection_factory(database_url), sink, options=options)
    await listener.start()
    try:
        for n in range(10):
            insert_lead(committed_db, f"Lead {n}")
        async with asyncio.timeout(WAIT):
            while listener.dropped == 0:  # noqa: ASYNC110 - a counter, not an event
                await asyncio.sleep(0.01)
        sink.gate.set()
        await sink.wait_for(lambda items: Resync(reason="overflow") in items)
        assert len(rows_of(sink.items)) < 10
        # Every announcement was either handed on or dropped, none both.
        await sink.wait_for(lambda items: len(rows_of(items)) + listener.dropped == 10)
    finally:
        await listener.stop()


class ScriptedConnection:
    """A LISTEN connection that announces what the test hands it, when the test does."""

    def __init__(self) -> None:
        self.closed = False
        self.pending: asyncio.Queue[str] = asyncio.Queue()
        self.info = SimpleNamespace(backend_pid=0)

    async def execute(self, query: object) -> None:
        return None

    async def close(self) -> None:
        self.closed = True

    async def notifies(
        self,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - psycopg's signature; one endless window
    ) -> AsyncIterator[psycopg.Notify]:
        while True:
            yield psycopg.Notify(CHANNEL, await self.pending.get(), 0)


def row_payload(seq: int) -> str:
    row_id = f"00000000-0000-4000-8000-{seq:012d}"
    return json.dumps({"op": "insert", "count": 1, "id": row_id, "seq": seq})


async def test_an_overflow_resync_comes_after_every_older_event_and_none_of_them_after_it() -> None:
    conn = ScriptedConnection()

    async def connect() -> ListenConnection:
        return cast(ListenConnection, conn)

    sink = CollectingSink()
    sink.gate = asyncio.Event()
    # Room for three; the dispatcher hands on two at a time.
    options = ListenerOptions(queue_size=3, batch_size=2)
    listener = Listener(connect, sink, options=options)
    await listener.start()
    try:
        conn.pending.put_nowait(row_payload(1))
        async with asyncio.timeout(WAIT):
            while sink.calls == 0:  # noqa: ASYNC110 - a counter, not an event
                await asyncio.sleep(0.001)
        # 1 is with the sink. 2, 3, 4 fill the queue; 5 does not fit, so 2 to 5 are lost and
        # one resync takes their place; 6 queues after it.
        for seq in range(2, 7):
            conn.pending.put_nowait(row_payload(seq))
        async with asyncio.timeout(WAIT):
            while not conn.pending.empty():  # noqa: ASYNC110 - a queue the reader drains
                await asyncio.sleep(0.001)
        sink.gate.set()
        await sink.wait_for(lambda items: Resync(reason="overflow") in items)
        await asyncio.sleep(0.05)  # whatever else was queued has come too
        assert [item.seq if isinstance(item, RowAnnouncement) else item for item in sink.items] == [
            1,
            Resync(reason="overflow"),
            6,
        ]
        assert listener.dropped == 4
    finally:
        await listener.stop()


async def test_queued_one_row_announcements_are_read_in_one_query_and_a_vanished_row_is_skipped(
    database_url: str, committed_db: psycopg.Connection[DictRow]
) -> None:
    ids = [insert_lead(committed_db, f"Lead {n}") for n in range(3)]
    gone = UUID("00000000-0000-4000-8000-00000000dead")
    emitted: list[tuple[str, Any]] = []
    counts_changed: list[bool] = []

    async def emit_many(events: Sequence[tuple[str, Payload]]) -> None:
        emitted.extend(events)

    pool = create_pool(database_url, min_size=1, max_size=1)
    await pool.open(wait=True, timeout=WAIT)
    try:
        broadcaster = Broadcaster(
            emit_many=emit_many,
            pool=pool,
            cursor_secret="s",
            counts_changed=lambda: counts_changed.append(True),
        )
        batch: list[ListenerItem] = [
            RowAnnouncement(op="insert", id=ids[0], seq=1),
            RowAnnouncement(op="insert", id=gone, seq=2),
            RowAnnouncement(op="update", id=ids[1], seq=3),
            BulkAnnouncement(op="delete", count=7, action="bulk-delete", seq=4),
            RowAnnouncement(op="delete", id=gone, seq=5),
            RowAnnouncement(op="insert", id=ids[2], seq=6),
            Resync(reason="reconnected"),
        ]
        with count_statements() as statements:
            await broadcaster(batch)
        assert statements.statements == 1
    finally:
        await pool.close()
    assert [(name, data.get("id")) for name, data in emitted] == [
        ("notification:created", str(ids[0])),
        ("notification:updated", str(ids[1])),
        ("notifications:bulk-updated", None),
        ("notification:deleted", str(gone)),
        ("notification:created", str(ids[2])),
        ("notifications:resync", None),
    ]
    assert emitted[2][1] == {"action": "bulk-delete", "count": 7}
    assert counts_changed == [True]
