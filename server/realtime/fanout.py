"""A python-socketio client manager whose broadcasts cost one socket write per recipient.

Profiled at 1,000 sockets (bench/RESULTS.md), python-socketio's own broadcast spends most of
its time per recipient, not per message: `AsyncManager.emit` creates one asyncio task per
recipient, engine.io queues the packet, the socket's writer task wakes and runs
`asyncio.wait_for` (in Python 3.11, another task), then uvicorn's websocket protocol frames the
same text again. Only the final `transport.write` is irreducible.

`FanoutManager.emit` encodes the event once and frames it once as a WebSocket text frame. Emits
join one ordered pipeline; its delivery task takes every emit waiting when it wakes (the events
of a listener batch, an unread count) and, per recipient, writes all their frames in one
`transport.write` when the connection allows it:

* the socket is a plain WebSocket connection (transport `websocket` from the start) served by
  uvicorn's websockets-sansio protocol, open, not closing, below its transport's high-water
  mark (`writable` set);
* its engine.io writer is parked on its queue (`SocketQueue`) with nothing queued: whatever was
  sent before has been written, so these frames cannot overtake it.

Every other recipient (long-polling, a connection under back-pressure or with packets on their
way, any packet with binary attachments or an ack callback) gets its packets through engine.io's
queue, in order; the pipeline runs one batch at a time, so the order of events on each socket is
the order of the emits, whichever path each one took. Every `CHUNK_SOCKETS` recipients (every
`CHUNK_SOCKETS_WHILE_SERVING` while an HTTP request is being served) the delivery task yields
to the event loop: GraphQL requests never wait behind a whole fan-out. A
socket whose queue reaches MAX_BACKLOG_PACKETS has stopped reading and is disconnected, so one
stalled client cannot hold an ever-growing backlog. Per-message deflate is off (`serve`), so
frames need no compression; a frame without RSV1 is valid either way.

The fast path reads private parts of uvicorn, engine.io, python-socketio and websockets (pinned
in pyproject.toml). `fast_path_problems()` checks them at start-up, and the first use on each
socket checks the rest; anything missing turns the fast path off with a warning and
`crm_socket_fast_path_enabled 0`, and every delivery then takes the library's path. Deliveries
are counted per path (`crm_socket_deliveries_total{path}`).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import engineio
import socketio
from engineio import packet as eio_packet
from engineio.async_socket import AsyncSocket
from socketio import packet as sio_packet

from server.metrics import SOCKET_DELIVERIES, SOCKET_FAST_PATH_ENABLED, SOCKETS_CUT_STALLED

try:
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    from websockets.protocol import State
except ImportError:  # pragma: no cover - fast_path_problems() names it
    WebSocketsSansIOProtocol = None  # type: ignore[assignment,misc]
    State = None  # type: ignore[assignment,misc]

logger = logging.getLogger(__name__)

_FIN_TEXT = 0x81
# A socket with this many packets waiting in its engine.io queue has stopped reading. It is cut
# instead of holding a backlog that grows until the ping timeout (~45 s of events); its client
# reconnects and catches up with getNotifications(after:).
MAX_BACKLOG_PACKETS = 1_000
# Recipients written between two yields to the event loop: about half a millisecond of writes,
# and fewer while an HTTP request is being served, so that each of its steps (each database
# round trip, its response) waits behind a few writes rather than a whole slice.
CHUNK_SOCKETS: Final = 64
CHUNK_SOCKETS_WHILE_SERVING: Final = 8
# How long an unhurried emit (the unread count) waits for the next emit to share its socket
# writes: at a steady write rate the count rides in the next notification's write instead of
# a fan-out of its own that the next notification would queue behind.
COALESCE_SECONDS: Final = 0.025
# Listener batches that may wait behind the one being written before emit_many makes the
# listener wait: when the sockets fall behind (a burst, or the process short of CPU), the next
# fan-out carries every waiting batch in one write per socket instead of one batch each, so a
# backlog drains instead of compounding. Bounded: past it the listener's own queue (and its
# overflow resync) takes over.
MAX_BATCHES_AHEAD: Final = 4

# What the fast path reads on uvicorn's protocol (set in its __init__ or connection_made).
_PROTOCOL_ATTRIBUTES: Final = ("handshake_complete", "close_sent", "conn", "writable", "transport")
_SOCKET_ATTRIBUTES: Final = ("queue", "closed", "upgraded")


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


class SocketQueue:
    """An engine.io socket's packet queue: asyncio.Queue's interface, a fraction of its memory.

    asyncio.Queue holds three deques and an Event (≈ 2.5 KiB empty); this holds a getter and,
    only while packets wait, one deque. `get()` returns a Future rather than a coroutine, so the
    `asyncio.wait_for` engine.io wraps it in makes no task per wake-up (Python 3.11).

    `writer_waiting` is true while the consumer waits in get(); `put` hands a packet straight to
    it, which ends the wait in the same step. The writer of a socket that was WebSocket from the
    start (the only kind written to directly) is its one consumer, and it calls get() again only
    once every packet it took has gone to the transport; so "empty and writer_waiting" means
    nothing sent before is still on its way. The close path puts None, taken like a packet.
    """

    __slots__ = ("_getter", "_items", "_joined", "_more_getters", "_unfinished", "protocol")

    def __init__(self, maxsize: int = 0) -> None:
        self._items: collections.deque[Any] | None = None
        self._getter: asyncio.Future[Any] | None = None
        self._more_getters: list[asyncio.Future[Any]] | None = None  # polling during an upgrade
        self._unfinished = 0
        self._joined: asyncio.Future[None] | None = None
        # The uvicorn protocol of a socket found fit for direct writes (FanoutManager's cache).
        self.protocol: Any = None

    @property
    def writer_waiting(self) -> bool:
        getter = self._getter
        return getter is not None and not getter.done() and not self._more_getters

    def idle(self) -> bool:
        """Empty, and its writer waiting: nothing sent before is still on its way (the fan-out's
        test for a direct write, one call per socket)."""
        getter = self._getter
        return (
            not self._items and getter is not None and not getter.done() and not self._more_getters
        )

    def qsize(self) -> int:
        return len(self._items) if self._items else 0

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return False

    def put_nowait(self, item: Any) -> None:
        self._unfinished += 1
        if not self._items:
            getter = self._next_getter()
            if getter is not None:
                getter.set_result(item)
                return
            if self._items is None:
                self._items = collections.deque()
        self._items.append(item)

    async def put(self, item: Any) -> None:
        self.put_nowait(item)

    def get(self) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._items:
            future.set_result(self._take())
        elif self._getter is None or self._getter.done():
            self._getter = future
        else:
            if self._more_getters is None:
                self._more_getters = []
            self._more_getters.append(future)
        return future

    def get_nowait(self) -> Any:
        if not self._items:
            raise asyncio.QueueEmpty
        return self._take()

    def task_done(self) -> None:
        if self._unfinished <= 0:
            raise ValueError("task_done() called too many times")
        self._unfinished -= 1
        if self._unfinished == 0 and self._joined is not None:
            if not self._joined.done():
                self._joined.set_result(None)
            self._joined = None

    async def join(self) -> None:
        if self._unfinished == 0:
            return
        if self._joined is None:
            self._joined = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._joined)

    def _take(self) -> Any:
        items = self._items
        assert items
        item = items.popleft()
        if not items:
            self._items = None  # an idle socket keeps no deque
        return item

    def _next_getter(self) -> asyncio.Future[Any] | None:
        getter, self._getter = self._getter, None
        if getter is not None and not getter.done():
            self._promote()
            return getter
        while self._more_getters:
            candidate = self._more_getters.pop(0)
            if not candidate.done():
                self._promote()
                return candidate
        self._more_getters = None
        return None

    def _promote(self) -> None:
        if self._getter is None and self._more_getters:
            self._getter = self._more_getters.pop(0)
        if not self._more_getters:
            self._more_getters = None


def fast_path_problems(sio: socketio.AsyncServer) -> list[str]:
    """What the direct-write path needs and this process's libraries lack (empty: all there)."""
    problems: list[str] = []
    if WebSocketsSansIOProtocol is None or State is None:
        return ["uvicorn's websockets-sansio protocol or websockets.protocol.State is missing"]
    init_names = set(WebSocketsSansIOProtocol.__init__.__code__.co_names)
    init_names |= set(WebSocketsSansIOProtocol.connection_made.__code__.co_names)
    for name in _PROTOCOL_ATTRIBUTES:
        if name not in init_names:
            problems.append(f"uvicorn WebSocketsSansIOProtocol no longer sets .{name}")
    for method in ("pause_writing", "resume_writing", "send"):
        # Its own methods: asyncio.Protocol's no-op pause_writing would pass a getattr test.
        if not callable(vars(WebSocketsSansIOProtocol).get(method)):
            problems.append(f"uvicorn WebSocketsSansIOProtocol has no {method}()")
    if not hasattr(State, "OPEN"):
        problems.append("websockets State has no OPEN")
    eio = sio.eio
    if not isinstance(eio, engineio.AsyncServer):
        problems.append(f"python-socketio's engine is {type(eio).__name__}, not AsyncServer")
        return problems
    if not isinstance(getattr(eio, "sockets", None), dict):
        problems.append("engine.io AsyncServer has no .sockets dict")
    if getattr(eio, "create_queue", None) is not SocketQueue:
        problems.append("engine.io AsyncServer.create_queue is not ours (SocketQueue)")
    probe = AsyncSocket(eio, "fast-path-probe")  # sets attributes only; registered nowhere
    for name in _SOCKET_ATTRIBUTES:
        if not hasattr(probe, name):
            problems.append(f"engine.io AsyncSocket has no .{name}")
    if not isinstance(getattr(probe, "queue", None), SocketQueue):
        problems.append("engine.io sockets no longer take their queue from create_queue()")
    if "queue" not in AsyncSocket.poll.__code__.co_names:
        problems.append("engine.io AsyncSocket.poll() no longer waits on its queue")
    if not isinstance(getattr(sio, "environ", None), dict):
        problems.append("python-socketio AsyncServer has no .environ dict")
    for method in ("_send_eio_packet", "packet_class"):
        if not hasattr(sio, method):
            problems.append(f"python-socketio AsyncServer has no {method}")
    if not callable(getattr(sio.manager, "get_participants", None)):
        problems.append("python-socketio manager has no get_participants()")
    return problems


