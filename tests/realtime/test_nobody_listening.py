"""A process with no socket reads no rows and counts nothing, but still folds the count."""

from __future__ import annotations

import asyncio
from typing import Any, cast
from uuid import UUID

import pytest

from server.realtime.broadcaster import Broadcaster, UnreadCounter
from server.realtime.events import BulkAnnouncement, ListenerItem, Payload, RowAnnouncement

ID = UUID("5f0c6a1e-8d7b-4c1a-9a57-3b1f7f0e2d11")


class NoDatabase:
    """A pool that fails the test if anything asks it for a connection."""

    def connection(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the database was read for nobody")


async def test_a_batch_with_no_socket_to_hear_it_reads_no_rows_and_emits_nothing() -> None:
    listening = False
    emitted: list[tuple[str, Payload]] = []
    counts_changed: list[bool] = []

    async def emit_many(events: Any) -> None:
        emitted.extend(events)

    broadcaster = Broadcaster(
        emit_many=emit_many,
        pool=cast(Any, NoDatabase()),
        cursor_secret="s",
        counts_changed=lambda: counts_changed.append(True),
        has_listeners=lambda: listening,
    )
    batch: list[ListenerItem] = [
        RowAnnouncement(op="insert", id=ID, seq=1),
        BulkAnnouncement(op="delete", count=3, action="bulk-delete", seq=2),
    ]
    await broadcaster(batch)
    assert emitted == []
    assert counts_changed == [True]  # the counter still hears of it (it folds)

    listening = True  # a socket joined: the next batch is read (and here, fails loudly)
    with pytest.raises(AssertionError, match="read for nobody"):
        await broadcaster(batch)


async def test_the_counter_folds_instead_of_counting_while_nobody_listens() -> None:
    listening = False
    calls: list[str] = []
    done = asyncio.Event()

    async def count() -> int:
        calls.append("count")
        done.set()
        return 4

    async def unheard() -> None:
        calls.append("fold")
        done.set()

    async def emit(event: str, data: Payload, *, to: str | list[str] = "room") -> None:
        calls.append(f"emit {data} to {to}")

    counter = UnreadCounter(
        count=count,
        emit=emit,
        room="room",
        min_interval=0.0,
        has_listeners=lambda: listening,
        unheard=unheard,
    )
    counter.start()
    try:
        for step in (
            lambda: counter.broadcast(),
            lambda: counter.send_to("sid-1"),  # a socket that joins is told, listeners or not
        ):
            done.clear()
            step()
            await asyncio.wait_for(done.wait(), 5.0)
            await asyncio.sleep(0.01)
        listening = True
        done.clear()
        counter.broadcast()
        await asyncio.wait_for(done.wait(), 5.0)
        await asyncio.sleep(0.01)
    finally:
        await counter.stop()
    assert calls == [
        "fold",
        "count",
        "emit {'count': 4} to ['sid-1']",
        "count",
        "emit {'count': 4} to room",
    ]
