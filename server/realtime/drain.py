"""SIGTERM: hand every client over to another process without dropping events on their way.

uvicorn's shutdown stops accepting connections and then closes every WebSocket at once (close
code 1012, "service restart"), whatever engine.io still had queued for it. Clients take a
closed transport as a reason to reconnect (Socket.IO's clients do, unlike after a Socket.IO
DISCONNECT packet, "io server disconnect", after which they stay away), so the close itself is
the right signal; only its timing is not. `DrainingServer` runs the app's drain in between:

1. stop accepting (the listening sockets close: a proxy sends new clients elsewhere);
2. the LISTEN loop takes no more announcements and hands what it already read to the sockets;
3. wait until every socket's queue has been written to its connection;
4. every connection is told to close (a request in flight gets its response, then the close), and
   each long-poll still waiting is answered at once with a NOOP: its client's next poll finds
   no server and reconnects, where otherwise uvicorn would wait out its graceful timeout for
   the poll and then cancel it into a 400 (which a browser logs as an error);
5. uvicorn closes the connections: clients reconnect to a process that is up and catch up with
   `getNotifications(after: <newest cursor>)` from where their events stopped.

Each step is bounded (`DRAIN_SECONDS` in all), so a stalled client cannot hold the shutdown.
The app registers its drain (steps 2-3) with `on_drain` and its long-poll release (step 4) with
`on_connections_closing` from its lifespan; the server runs the hooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, Final

import uvicorn
from engineio import packet as engineio_packet
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors import multiprocess

if TYPE_CHECKING:
    from server.realtime.runtime import Realtime

logger = logging.getLogger(__name__)

# The whole drain; uvicorn's own graceful timeout (HTTP requests in flight) comes after it.
DRAIN_SECONDS: Final = 5.0
# The hooks after it only answer what is waiting: they take no time unless something is wrong.
CLOSING_SECONDS: Final = 1.0
HTTP_PROTOCOLS: Final = (H11Protocol, HttpToolsProtocol)

DrainHook = Callable[[float], Awaitable[None]]
_hooks: list[DrainHook] = []
_closing_hooks: list[DrainHook] = []


def _registered(hooks: list[DrainHook], hook: DrainHook) -> Callable[[], None]:
    hooks.append(hook)

    def unregister() -> None:
        if hook in hooks:
            hooks.remove(hook)

    return unregister


def on_drain(hook: DrainHook) -> Callable[[], None]:
    """Run `hook(within_seconds)` when this process drains; returns what unregisters it."""
    return _registered(_hooks, hook)


def on_connections_closing(hook: DrainHook) -> Callable[[], None]:
    """Run `hook(within_seconds)` once every connection has been told to close (after the
    drain): a response sent now is the last on its connection. Returns what unregisters it."""
    return _registered(_closing_hooks, hook)


async def run_drain_hooks(within: float = DRAIN_SECONDS) -> None:
    """Every `on_drain` hook, in order, within `within` seconds in all; failures are logged."""
    await _run_in_order(_hooks, within)


async def run_closing_hooks(within: float = CLOSING_SECONDS) -> None:
    """Every `on_connections_closing` hook, in order, within `within` seconds in all."""
    await _run_in_order(_closing_hooks, within)


async def _run_in_order(hooks: list[DrainHook], within: float) -> None:
    deadline = time.monotonic() + within
    for hook in list(hooks):
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                await hook(max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            logger.warning("action=drain_timed_out within=%.1fs", within)
        except Exception:
            logger.exception("action=drain_failed")


def _flushed(eio_socket: Any) -> bool:
    """Everything queued for this engine.io socket has gone to its connection: nothing queued,
    and a WebSocket's writer is back waiting for more (so it holds no packet either)."""
    queue = eio_socket.queue
    if not queue.empty():
        return False
    if eio_socket.upgraded:  # a WebSocket: its writer task takes packets off the queue
        return bool(getattr(queue, "writer_waiting", True))
    return True  # long-polling: the client's poll took them


async def flush_sockets(eio_sockets: dict[str, Any], within: float) -> int:
    """Wait until every open socket is flushed, up to `within` seconds; how many were not."""
    pending: list[Any] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(within):
            while True:
                pending = [
                    s for s in list(eio_sockets.values()) if not s.closed and not _flushed(s)
                ]
                if not pending:
                    break
                await asyncio.sleep(0.01)
    return len(pending)


def realtime_drain(realtime: Realtime) -> DrainHook:
    """The realtime side's drain: steps 2 and 3 of the module's list."""

    async def drain(within: float) -> None:
        started = time.monotonic()
        sockets = realtime.gateway.sio.eio.sockets
        await realtime.listener.drain(within / 2)
        await realtime.gateway.fanout.drain()  # the last batch may still be going out
        unflushed = await flush_sockets(sockets, max(0.0, within - (time.monotonic() - started)))
        logger.info(
            "action=drained sockets=%d unflushed=%d ms=%.0f",
            len(sockets),
            unflushed,
            (time.monotonic() - started) * 1000,
        )

    return drain


def long_poll_release(realtime: Realtime) -> DrainHook:
    """Step 4's release: a NOOP for every long-polling socket, so that a poll waiting for
    packets returns now (its response the last on its connection) instead of at uvicorn's
    graceful timeout. A socket on a WebSocket, or upgrading to one, is left to uvicorn's 1012."""

    async def release(_within: float) -> None:  # one send per socket: no wait to bound
        released = 0
        for eio_socket in list(realtime.gateway.sio.eio.sockets.values()):
            if eio_socket.closed or eio_socket.upgraded or eio_socket.upgrading:
                continue
            await eio_socket.send(engineio_packet.Packet(engineio_packet.NOOP))
            released += 1
        logger.info("action=long_polls_released sockets=%d", released)

    return release


class DrainingServer(uvicorn.Server):
    """uvicorn's server with the app's drain between "stop accepting" and "close connections"."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # What uvicorn's shutdown starts with; doing it twice is harmless.
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        if not self.force_exit:  # a second Ctrl-C skips the drain, as it skips the rest
            logger.info("action=draining")
            await run_drain_hooks()
            # uvicorn's next step, taken early for HTTP connections so that a response the
            # hooks cause is the last on its connection (an idle one closes now, one mid-request
            # after its response). uvicorn repeats it, which HTTP's protocols allow; WebSockets'
            # do not (a second close raises), so they wait for uvicorn's own step.
            for connection in list(self.server_state.connections):
                if isinstance(connection, HTTP_PROTOCOLS):
                    connection.shutdown()
            await run_closing_hooks()
        await super().shutdown(sockets)


class _DrainingProcess(multiprocess.Process):
    """A `serve --workers N` worker that runs DrainingServer (the class is found by name in the
    spawned worker, so the worker uses this property too)."""

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            self._server = DrainingServer(config=self.config)
        return self._server


@contextlib.contextmanager
def _draining_workers() -> Iterator[None]:
    """uvicorn's supervisor makes its workers from the module's `Process`: ours meanwhile."""
    original = multiprocess.Process
    multiprocess.Process = _DrainingProcess  # type: ignore[misc]
    try:
        yield
    finally:
        multiprocess.Process = original  # type: ignore[misc]


def serve(config: uvicorn.Config) -> None:
    """`uvicorn.run` for an import-string app, with DrainingServer in every process."""
    if config.workers > 1:
        sock = config.bind_socket()
        with _draining_workers(), contextlib.suppress(KeyboardInterrupt):
            multiprocess.Multiprocess(config, sockets=[sock]).run()
        return
    config.load_app()
    server = DrainingServer(config=config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
