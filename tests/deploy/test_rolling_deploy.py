"""Rolling deploys with real processes: SIGTERM hands clients to another process without losing
a notification, and a process that starts while another serves leaves that one's clients alone.

Clients reach the processes through a failover proxy (each new TCP connection goes to the first
process that accepts it), as they would through nginx once a process has stopped accepting.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import socketio
from psycopg.rows import DictRow

from tests.deploy.table import catch_up, commit_ordered_ids
from tests.realtime.harness import RecordingClient, ServerProcess, eventually, start_server, token

WITHIN = 20.0  # the bound on every wait here
PAGE = 50


class FailoverProxy:
    """A TCP proxy: each connection goes to the first upstream port that accepts it."""

    def __init__(self, upstream_ports: Sequence[int]) -> None:
        self.upstream_ports = list(upstream_ports)
        self.routed: list[int] = []  # the upstream of each connection, in order
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for port in self.upstream_ports:
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                continue
            self.routed.append(port)
            for source, target in ((reader, up_writer), (up_reader, writer)):
                task = asyncio.create_task(self._pipe(source, target))
                self._pipes.add(task)
                task.add_done_callback(self._pipes.discard)
            return
        writer.close()

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                target.write(data)
                await target.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                target.close()


@dataclass
class ReconnectingClient(RecordingClient):
    """A client that reconnects by itself (Socket.IO's default), remembering where each of its
    connections ended: the events received by then, and why it ended."""

    sio: socketio.AsyncClient = field(
        default_factory=lambda: socketio.AsyncClient(
            reconnection=True, reconnection_delay=0.2, reconnection_delay_max=1.0
        )
    )
    ended: list[tuple[int, Any]] = field(default_factory=list)

    async def _on_disconnect(self, reason: Any = None) -> None:
        self.ended.append((len(self.events), reason))
        await super()._on_disconnect(reason)

    def created_ids(self, events: Sequence[tuple[str, Any]]) -> list[str]:
        return [data["id"] for name, data in events if name == "notification:created"]


class Writer:
    """Inserts leads with plain SQL (one notification each) from a thread until stopped."""

    def __init__(self, database_url: str, pause: float = 0.02) -> None:
        self._url = database_url
        self._pause = pause
        self._stop = threading.Event()
        self.written = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="lead-writer")

    def _run(self) -> None:
        try:
            with psycopg.connect(self._url, autocommit=True) as conn:
                while not self._stop.is_set():
                    conn.execute(
                        'INSERT INTO leads ("firstName", "lastName") VALUES (%s, %s)',
                        ("Rolling", f"Deploy {self.written}"),
                    )
                    self.written += 1
                    self._stop.wait(self._pause)
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=WITHIN)
        assert not self._thread.is_alive(), "the writer did not stop"
        assert self.error is None, self.error


@pytest.fixture
def writer(database_url: str) -> Iterator[Writer]:
    made = Writer(database_url)
    try:
        yield made
    finally:
        made._stop.set()  # whatever the test did: never leave the thread writing


@pytest.fixture
def servers(database_url: str, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    try:
        yield started
    finally:
        for server in started:
            with contextlib.suppress(AssertionError):
                server.terminate(15.0)


@pytest.fixture
async def proxy() -> AsyncIterator[FailoverProxy]:
    made = FailoverProxy([])
    await made.start()
    try:
        yield made
    finally:
        await made.close()


@pytest.fixture
def emptied(committed_db: psycopg.Connection[DictRow]) -> psycopg.Connection[DictRow]:
    """The tables are emptied after the test (committed_db does it)."""
    return committed_db


async def test_sigterm_hands_clients_to_another_process_and_catch_up_completes_their_feed(
    database_url: str,
    tmp_path: Path,
    servers: list[ServerProcess],
    proxy: FailoverProxy,
    writer: Writer,
    emptied: psycopg.Connection[DictRow],
) -> None:
    first = start_server(database_url, tmp_path)
    servers.append(first)
    second = start_server(database_url, tmp_path)
    servers.append(second)
    proxy.upstream_ports[:] = [first.port, second.port]
    clients = [ReconnectingClient() for _ in range(3)]
    try:
        for client in clients:
            await client.connect(proxy.url, auth={"token": token()}, transports=["websocket"])
        assert set(proxy.routed) == {first.port}
        writer.start()
        for client in clients:
            await client.wait_until(lambda c=client: len(c.created_ids(c.events)) >= 10)

        code = await asyncio.to_thread(first.terminate, 15.0)
        assert code in (0, -signal.SIGTERM), first.log()
        for client in clients:  # each reconnects by itself, to the process that is up
            await client.wait_until(lambda c=client: c.connects == 2 and c.sio.connected)
        assert proxy.routed[-len(clients) :] == [second.port] * len(clients)
        written = writer.written
        for client in clients:  # and receives events from it
            await client.wait_until(
                lambda c=client: len(c.created_ids(c.events)) >= written, within=WITHIN
            )
        writer.stop()
    finally:
        for client in clients:
            await client.close()

    log = first.log()
    assert "action=drained" in log, log
    everything = commit_ordered_ids(database_url)
    assert len(everything) == writer.written
    for client in clients:
        [(cut, reason)] = client.ended[:1]
        # A closed transport, not a Socket.IO DISCONNECT (after which clients stay away).
        assert reason == client.sio.reason.TRANSPORT_ERROR
        before = client.created_ids(client.events[:cut])
        after = client.created_ids(client.events[cut:])
        # What the stopping process sent is everything up to a point, in commit order: no event
        # on its way was dropped.
        assert before == everything[: len(before)]
        newest = next(
            data["cursor"]
            for name, data in reversed(client.events[:cut])
            if name == "notification:created"
        )
        caught_up = await catch_up(second.url, newest, page=PAGE, within=WITHIN)
        assert len(before) + len(after) == len(set(before) | set(after)), "an event came twice"
        feed = set(before) | set(after) | set(caught_up)
        assert feed == set(everything)
        assert set(caught_up) <= set(everything[len(before) :])


async def test_a_process_that_starts_while_another_serves_leaves_its_clients_undisturbed(
    database_url: str,
    tmp_path: Path,
    servers: list[ServerProcess],
    writer: Writer,
    emptied: psycopg.Connection[DictRow],
) -> None:
    serving = start_server(database_url, tmp_path)
    servers.append(serving)
    clients = [RecordingClient() for _ in range(2)]
    try:
        for client in clients:
            await client.connect(serving.url, auth={"token": token()}, transports=["websocket"])
            await client.next_event("notifications:unread-count")
        writer.start()
        await eventually(lambda: writer.written >= 5, WITHIN)
        joining = await asyncio.to_thread(start_server, database_url, tmp_path)
        servers.append(joining)
        # From its first moment, the new process delivers too.
        late = RecordingClient()
        clients.append(late)
        await late.connect(joining.url, auth={"token": token()}, transports=["websocket"])
        joined_at = writer.written
        await eventually(lambda: writer.written >= joined_at + 10, WITHIN)
        writer.stop()
        everything = commit_ordered_ids(database_url)
        for client in clients:
            await client.wait_until(
                lambda c=client: (
                    everything[-1] in [d["id"] for d in c.named("notification:created")]
                )
            )
        # Never dropped, never told to resync, every row once and in order.
        for client in clients[:2]:
            assert client.connects == 1
            assert client.disconnects == 0
            assert client.named("notifications:resync") == []
            assert [d["id"] for d in client.named("notification:created")] == everything
    finally:
        for client in clients:
            await client.close()
    # The late client has every row committed after it joined, in order, nothing twice.
    seen = [d["id"] for d in late.named("notification:created")]
    assert seen == everything[len(everything) - len(seen) :]
    assert len(seen) >= len(everything) - joined_at - 1


BURST = 3000


async def test_sigterm_writes_every_event_it_has_read_before_closing_the_sockets(
    database_url: str,
    tmp_path: Path,
    servers: list[ServerProcess],
    emptied: psycopg.Connection[DictRow],
) -> None:
    stopping = start_server(database_url, tmp_path)
    servers.append(stopping)
    clients = [RecordingClient() for _ in range(3)]
    try:
        for client in clients:
            await client.connect(stopping.url, auth={"token": token()}, transports=["websocket"])
            await client.next_event("notifications:unread-count")
        # One transaction, one statement per lead: BURST announcements at once, which take the
        # process several batches to send.
        with psycopg.connect(database_url) as conn, conn.cursor() as cursor:
            cursor.executemany(
                'INSERT INTO leads ("firstName", "lastName") VALUES (%s, %s)',
                [("Burst", str(n)) for n in range(BURST)],
            )
        await clients[0].next_event("notification:created")
        # SIGTERM while most of the burst is still on its way.
        code = await asyncio.to_thread(stopping.terminate, 15.0)
        assert code in (0, -signal.SIGTERM), stopping.log()
        for client in clients:
            await client.wait_until(lambda c=client: c.disconnects == 1)
    finally:
        for client in clients:
            await client.close()
    everything = commit_ordered_ids(database_url)
    assert len(everything) == BURST
    for client in clients:
        assert [d["id"] for d in client.named("notification:created")] == everything
