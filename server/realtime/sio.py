"""The Socket.IO server: JWT at the handshake, one room for authenticated sockets, expiry.

Only a socket whose handshake carried a valid token joins ROOM, and every broadcast goes to ROOM,
so a socket that was refused (or is somehow connected without a token) never receives an event.
`emit` addresses a room, never a loop of sockets: python-socketio then encodes the packet once
and sends the same bytes to every participant (AsyncManager.emit builds one packet when no
callback is asked for).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit
from uuid import UUID

import socketio

from server.auth import bearer_token, decode_token
from server.errors import DomainError, Unauthenticated
from server.metrics import EVENTS_EMITTED, SOCKETS_CONNECTED
from server.realtime.admission import ConnectionGuard
from server.realtime.events import EventName, Payload
from server.realtime.fanout import FanoutManager
from server.revocation import Revocations
from server.settings import Settings

logger = logging.getLogger(__name__)

ROOM: Final = "authenticated"
REFUSED_MESSAGE: Final = "unauthorized"
# The largest message a client may send; engine.io cuts the connection of one that sends more.
SOCKET_MAX_MESSAGE_BYTES: Final = 16 * 1024


def handshake_token(auth: object, environ: Mapping[str, Any]) -> str | None:
    """`auth.token` when the client sent one (it wins), else an `Authorization: Bearer` header."""
    if isinstance(auth, Mapping):
        token = auth.get("token")
        if isinstance(token, str) and token.strip():
            return token.strip()
    header = environ.get("HTTP_AUTHORIZATION")
    return bearer_token(header if isinstance(header, str) else None)


def same_origin_or(
    origins: Sequence[str],
) -> Callable[[str | None, Mapping[str, Any]], bool]:
    """engine.io's origin check: one of `origins`, or the origin the request was sent to.

    A list alone would refuse the server's own page (served at / in development): engine.io
    allows the same origin by default only when no list is given. Same-origin needs no CORS
    permission, and a token, not a cookie, opens the socket.
    """
    allowed = frozenset(origins)

    def check(origin: str | None, environ: Mapping[str, Any]) -> bool:
        if origin is None or origin in allowed or "*" in allowed:
            return True
        # The scheme is left out: behind a TLS proxy the server sees http for an https page.
        parts = urlsplit(origin)
        host = environ.get("HTTP_HOST")
        return parts.scheme in ("http", "https") and host is not None and parts.netloc == host

    return check


@dataclass
class _Socket:
    email: str
    user_id: str
    issued_at: int
    expiry: asyncio.TimerHandle


class SocketGateway:
    """Owns the python-socketio server; the lifespan plugs the unread counter in."""

    def __init__(self, settings: Settings) -> None:
        self._secret = settings.jwt_secret
        self.sio = socketio.AsyncServer(
            async_mode="asgi",
            # The same origins as HTTP's CORSMiddleware, plus the server's own (the page at /);
            # a browser on any other origin is refused at the handshake.
            cors_allowed_origins=same_origin_or(settings.cors_origins),
            logger=False,
            engineio_logger=False,
            # One socket write per recipient instead of a task, a queue and a writer wake-up
            # (bench/RESULTS.md); falls back to the library's path whenever that is not safe.
            client_manager=FanoutManager(),
            # SOCKETIO_TRANSPORTS=websocket behind `serve --workers N`: long-polling needs every
            # request of a session to reach the same process (docs/DEPLOYMENT.md).
            transports=list(settings.socketio_transports),
            # Clients send nothing but the handshake (a token) and pongs: a message or polling
            # body above this is not ours, and engine.io drops the connection that sent it.
            max_http_buffer_size=SOCKET_MAX_MESSAGE_BYTES,
        )
        # The direct writes read private parts of the libraries: checked now, warned if off.
        self.fanout: FanoutManager = self.sio.manager
        self.fanout.check_fast_path()
        # Caps on connections, and a deadline to join "/" (python-socketio has neither).
        self.guard = ConnectionGuard(self.sio, settings.socket_limits)
        self._sockets: dict[str, _Socket] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # Called with the sid of every socket that joined ROOM (the lifespan sends it the count).
        self.on_join: Callable[[str], None] | None = None
        self.on_leave: Callable[[str], None] | None = None
        # Refuses the tokens of deleted users and of reset passwords (server/revocation.py).
        self.revocations: Revocations | None = None
        self.sio.on("connect", self._connect)
        self.sio.on("disconnect", self._disconnect)

    @property
    def connected(self) -> int:
        return len(self._sockets)

    async def emit(self, event: EventName, data: Payload, *, to: str | list[str] = ROOM) -> None:
        """One emit, one encoding, whatever the number of recipients."""
        EVENTS_EMITTED.labels(event=event).inc()
        await self.sio.emit(event, data, to=to)

    async def emit_unhurried(
        self, event: EventName, data: Payload, *, to: str | list[str] = ROOM
    ) -> None:
        """`emit` for the unread count: a broadcast to ROOM may wait a few milliseconds for the
        next emit and share its socket writes (fanout.COALESCE_SECONDS); to sids, at once."""
        if to != ROOM:
            await self.emit(event, data, to=to)
            return
        EVENTS_EMITTED.labels(event=event).inc()
        await self.fanout.emit(event, data, namespace="/", room=ROOM, unhurried=True)

    async def emit_many(self, events: Sequence[tuple[EventName, Payload]]) -> None:
        """Several events to ROOM, in order; each socket gets them in one write when it can."""
        for event, _data in events:
            EVENTS_EMITTED.labels(event=event).inc()
        await self.fanout.emit_many(list(events), namespace="/", room=ROOM)

    async def _connect(self, sid: str, environ: dict[str, Any], auth: object = None) -> None:
        # engine.io's ASGI driver defines a class per request for the body reader and keeps an
        # instance in the environ it holds for the socket's whole life: ≈ 2.4 KiB per socket
        # (tracemalloc, bench/RESULTS.md). The handshake has no body, and later requests of a
        # session get environs of their own, so nothing reads this one again.
        environ.pop("wsgi.input", None)
        token = handshake_token(auth, environ)
        if token is None:
            logger.info("action=socket_refused sid=%s reason=no_token", sid)
            raise socketio.exceptions.ConnectionRefusedError(REFUSED_MESSAGE)
        try:
            claims = decode_token(token, self._secret)
        except Unauthenticated:
            logger.info("action=socket_refused sid=%s reason=invalid_token", sid)
            raise socketio.exceptions.ConnectionRefusedError(REFUSED_MESSAGE) from None
        if self.revocations is not None:
            try:
                await self.revocations.check(claims)
            except DomainError as exc:  # revoked, or the database cannot say: refused either way
                logger.info("action=socket_refused sid=%s reason=%s", sid, type(exc).__name__)
                raise socketio.exceptions.ConnectionRefusedError(REFUSED_MESSAGE) from None
        loop = asyncio.get_running_loop()
        delay = max(0.0, claims["exp"] - time.time())
        expiry = loop.call_later(delay, self._expire, sid)
        self._sockets[sid] = _Socket(
            email=claims["email"],
            user_id=claims["sub"].lower(),
            issued_at=claims["iat"],
            expiry=expiry,
        )
        SOCKETS_CONNECTED.inc()
        # Nothing may await between joining the room and returning: python-socketio sends the
        # CONNECT packet right after this handler, so no broadcast can overtake it.
        await self.sio.enter_room(sid, ROOM)
        logger.info("action=socket_connected sid=%s email=%s", sid, claims["email"])
        if self.on_join is not None:
            self.on_join(sid)

    async def _disconnect(self, sid: str, reason: object = None) -> None:
        self.guard.left(sid)
        socket = self._sockets.pop(sid, None)
        if socket is None:
            return
        SOCKETS_CONNECTED.dec()
        socket.expiry.cancel()
        if self.on_leave is not None:
            self.on_leave(sid)
        logger.info(
            "action=socket_disconnected sid=%s email=%s reason=%s", sid, socket.email, reason
        )

    def _expire(self, sid: str) -> None:
        socket = self._sockets.get(sid)
        if socket is None:
            return
        logger.info("action=socket_token_expired sid=%s email=%s", sid, socket.email)
        self._in_background(self.sio.disconnect(sid), name=f"expire-{sid}")

    def _in_background(self, work: Coroutine[Any, Any, None], *, name: str) -> None:
        """Run `work` as a task kept until it ends (the loop holds tasks only weakly)."""
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def disconnect_user(self, user_id: str | None) -> None:
        """Disconnect the sockets of one user (None: of every user): their tokens were revoked."""
        for sid, socket in list(self._sockets.items()):
            if user_id is None or socket.user_id == user_id:
                logger.info("action=socket_token_revoked sid=%s email=%s", sid, socket.email)
                self._in_background(self.sio.disconnect(sid), name=f"revoke-{sid}")

    def recheck_sockets(self) -> None:
        """After the LISTEN connection was lost: disconnect the sockets whose user was deleted
        or reset their password meanwhile (those announcements are gone). One read per user."""
        self._in_background(self._recheck_sockets(), name="recheck-sockets")

    async def _recheck_sockets(self) -> None:
        revocations = self.revocations
        if revocations is None:
            return
        try:
            for sid, socket in list(self._sockets.items()):
                if sid in self._sockets and not await revocations.accepts(
                    UUID(socket.user_id), socket.issued_at
                ):
                    logger.info("action=socket_token_revoked sid=%s email=%s", sid, socket.email)
                    await self.sio.disconnect(sid)
        except DomainError as exc:  # the database went again: the next reconnect checks again
            logger.warning("action=socket_recheck_failed error=%s", type(exc).__name__)

    async def close(self) -> None:
        """Disconnect every socket still open and stop the engine's background work."""
        fanout = self.fanout
        await fanout.drain()  # what was emitted goes out before the sockets close
        logger.info(
            "action=socket_writes direct=%d queued=%d transport_writes=%d fast_path=%s",
            fanout.direct_writes,
            fanout.queued_writes,
            fanout.socket_writes,
            fanout.fast_path,
        )
        for sid in list(self._sockets):
            await self.sio.disconnect(sid)
        for socket in self._sockets.values():
            socket.expiry.cancel()
        SOCKETS_CONNECTED.dec(len(self._sockets))
        self._sockets.clear()
        self.guard.close()
        await self.sio.shutdown()
