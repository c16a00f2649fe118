"""The fan-out yields to the event loop between slices, smaller while a request is served."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from server.inflight import InFlightRequests
from server.realtime.fanout import (
    CHUNK_SOCKETS,
    CHUNK_SOCKETS_WHILE_SERVING,
    FanoutManager,
    _Emit,
)

SOCKETS = 300


async def largest_slice(serving: bool) -> tuple[int, list[bytes]]:
    """Fan one frame out to SOCKETS fake sockets; the most writes between two loop turns."""
    manager = FanoutManager()
    written: list[bytes] = []
    protocol = SimpleNamespace(transport=SimpleNamespace(write=written.append))
    manager.server = SimpleNamespace(eio=SimpleNamespace(sockets={}))
    manager._protocol = lambda _sid, _socket: protocol  # type: ignore[method-assign]
    manager.requests_waiting = lambda: serving
    gaps: list[int] = []

    async def tick() -> None:
        seen = 0
        while len(written) < SOCKETS:
            await asyncio.sleep(0)
            gaps.append(len(written) - seen)
            seen = len(written)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0)
    sids = [f"s{n}" for n in range(SOCKETS)]
    await manager._write_run([_Emit(b"frame", None, sids)])
    await asyncio.wait_for(ticker, 5)
    return max(gaps), written


@pytest.mark.parametrize(
    ("serving", "slice_"), [(False, CHUNK_SOCKETS), (True, CHUNK_SOCKETS_WHILE_SERVING)]
)
async def test_requests_wait_behind_a_small_slice_of_socket_writes(
    serving: bool, slice_: int
) -> None:
    largest, written = await largest_slice(serving)
    assert written == [b"frame"] * SOCKETS  # every socket once, whatever the slices
    assert largest == slice_


async def test_in_flight_requests_are_counted_from_start_to_end_http_only() -> None:
    seen: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(counted.count)
        await asyncio.sleep(0)

    counted = InFlightRequests(app)

    async def receive() -> Message:
        return {"type": "http.request"}

    async def send(_message: Message) -> None:
        return None

    http: Any = {"type": "http"}
    await asyncio.gather(counted(http, receive, send), counted(http, receive, send))
    await counted({"type": "websocket"}, receive, send)
    await counted({"type": "lifespan"}, receive, send)
    assert seen == [1, 2, 0, 0]
    assert counted.count == 0
    assert not counted.busy()
