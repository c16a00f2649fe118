"""A python-socketio client manager whose broadcasts cost one socket write per recipient.

Profiled at 1,000 sockets (bench/RESULTS.md), python-socketio's own broadcast spends most of
its time per recipient, not per message: `AsyncManager.emit` creates one asyncio task per
recipient, engine.io queues the packet, the socket's writer task wakes and runs
`asyncio.wait_for` (in Python 3.11, another task), then uvicorn's websocket protocol frames the
same text again. Only the final `transport.write` is irreducible.

`FanoutManager.emit` encodes the event once, frames it once as a WebSocket text frame, and
writes those bytes straight to the transport of every recipient whose connection allows it:

* the socket is a plain WebSocket connection (transport `websocket` from the start) served by
  uvicorn's websockets-sansio protocol, open, not closing;
* nothing is waiting in its engine.io queue, and no writer is suspended in uvicorn's flow
  control (`writable` set, no waiter): whatever was sent before has been written, so this frame
  cannot overtake it.

Every other recipient (long-polling, a connection under back-pressure, any packet with binary
attachments or an ack callback) goes through python-socketio's own path, unchanged, so the
order of events on each socket is the order of the emits. A socket whose queue on that path
reaches MAX_BACKLOG_PACKETS has stopped reading and is disconnected, so one stalled client
cannot hold an ever-growing backlog in the server. Per-message deflate is off
(`serve`), so frames need no compression; a frame without RSV1 is valid either way.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import Any

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


def _idle(event: asyncio.Event) -> bool:
    """Set, and nobody still suspended in wait(): a writer woken by set() resumes later."""
    return event.is_set() and not getattr(event, "_waiters", None)


class FanoutManager(socketio.AsyncManager):  # type: ignore[misc]
    """python-socketio's AsyncManager with a direct-write broadcast (see the module doc)."""

    def __init__(self) -> None:
        super().__init__()
        self.direct_writes = 0
        self.queued_writes = 0
        self.cut_sockets = 0
        self._cutting: dict[str, asyncio.Task[None]] = {}

    def _protocol(self, eio_sid: str) -> WebSocketsSansIOProtocol | None:
        """The uvicorn protocol this socket can be written to directly now, if any."""
        server = self.server
        socket = server.eio.sockets.get(eio_sid)
        if socket is None or socket.closed or not socket.upgraded or not socket.queue.empty():
            return None
        environ = server.environ.get(eio_sid)
        send = environ.get("asgi.send") if environ is not None else None
        protocol = getattr(send, "__self__", None)
        if (
            not isinstance(protocol, WebSocketsSansIOProtocol)
            or not protocol.handshake_complete
            or protocol.close_sent
            or protocol.conn.state is not State.OPEN
            or not _idle(protocol.writable)
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
            await super().emit(
                event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, **kwargs
            )
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
            await super().emit(event, data, namespace, room=room, skip_sid=skip_sid, **kwargs)
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
            await asyncio.gather(*(self.server._send_eio_packet(s, eio_pkt) for s in queued))

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
