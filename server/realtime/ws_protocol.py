"""uvicorn's websockets-sansio protocol with less memory per connection (`serve` uses it).

Each connection's protocol holds an asyncio.Queue for what it received (three deques and an
Event: ≈ 3.2 KiB, tracemalloc) and an asyncio.Event for flow control (≈ 0.8 KiB), for a socket
that receives a handshake and a pong every 25 s; the same interface with a getter slot and a
flag costs about a tenth. It also keeps the handshake's request and response, headers and all
(≈ 3 KiB), for the connection's whole life, though nothing reads them after the accept: they
are dropped then (bench/RESULTS.md).
Everything else is uvicorn's, unchanged: it is still a WebSocketsSansIOProtocol, the class the
direct-write fan-out writes to (server/realtime/fanout.py), and the same pin covers it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn._types import ASGISendEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from server.realtime.fanout import SocketQueue


class FlowEvent:
    """asyncio.Event's set/clear/is_set/wait, holding no deque while nobody waits."""

    __slots__ = ("_value", "_waiters")

    def __init__(self) -> None:
        self._value = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._value

    def set(self) -> None:
        if self._value:
            return
        self._value = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._value = False

    async def wait(self) -> bool:
        if self._value:
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
        return True


class LeanWebSocketsProtocol(WebSocketsSansIOProtocol):
    """uvicorn's protocol with SocketQueue for received messages and FlowEvent for `writable`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Replaced before anything is queued or waited on: the connection is not made yet.
        self.queue: Any = SocketQueue()
        writable = FlowEvent()
        writable.set()
        self.writable: Any = writable

    async def send(self, message: ASGISendEvent) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            # uvicorn reads them only to build and send the accept, just done.
            self.request = self.response = None  # type: ignore[assignment]
