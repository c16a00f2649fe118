"""The id of the request being served, for every log line about it and the errors that hide detail.

`RequestIdMiddleware` wraps the whole ASGI app (Socket.IO included), so every HTTP request and
WebSocket handshake has an id: the caller's `X-Request-ID` when it is short and plain (a proxy or
a client that already logs one), otherwise a fresh one. HTTP responses echo it. The id lives in a
context variable, so code that logs needs no parameter for it; `server.logs` adds it to every
record, and ariadne's error formatter (called without the request) reads it from here.
"""

from __future__ import annotations

import importlib
import logging
import re
import uuid
from contextvars import ContextVar
from typing import Any, Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

NO_REQUEST: Final = "-"
HEADER: Final = "x-request-id"
# Long enough for a UUID with a prefix, short enough to stay a label; no spaces, quotes or `=`,
# so an incoming id can neither forge a `key=value` field nor break a log line.
_ACCEPTED = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

request_id_var: ContextVar[str] = ContextVar("crm_request_id", default=NO_REQUEST)


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]


def accepted_request_id(incoming: str | None) -> str | None:
    """The caller's id if it is one we may repeat in logs and headers, else None."""
    if incoming is not None and _ACCEPTED.match(incoming):
        return incoming
    return None


def _incoming(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == HEADER.encode():
            try:
                return bytes(value).decode("ascii")
            except UnicodeDecodeError:
                return None
    return None


# uvicorn's HTTP protocols whose request cycle _OneWriteResponse stands in for (uvicorn is pinned
# exactly in pyproject.toml for this and for the fan-out).
UVICORN_HTTP_MODULES: Final = (
    "uvicorn.protocols.http.httptools_impl",
    "uvicorn.protocols.http.h11_impl",
)
_one_write = True


def one_write_problems() -> list[str]:
    """What _OneWriteResponse needs of uvicorn's request cycles and they lack (empty: all there):
    a cycle that keeps its transport in `.transport`, and a `send()` that writes only through
    `transport.write` (a `writelines` would pass the kept head by, and the body would go first)."""
    problems: list[str] = []
    for module_name in UVICORN_HTTP_MODULES:
        try:
            cycle = importlib.import_module(module_name).RequestResponseCycle
        except (ImportError, AttributeError) as exc:
            problems.append(f"{module_name}: {exc}")
            continue
        if "transport" not in cycle.__init__.__code__.co_names:
            problems.append(f"{module_name}.RequestResponseCycle no longer sets .transport")
        send = vars(cycle).get("send")
        names = set(send.__code__.co_names) if callable(send) else set()
        if "write" not in names or "writelines" in names:
            problems.append(f"{module_name}.RequestResponseCycle.send no longer calls write alone")
    return problems


def check_one_write() -> bool:
    """At start-up: responses in one write when uvicorn is as expected, else loudly two (the
    log says why; `crm_http_one_write_enabled` is 0)."""
    # Here, not at the top: server.logs imports this module, and `serve` must set
    # PROMETHEUS_MULTIPROC_DIR before prometheus_client is first imported (server/metrics.py).
    from server.metrics import HTTP_ONE_WRITE_ENABLED

    global _one_write
    problems = one_write_problems()
    _one_write = not problems
    HTTP_ONE_WRITE_ENABLED.set(1 if _one_write else 0)
    if problems:
        logger.warning(
            "action=http_one_write enabled=false reason=%r: every response goes out in "
            "uvicorn's two writes; check uvicorn's version against pyproject.toml",
            "; ".join(problems),
        )
    return _one_write


class _OneWriteResponse:
    """uvicorn writes a response's head (status line and headers) and its body with two
    `transport.write` calls: two system calls and two TCP segments per response, which on the
    hot GraphQL requests cost about a sixth of the process's CPU (bench/RESULTS.md). Between the
    `http.response.start` message and the first body message, this stands in for the transport
    of uvicorn's request cycle and keeps the head, then writes it with the body in one call and
    gives the cycle its transport back. Only the cycle's own writes pass here (the connection's
    protocol keeps the real transport for reading, flow control and timeouts); anything else is
    the real transport's. An unknown server, or a cycle without a transport, is left alone."""

    def __init__(self, cycle: Any) -> None:
        self._cycle = cycle
        self._transport = cycle.transport
        self._head: list[bytes] = []
        cycle.transport = self

    @classmethod
    def around(cls, send: Send) -> _OneWriteResponse | None:
        if not _one_write:
            return None
        cycle = getattr(send, "__self__", None)
        if cycle is None or type(cycle).__module__ not in UVICORN_HTTP_MODULES:
            return None
        if getattr(cycle, "transport", None) is None:
            return None
        return cls(cycle)

    def write(self, data: bytes) -> None:
        self._head.append(bytes(data))
        if len(self._head) > 1 and data:  # the head was kept: the body goes with it
            self.release()

    def release(self) -> None:
        """Give the transport back and write what is kept, if anything."""
        if self._cycle.transport is self:
            self._cycle.transport = self._transport
        if self._head:
            data, self._head = b"".join(self._head), []
            self._transport.write(data)

    def close(self) -> None:
        self.release()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class RequestIdMiddleware:
    """Pure ASGI (no response buffering, WebSockets pass through): sets `request_id_var` for the
    request's lifetime and adds `X-Request-ID` to HTTP responses."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = accepted_request_id(_incoming(scope)) or new_request_id()
        token = request_id_var.set(request_id)
        header = (HEADER.encode(), request_id.encode())

        held: _OneWriteResponse | None = None

        def release_held() -> None:
            nonlocal held
            if held is not None:
                held.release()
                held = None

        async def send_with_id(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                headers: list[Any] = [
                    (name, value)
                    for name, value in message.get("headers", ())
                    if bytes(name).lower() != HEADER.encode()
                ]
                headers.append(header)
                message = {**message, "headers": headers}
                held = _OneWriteResponse.around(send)
                try:
                    await send(message)
                except BaseException:
                    release_held()
                    raise
                return
            try:
                await send(message)
            finally:
                # A body message was written through it (or there was none to write: HEAD).
                release_held()

        try:
            # A WebSocket's own `send` passes untouched: the realtime fan-out writes straight to
            # the protocol behind it (server/realtime/fanout.py), and there is no header to add.
            await self.app(scope, receive, send_with_id if scope["type"] == "http" else send)
        finally:
            release_held()
            request_id_var.reset(token)
