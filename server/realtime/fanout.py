"""A python-socketio client manager whose broadcasts cost one socket write per recipient.

Profiled at 1,000 sockets (bench/RESULTS.md), python-socketio's own broadcast spends most of
its time per recipient, not per message: `AsyncManager.emit` creates one asyncio task per
recipient, engine.io queues the packet, the socket's writer task wakes and runs
`asyncio.wait_for` (in Python 3.11, another task), then uvicorn's websocket protocol frames the
same text again. Only the final `transport.write` is irreducible.

`FanoutManager.emit` encodes the event once, frames it once as a WebSocket text frame, and
writes those bytes straight to the transport of every recipient whose connection allows it:

* the socket is a plain WebSocket connection (transport `websocket` from the start) served by
  uvicorn's websockets-sansio protocol, open, not closing, below its transport's high-water
  mark (`writable` set);
* its engine.io writer is suspended in `queue.get()` with the queue empty (`WriterQueue`):
  whatever was sent before has been written, so this frame cannot overtake it. An empty queue
  alone is not enough: the writer takes a packet off the queue one or more loop turns before it
  writes it (in Python 3.11 `asyncio.wait_for` runs `queue.get()` as a task of its own).

Every other recipient (long-polling, a connection under back-pressure or with packets on their
way, any packet with binary attachments or an ack callback) goes through python-socketio's own
path, unchanged, and is not written to directly until those packets are on its queue (that
path puts them from tasks, a turn or more later), so the order of events on each socket is the
order of the emits, whichever path each one took. A socket whose queue on that path
reaches MAX_BACKLOG_PACKETS has stopped reading and is disconnected, so one stalled client
cannot hold an ever-growing backlog in the server. Per-message deflate is off
(`serve`), so frames need no compression; a frame without RSV1 is valid either way.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Awaitable
from typing import Any

import engineio
import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

logger = logging.getLogger(__name__)

_FIN_TEXT = 0x81
# A socket with this many packets waiting in its engine.io queue has stopped reading. It is cut
# instead of holding a backlog that grows until the ping timeout (~45 s of events); its client
# reconnects and catches up with getNotifications(after:).
MAX_BACKLOG_PACKETS = 1_000


def text_frame(payload: bytes) -> bytes:
    """An unmasked (server to client) final WebSocket text frame."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", _FIN_TEXT, length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", _FIN_TEXT, 126, length)
    else:
        header = struct.pack("!BBQ", _FIN_TEXT, 127, length)
    return header + payload


class WriterQueue(asyncio.Queue[Any]):
    """An engine.io socket's packet queue that knows whether its writer holds a packet.

    `writer_waiting` is set when the consumer enters get() and cleared in the very step that
    takes an item. The writer of a socket that was WebSocket from the start (the only kind
    written to directly) is its one consumer, and it calls get() again only once every packet
    it took has gone to the transport; so "empty and writer_waiting" means nothing sent before
    is still on its way. The close path puts None, which the writer takes like a packet.
    """

    def __init__(self, maxsize: int = 0) -> None:
        super().__init__(maxsize)
        self.writer_waiting = False

    async def get(self) -> Any:
        self.writer_waiting = True
        try:
            return await super().get()
        finally:
            self.writer_waiting = False


