"""Which engine.io connections the server keeps: caps per client address and in total, and a
deadline to join the namespace.

python-socketio 5.18 has no connect timeout (Socket.IO's own server closes a connection that
joins no namespace within `connectTimeout`, 45 s) and keeps a refused connection open: after
`connect_error` the engine.io session, its environ and its ping task stay until the client
leaves, and the client may send CONNECT again as often as it likes. So here:

* a connection that has not joined "/" within `connect_timeout` seconds is closed, and so is
  one whose message left it outside "/" (a refused CONNECT, an unknown namespace, an event
  before CONNECT): the `connect_error` packet is queued before the close, so the client still
  reads why; a socket that leaves "/" later (token expired, revoked, client DISCONNECT) gets
  the deadline again;
* an engine.io handshake over `max_per_address` open connections from its client address, or
  `max_total` in this process, is refused before the session exists: HTTP 429 (address) or 503
  (total) with a JSON body `{"message": ...}`, for polling and WebSocket handshakes alike.

The client address is the one sign-in throttling uses (`RequestContext.client_address`): the
ASGI scope's client, which uvicorn sets from X-Forwarded-For only for trusted proxies
(FORWARDED_ALLOW_IPS), so a client cannot choose it.

engine.io answers a refusing connect handler with 401 and turns that into a close before accept
for a WebSocket; `refusal_status` (around the ASGI app) turns it back into the status and message
chosen here, with the ASGI WebSocket denial response for WebSockets.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Final

import socketio

from server.settings import SocketLimits

logger = logging.getLogger(__name__)

NAMESPACE: Final = "/"
# Set in the ASGI scope of a refused handshake, read by refusal_status.
_REFUSAL_KEY: Final = "crm.socket_refusal"
TOO_MANY_FROM_ADDRESS: Final = "too many connections from this address"
TOO_MANY_IN_TOTAL: Final = "server at its connection limit; retry later"
RETRY_AFTER: Final = (b"retry-after", b"5")
# A close waits for the socket's queue to drain; a client that stopped reading must not hold
# the task that closes it.
_CLOSE_WITHIN: Final = 5.0

Handler = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str


def client_address(scope: MutableMapping[str, Any]) -> str:
    """As RequestContext.client_address: the peer, or the forwarded address of a trusted proxy."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class ConnectionGuard:
    """Counts the engine.io connections of one process and closes those that join nothing.

    It wraps python-socketio's engine.io handlers (connect, message, disconnect), so it sees
    every session of both transports, whatever happens in the namespace.
    """

    def __init__(self, sio: socketio.AsyncServer, limits: SocketLimits) -> None:
        self._sio = sio
        self._limits = limits
        self._addresses: dict[str, str] = {}  # eio sid -> client address
        self._per_address: dict[str, int] = {}
        self._deadlines: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        eio = sio.eio
        self._on_connect: Handler = eio.handlers["connect"]
        self._on_message: Handler = eio.handlers["message"]
        self._on_disconnect: Handler = eio.handlers["disconnect"]
        eio.on("connect", self._connect)
        eio.on("message", self._message)
        eio.on("disconnect", self._disconnect)

    @property
    def open_connections(self) -> int:
        return len(self._addresses)

    def refusal(self, address: str) -> Refusal | None:
        if self._per_address.get(address, 0) >= self._limits.max_per_address:
            return Refusal(429, TOO_MANY_FROM_ADDRESS)
        if len(self._addresses) >= self._limits.max_total:
            return Refusal(503, TOO_MANY_IN_TOTAL)
        return None

    async def _connect(self, eio_sid: str, environ: dict[str, Any]) -> Any:
        scope: MutableMapping[str, Any] = environ.get("asgi.scope", {})
        address = client_address(scope)
        # Checked and counted with no await in between: concurrent handshakes cannot overshoot.
        refusal = self.refusal(address)
        if refusal is not None:
            scope[_REFUSAL_KEY] = refusal
            logger.info(
                "action=socket_handshake_refused address=%s status=%d reason=%s",
                address,
                refusal.status,
                refusal.message,
            )
            # Refused before python-socketio hears of it: it keeps nothing for this sid. engine.io
            # answers 401 with this as JSON body; refusal_status puts the status right.
            return {"message": refusal.message}
        self._addresses[eio_sid] = address
        self._per_address[address] = self._per_address.get(address, 0) + 1
        self._arm(eio_sid)
        return await self._on_connect(eio_sid, environ)

    async def _message(self, eio_sid: str, data: Any) -> None:
        await self._on_message(eio_sid, data)
        if eio_sid not in self._addresses:
            return
        if self._joined(eio_sid):
            self._disarm(eio_sid)
        else:
            socket = self._sio.eio.sockets.get(eio_sid)
            if socket is not None and socket.upgraded:
                # python-socketio has already queued its answer (connect_error) in the handler,
                # and over a WebSocket it goes out before the close. A long-polling client must
                # still come and fetch it: its connection is left to the deadline.
                self._close(eio_sid, "not_joined")

    async def _disconnect(self, eio_sid: str, reason: Any = None) -> None:
        try:
            await self._on_disconnect(eio_sid, reason)
        finally:
            self._disarm(eio_sid)
            address = self._addresses.pop(eio_sid, None)
            if address is not None:
                left = self._per_address.get(address, 1) - 1
                if left > 0:
                    self._per_address[address] = left
                else:
                    self._per_address.pop(address, None)

    def left(self, sid: str) -> None:
        """A socket left "/" (its engine.io connection may stay): it has the deadline again."""
        eio_sid = self._sio.manager.eio_sid_from_sid(sid, NAMESPACE)
        if eio_sid is not None and eio_sid in self._addresses:
            self._arm(eio_sid)

    def _joined(self, eio_sid: str) -> bool:
        manager = self._sio.manager
        sid = manager.sid_from_eio_sid(eio_sid, NAMESPACE)
        return sid is not None and bool(manager.is_connected(sid, NAMESPACE))

    def _arm(self, eio_sid: str) -> None:
        self._disarm(eio_sid)
        loop = asyncio.get_running_loop()
        self._deadlines[eio_sid] = loop.call_later(
            self._limits.connect_timeout_seconds, self._expire, eio_sid
        )

    def _disarm(self, eio_sid: str) -> None:
        handle = self._deadlines.pop(eio_sid, None)
        if handle is not None:
            handle.cancel()

    def _expire(self, eio_sid: str) -> None:
        self._deadlines.pop(eio_sid, None)
        if eio_sid in self._addresses and not self._joined(eio_sid):
            self._close(eio_sid, "connect_timeout")

    def _close(self, eio_sid: str, reason: str) -> None:
        self._disarm(eio_sid)
        logger.info(
            "action=socket_closed_unjoined sid=%s address=%s reason=%s",
            eio_sid,
            self._addresses.get(eio_sid),
            reason,
        )
        task = asyncio.create_task(self._close_now(eio_sid), name=f"unjoined-{eio_sid}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _close_now(self, eio_sid: str) -> None:
        # The CLOSE packet goes after what is queued (the connect_error); a socket that is
        # already closed, or whose client stops reading, is left to engine.io's own sweep.
        socket = self._sio.eio.sockets.get(eio_sid)
        with_timeout = asyncio.wait_for(self._sio.eio.disconnect(eio_sid), _CLOSE_WITHIN)
        try:
            await with_timeout
        except TimeoutError:
            logger.info("action=socket_close_slow sid=%s", eio_sid)
        if socket is not None and socket.upgraded:
            # After the CLOSE packet engine.io's WebSocket writer waits for one more packet (up
            # to ping interval + timeout, 45 s) before it closes the WebSocket, and the client
            # may keep it until then: None ends the writer now, as engine.io's own close does.
            await socket.queue.put(None)

    def close(self) -> None:
        for handle in self._deadlines.values():
            handle.cancel()
        self._deadlines.clear()


def refusal_status(app: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """ASGI: give a handshake refused by ConnectionGuard its own status and message.

    Only engine.io handshakes (no `sid` in the query) are wrapped; nothing else pays for it.
    """

    async def guarded(
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] not in ("http", "websocket") or not _is_handshake(scope):
            await app(scope, receive, send)
            return

        await app(scope, receive, _Translating(scope, send))

    return guarded


class _Translating:
    """`send` for a handshake: a refusal gets its own status and message; anything else passes
    through. `__self__` is the wrapped send's (uvicorn's protocol), which FanoutManager looks for
    to write broadcast frames straight to a WebSocket (server/realtime/fanout.py)."""

    def __init__(
        self,
        scope: MutableMapping[str, Any],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        self._scope = scope
        self._send = send
        self.__self__ = getattr(send, "__self__", None)

    async def __call__(self, message: MutableMapping[str, Any]) -> None:
        scope, send = self._scope, self._send
        refusal: Refusal | None = scope.get(_REFUSAL_KEY)
        if refusal is None:
            await send(message)
            return
        kind = message["type"]
        if kind == "http.response.start":
            # engine.io's headers (CORS included, so a page can read the refusal) kept.
            headers = [*message.get("headers", []), RETRY_AFTER]
            await send({**message, "status": refusal.status, "headers": headers})
        elif kind == "websocket.close" and "websocket.http.response" in scope.get("extensions", {}):
            # Before accept: uvicorn sends this HTTP response instead of a bare 403.
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": refusal.status,
                    "headers": [(b"content-type", b"application/json"), RETRY_AFTER],
                }
            )
            body = json.dumps({"message": refusal.message}).encode()
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send(message)


def _is_handshake(scope: MutableMapping[str, Any]) -> bool:
    path: str = scope.get("path", "")
    query: bytes = scope.get("query_string", b"")
    return path.startswith("/socket.io") and b"sid=" not in query