@dataclass(slots=True)
class _Emit:
    """One emit waiting in the pipeline: a frame for direct writes, or a library call."""

    frame: bytes | None
    packet: eio_packet.Packet | None
    recipients: list[str]  # engine.io sids, taken when emitted
    library: Callable[[], Awaitable[None]] | None = None
    unhurried: bool = False  # may wait COALESCE_SECONDS for company


class FanoutManager(socketio.AsyncManager):  # type: ignore[misc]
    """python-socketio's AsyncManager with a direct-write broadcast (see the module doc)."""

    def __init__(self) -> None:
        super().__init__()
        self.direct_writes = 0  # deliveries written straight to a transport
        self.queued_writes = 0  # deliveries through engine.io's queue
        self.socket_writes = 0  # transport.write calls (one per socket per batch)
        self.cut_sockets = 0
        self.fast_path = False
        self._backlog: list[_Emit] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._ahead: collections.deque[asyncio.Future[None]] = collections.deque()
        self._delivering: asyncio.Task[None] | None = None
        self._company: asyncio.Future[None] | None = None  # set when a hurried emit arrives
        self._cutting: dict[str, asyncio.Task[None]] = {}
        # Whether an HTTP request is being served (server/inflight.py, set by the app).
        self.requests_waiting: Callable[[], bool] = lambda: False

    def set_server(self, server: Any) -> None:
        super().set_server(server)
        eio = server.eio
        if isinstance(eio, engineio.AsyncServer):
            # Every engine.io socket takes its queue from create_queue() (engineio/base_socket.py).
            eio.create_queue = SocketQueue

    def check_fast_path(self) -> bool:
        """At start-up: turn the direct-write path on if everything it reads is there."""
        problems = fast_path_problems(self.server)
        if problems:
            self._turn_off("; ".join(problems))
        else:
            self.fast_path = True
            SOCKET_FAST_PATH_ENABLED.set(1)
            logger.info("action=socket_fast_path enabled=true")
        return self.fast_path

    def _turn_off(self, reason: str) -> None:
        self.fast_path = False
        SOCKET_FAST_PATH_ENABLED.set(0)
        logger.warning(
            "action=socket_fast_path enabled=false reason=%r: every broadcast takes "
            "python-socketio's path (slower, same order); check the pinned library versions",
            reason,
        )

    # --- the pipeline ---------------------------------------------------------------------

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        unhurried: bool = False,
        **kwargs: Any,
    ) -> None:
        """Queue the emit behind every earlier one; return once its packets are written or on
        their sockets' queues. An `unhurried` emit alone in the pipeline waits up to
        COALESCE_SECONDS for another emit, so that both reach each socket in one write."""
        item = self._item(event, data, namespace, to or room, skip_sid, callback, kwargs)
        if item is not None:
            item.unhurried = unhurried
            await self._enqueue([item])

    async def emit_many(self, events: list[tuple[str, Any]], namespace: str, room: Any) -> None:
        """Several emits in order, queued at once: each socket gets their frames in one write.

        Returns once at most MAX_BATCHES_AHEAD batches wait to be delivered, these among them:
        the listener reads its next batches' rows while earlier ones go out, and a fan-out that
        falls behind writes the batches waiting by then together.
        """
        items = [self._item(event, data, namespace, room, None, None, {}) for event, data in events]
        done = self._queue([item for item in items if item is not None])
        ahead = self._ahead
        if done is not None:
            ahead.append(done)
        while ahead and ahead[0].done():
            ahead.popleft()
        if len(ahead) > MAX_BATCHES_AHEAD:
            # Others may wait on it: a cancelled caller leaves it be.
            await asyncio.shield(ahead[0])

    def _item(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: Any,
        skip_sid: Any,
        callback: Any,
        kwargs: dict[str, Any],
    ) -> _Emit | None:
        if namespace not in self.rooms:
            return None
        skip = set(skip_sid) if isinstance(skip_sid, list) else {skip_sid}
        recipients = [e for sid, e in self.get_participants(namespace, room) if sid not in skip]
        item = self._direct_emit(event, data, namespace, recipients) if callback is None else None
        if item is None:
            # python-socketio's own emit (a task per recipient), in its place in the pipeline.
            item = _Emit(None, None, recipients)
            item.library = lambda: super(FanoutManager, self).emit(
                event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, **kwargs
            )
        return item

    def _direct_emit(
        self, event: str, data: Any, namespace: str, recipients: list[str]
    ) -> _Emit | None:
        if not self.fast_path:
            return None
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
            return None
        eio_pkt = eio_packet.Packet(eio_packet.MESSAGE, encoded)
        return _Emit(text_frame(eio_pkt.encode().encode()), eio_pkt, recipients)

    async def _enqueue(self, items: list[_Emit]) -> None:
        done = self._queue(items)
        if done is not None:
            await done

    def _queue(self, items: list[_Emit]) -> asyncio.Future[None] | None:
        """Put emits behind every earlier one; the future is done once they are delivered."""
        if not items:
            return None
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._backlog += items
        self._waiters.append(done)
        company = self._company
        if company is not None and not company.done() and not all(i.unhurried for i in items):
            company.set_result(None)
        if self._delivering is None:
            self._delivering = asyncio.create_task(self._deliver_all(), name="socket-fanout")
        return done

    async def drain(self) -> None:
        """Wait until every emit so far has been delivered (shutdown)."""
        while self._delivering is not None:
            await asyncio.shield(self._delivering)

    async def _deliver_all(self) -> None:
        try:
            while self._backlog:
                if all(item.unhurried for item in self._backlog):
                    await self._wait_for_company()
                batch, self._backlog = self._backlog, []
                waiters, self._waiters = self._waiters, []
                try:
                    await self._deliver(batch)
                except Exception:
                    logger.exception("action=socket_fanout_failed emits=%d", len(batch))
                for done in waiters:
                    if not done.done():
                        done.set_result(None)
        finally:
            self._delivering = None

    async def _wait_for_company(self) -> None:
        self._company = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(self._company, COALESCE_SECONDS)
        except TimeoutError:
            pass
        finally:
            self._company = None

    async def _deliver(self, batch: list[_Emit]) -> None:
        """The batch in order: runs of framed emits coalesced, library calls in between."""
        run: list[_Emit] = []
        for item in batch:
            if item.library is None:
                run.append(item)
                continue
            if run:
                await self._write_run(run)
                run = []
            self.queued_writes += len(item.recipients)
            SOCKET_DELIVERIES.labels(path="library").inc(len(item.recipients))
            await item.library()
        if run:
            await self._write_run(run)

    async def _write_run(self, run: list[_Emit]) -> None:
        """Every socket's frames of these emits in one write, or onto its queue in order."""
        first = run[0].recipients
        if all(item.recipients == first for item in run):
            # The usual case (broadcasts to the room): one payload for every socket.
            frames = [item.frame for item in run if item.frame is not None]
            payload = frames[0] if len(frames) == 1 else b"".join(frames)
            per_socket: Any = ((eio_sid, payload, run) for eio_sid in first)
        else:
            per_socket = self._payloads(run)
        library: list[tuple[str, list[_Emit]]] = []
        direct = writes = 0
        budget = self._slice()
        sockets = self.server.eio.sockets
        for eio_sid, payload, emits in per_socket:
            if budget == 0:
                await asyncio.sleep(0)  # let requests run between slices of a fan-out
                budget = self._slice()
            budget -= 1
            protocol = self._protocol(eio_sid, sockets.get(eio_sid))
            if protocol is None:
                library.append((eio_sid, emits))
            else:
                protocol.transport.write(payload)
                writes += 1
                direct += len(emits)
        self.direct_writes += direct
        self.socket_writes += writes
        if direct:
            SOCKET_DELIVERIES.labels(path="direct").inc(direct)
        queued = 0
        for eio_sid, emits in library:
            if self._cut_if_stalled(eio_sid):
                continue
            for item in emits:
                # engine.io's own send: onto the socket's queue, behind what is there.
                await self.server._send_eio_packet(eio_sid, item.packet)
                queued += 1
        if queued:
            self.queued_writes += queued
            SOCKET_DELIVERIES.labels(path="library").inc(queued)

    def _slice(self) -> int:
        return CHUNK_SOCKETS_WHILE_SERVING if self.requests_waiting() else CHUNK_SOCKETS

    @staticmethod
    def _payloads(run: list[_Emit]) -> list[tuple[str, bytes, list[_Emit]]]:
        """Per recipient, its frames of `run` in emit order (emits to different sockets)."""
        by_socket: dict[str, list[_Emit]] = {}
        for item in run:
            for eio_sid in item.recipients:
                by_socket.setdefault(eio_sid, []).append(item)
        return [
            (eio_sid, b"".join(item.frame for item in emits if item.frame is not None), emits)
            for eio_sid, emits in by_socket.items()
        ]

    def _protocol(self, eio_sid: str, socket: Any) -> Any:
        """The uvicorn protocol this socket can be written to directly now, if any (it runs once
        per recipient: every check reads an attribute or calls one cheap method)."""
        if socket is None or socket.closed or not socket.upgraded:
            return None
        queue = socket.queue
        if not queue.idle():
            return None
        protocol = queue.protocol
        if protocol is None:
            if not self.fast_path:
                return None
            protocol = queue.protocol = self._attach(eio_sid)
            if protocol is None:
                return None
        if (
            protocol.close_sent
            or protocol.conn.state is not State.OPEN
            # Only the writer sends on this protocol and it waits in get(), so this is the
            # transport's own state: past its high-water mark, queue (back-pressure).
            or not protocol.writable.is_set()
            or protocol.transport.is_closing()
        ):
            return None
        return protocol

    def _attach(self, eio_sid: str) -> Any:
        """First direct write to a socket: find its uvicorn protocol and check what we read."""
        environ = self.server.environ.get(eio_sid)
        send = environ.get("asgi.send") if environ is not None else None
        protocol = getattr(send, "__self__", None)
        if not isinstance(protocol, WebSocketsSansIOProtocol):
            return None  # another server or protocol: this socket takes the library path
        missing = [name for name in _PROTOCOL_ATTRIBUTES if not hasattr(protocol, name)]
        if missing or not hasattr(protocol.conn, "state"):
            self._turn_off(f"uvicorn's protocol lacks {', '.join(missing) or 'conn.state'}")
            return None
        if not protocol.handshake_complete:
            return None
        return protocol

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
        SOCKETS_CUT_STALLED.inc()
        task = asyncio.create_task(self.server.eio.disconnect(eio_sid))
        self._cutting[eio_sid] = task
        task.add_done_callback(lambda _done: self._cutting.pop(eio_sid, None))
        return True