class FanoutManager(socketio.AsyncManager):  # type: ignore[misc]
    """python-socketio's AsyncManager with a direct-write broadcast (see the module doc)."""

    def __init__(self) -> None:
        super().__init__()
        self.direct_writes = 0
        self.queued_writes = 0
        self.cut_sockets = 0
        self._cutting: dict[str, asyncio.Task[None]] = {}
        # Sockets with library-path sends under way, and how many: those tasks put their
        # packets on the queue a turn or more after the emit that made them, and a direct write
        # before that would overtake them.
        self._in_flight: dict[str, int] = {}

    def set_server(self, server: Any) -> None:
        super().set_server(server)
        eio = server.eio
        if not isinstance(eio, engineio.AsyncServer):
            raise TypeError(f"FanoutManager needs engineio.AsyncServer, not {type(eio).__name__}")
        # Every engine.io socket takes its queue from create_queue() (engineio/base_socket.py);
        # _protocol() reads `writer_waiting` from it and raises AttributeError, never guesses,
        # if a socket's queue came from anywhere else.
        eio.create_queue = WriterQueue

    def _protocol(self, eio_sid: str) -> WebSocketsSansIOProtocol | None:
        """The uvicorn protocol this socket can be written to directly now, if any."""
        server = self.server
        socket = server.eio.sockets.get(eio_sid)
        if socket is None or socket.closed or not socket.upgraded:
            return None
        queue: WriterQueue = socket.queue
        if queue.qsize() or not queue.writer_waiting or eio_sid in self._in_flight:
            return None
        environ = server.environ.get(eio_sid)
        send = environ.get("asgi.send") if environ is not None else None
        protocol = getattr(send, "__self__", None)
        if (
            not isinstance(protocol, WebSocketsSansIOProtocol)
            or not protocol.handshake_complete
            or protocol.close_sent
            or protocol.conn.state is not State.OPEN
            # Only the writer sends on this protocol and it waits in get(), so this is the
            # transport's own state: past its high-water mark, queue (back-pressure).
            or not protocol.writable.is_set()
            or protocol.transport.is_closing()
        ):
            return None
        return protocol

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        room = to or room
        if callback is not None or namespace not in self.rooms:
            await self._library_emit(event, data, namespace, room, skip_sid, callback, kwargs)
            return
        if isinstance(data, tuple):
            args = list(data)
        elif data is not None:
            args = [data]
        else:
            args = []
        encoded = self.server.packet_class(
            sio_packet.EVENT, namespace=namespace, data=[event, *args]
        ).encode()
        if isinstance(encoded, list):  # binary attachments: several packets, library path
            await self._library_emit(event, data, namespace, room, skip_sid, None, kwargs)
            return
        eio_pkt = eio_packet.Packet(eio_packet.MESSAGE, encoded)
        frame = text_frame(eio_pkt.encode().encode())
        skip = set(skip_sid) if isinstance(skip_sid, list) else {skip_sid}
        queued: list[str] = []
        direct = 0
        for sid, eio_sid in self.get_participants(namespace, room):
            if sid in skip:
                continue
            protocol = self._protocol(eio_sid)
            if protocol is None:
                queued.append(eio_sid)
            else:
                protocol.transport.write(frame)
                direct += 1
        self.direct_writes += direct
        queued = [eio_sid for eio_sid in queued if not self._cut_if_stalled(eio_sid)]
        if queued:
            self.queued_writes += len(queued)
            # The library's own path, in order: each packet joins its socket's queue.
            await self._holding_direct_writes(
                queued, asyncio.gather(*(self.server._send_eio_packet(s, eio_pkt) for s in queued))
            )

    async def _library_emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: Any,
        skip_sid: Any,
        callback: Any,
        kwargs: dict[str, Any],
    ) -> None:
        """python-socketio's own emit (a task per recipient), none overtaken by a direct write."""
        recipients = [eio_sid for _sid, eio_sid in self.get_participants(namespace, room)]
        await self._holding_direct_writes(
            recipients,
            super().emit(
                event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, **kwargs
            ),
        )

    async def _holding_direct_writes(self, eio_sids: list[str], sending: Awaitable[Any]) -> None:
        """Await `sending` with no direct write to these sockets until it is done."""
        in_flight = self._in_flight
        for eio_sid in eio_sids:
            in_flight[eio_sid] = in_flight.get(eio_sid, 0) + 1
        try:
            await sending
        finally:
            for eio_sid in eio_sids:
                left = in_flight[eio_sid] - 1
                if left:
                    in_flight[eio_sid] = left
                else:
                    del in_flight[eio_sid]

    def _cut_if_stalled(self, eio_sid: str) -> bool:
        """Disconnect (in the background) a socket whose backlog is full; True if so."""
        if eio_sid in self._cutting:
            return True
        socket = self.server.eio.sockets.get(eio_sid)
        if socket is None or socket.queue.qsize() < MAX_BACKLOG_PACKETS:
            return False
        logger.warning(
            "action=socket_cut_stalled eio_sid=%s backlog=%d", eio_sid, socket.queue.qsize()
        )
        self.cut_sockets += 1
        task = asyncio.create_task(self.server.eio.disconnect(eio_sid))
        self._cutting[eio_sid] = task
        task.add_done_callback(lambda _done: self._cutting.pop(eio_sid, None))
        return True
