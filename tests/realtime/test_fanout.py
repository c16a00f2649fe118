"""The direct-write broadcast (server/realtime/fanout.py): valid frames, none lost or reordered."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import socketio
import uvicorn
from psycopg.rows import DictRow
from socketio import packet as sio_packet
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from server.realtime.events import (
    NOTIFICATION_CREATED,
    NOTIFICATION_DELETED,
    NOTIFICATIONS_UNREAD_COUNT,
)
from server.realtime.fanout import COALESCE_SECONDS, FanoutManager, text_frame
from server.realtime.sio import ROOM, SocketGateway
from server.settings import load_settings
from tests.realtime.harness import (
    SECRET,
    WAIT,
    RecordingClient,
    free_port,
    start_server,
    token,
)

LEADS = 40


def parse(frame: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(frame)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        parsed: Frame = done.value
        return parsed
    raise AssertionError("the frame is incomplete")


@pytest.mark.parametrize("length", [0, 1, 125, 126, 65535, 65536, 200_000])
def test_a_text_frame_parses_back_to_its_payload_at_every_length_encoding(length: int) -> None:
    payload = ("é" * length).encode()[:length]
    frame = parse(text_frame(payload))
    assert frame.opcode is Opcode.TEXT
    assert frame.fin
    assert not frame.rsv1
    assert frame.data == payload


async def test_websocket_and_upgraded_clients_get_every_event_once_in_commit_order(
    database_url: str, tmp_path: Path
) -> None:
    server = start_server(database_url, tmp_path)
    clients: list[RecordingClient] = []
    try:
        # Three that can be written to directly, one that came through long-polling (library path).
        for transports in (["websocket"], ["websocket"], ["websocket"], None):
            client = RecordingClient()
            clients.append(client)
            await client.connect(server.url, auth={"token": token()}, transports=transports)
            await client.next_event("notifications:unread-count")
        lead_ids = []
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.row_factory = psycopg.rows.dict_row
            for n in range(LEADS):
                row: DictRow | None = conn.execute(
                    'INSERT INTO leads ("firstName", "lastName") VALUES (%s, %s) RETURNING id',
                    ("Order", str(n)),
                ).fetchone()
                assert row is not None
                lead_ids.append(row["id"])
        for client in clients:
            await client.wait_until(lambda c=client: len(c.named("notification:created")) >= LEADS)
            received = [event["relatedLeadId"] for event in client.named("notification:created")]
            assert received == lead_ids
    finally:
        for client in clients:
            await client.close()
        server.terminate()
    stats = re.search(r"action=socket_writes direct=(\d+) queued=(\d+)", server.log())
    assert stats is not None
    assert int(stats.group(1)) >= 3 * LEADS  # the websocket-only clients were written directly
    assert int(stats.group(2)) >= LEADS  # and the upgraded one went through the library


# --- per-socket order on every path, forced turn by turn ---------------------------------------
#
# An in-process server (uvicorn's websockets-sansio protocol, the app's SocketGateway) on the
# test's own event loop, so a test decides how many loop turns pass between two sends.


@dataclass
class InProcessServer:
    url: str
    gateway: SocketGateway
    clients: list[RecordingClient] = field(default_factory=list)

    @property
    def manager(self) -> FanoutManager:
        manager = self.gateway.sio.manager
        assert isinstance(manager, FanoutManager)
        return manager

    async def connect(self, transports: list[str] | None) -> RecordingClient:
        client = RecordingClient()
        self.clients.append(client)
        await client.connect(self.url, auth={"token": token()}, transports=transports)
        return client

    async def leave(self, client: RecordingClient) -> None:
        if not client.sio.connected:
            return
        socket = self.gateway.sio.eio.sockets.get(self.eio_sid(client))
        closing = asyncio.create_task(client.close())
        if socket is not None and not socket.upgraded:
            # engine.io keeps a long-polling client's last GET open after its CLOSE (a browser
            # aborts it); the client waits for it, so release it.
            async with asyncio.timeout(WAIT):
                while not socket.closed:  # noqa: ASYNC110 - engine.io has no event for this
                    await asyncio.sleep(0.01)
            socket.queue.put_nowait(None)
        await asyncio.wait_for(closing, WAIT)

    def eio_sid(self, client: RecordingClient) -> str:
        eio_sid: str = self.manager.eio_sid_from_sid(client.sio.get_sid("/"), "/")
        return eio_sid

    async def send_through_engineio(self, client: RecordingClient, event: str, data: Any) -> None:
        """The library's own path: the packet joins the socket's engine.io queue at once."""
        encoded = sio_packet.Packet(sio_packet.EVENT, namespace="/", data=[event, data]).encode()
        await self.gateway.sio.eio.send(self.eio_sid(client), encoded)

    def protocol(self, client: RecordingClient) -> WebSocketsSansIOProtocol:
        protocol = self.gateway.sio.environ[self.eio_sid(client)]["asgi.send"].__self__
        assert isinstance(protocol, WebSocketsSansIOProtocol)
        return protocol


@contextlib.asynccontextmanager
async def serving_in_process() -> AsyncIterator[InProcessServer]:
    """The app's SocketGateway on uvicorn (the protocol and options of `serve`), on this loop."""
    settings = load_settings({"APP_ENV": "production", "JWT_SECRET": SECRET})
    gateway = SocketGateway(settings)
    port = free_port()
    config = uvicorn.Config(
        socketio.ASGIApp(gateway.sio),
        host="127.0.0.1",
        port=port,
        ws="server.realtime.ws_protocol:LeanWebSocketsProtocol",  # as `serve` runs it
        ws_ping_interval=None,
        ws_per_message_deflate=False,
        lifespan="off",
        log_config=None,
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    running = InProcessServer(f"http://127.0.0.1:{port}", gateway)
    try:
        async with asyncio.timeout(WAIT):
            while not server.started:  # noqa: ASYNC110 - uvicorn has no event for this
                await asyncio.sleep(0.01)
        yield running
    finally:
        for client in running.clients:
            await running.leave(client)
        await gateway.close()
        server.should_exit = True
        await asyncio.wait_for(serving, WAIT)


@pytest.fixture
async def in_process() -> AsyncIterator[InProcessServer]:
    async with serving_in_process() as running:
        yield running


async def turns(count: int) -> None:
    """Let the event loop go round `count` times."""
    for _ in range(count):
        await asyncio.sleep(0)


async def quiet_websocket_client(server: InProcessServer) -> RecordingClient:
    """A WebSocket client whose socket's writer is waiting for packets (written to directly)."""
    client = await server.connect(["websocket"])
    written = server.manager.direct_writes
    await server.gateway.sio.emit("warm-up", None, to=ROOM)
    await client.next_event("warm-up")
    assert server.manager.direct_writes == written + 1
    return client


@pytest.mark.parametrize("turns_between", list(range(5)))
async def test_a_broadcast_never_overtakes_a_packet_the_socket_writer_has_taken_but_not_written(
    in_process: InProcessServer, turns_between: int
) -> None:
    client = await quiet_websocket_client(in_process)
    # The writer takes this one off its queue a turn or two before it writes it (Python 3.11:
    # asyncio.wait_for runs queue.get() as a task of its own) ...
    await in_process.send_through_engineio(client, NOTIFICATION_CREATED, {"id": "n1"})
    await turns(turns_between)
    # ... and a broadcast in that window must still come after it.
    await in_process.gateway.emit(NOTIFICATION_DELETED, {"id": "n1"})
    await client.wait_until(lambda: len(client.events) == 3)
    assert [name for name, _ in client.events] == [
        "warm-up",
        NOTIFICATION_CREATED,
        NOTIFICATION_DELETED,
    ]


def call_after_turns(count: int, callback: Callable[[], object]) -> None:
    """Run `callback` once the event loop has gone round `count` times."""
    if count == 0:
        callback()
    else:
        asyncio.get_running_loop().call_soon(call_after_turns, count - 1, callback)


@pytest.mark.parametrize("x", ["x", b"x"], ids=["text", "binary"])
async def test_broadcasts_from_two_tasks_reach_a_socket_in_the_order_they_were_emitted(
    in_process: InProcessServer, x: str | bytes
) -> None:
    client = await quiet_websocket_client(in_process)
    loop = asyncio.get_running_loop()
    # Two emitting tasks woken at every pair of turns (and both orders within a turn) while the
    # socket's writer is busy with a packet of the library path. A binary attachment always
    # takes python-socketio's own emit.
    emitted: list[str | bytes] = []

    async def emit_when(woken: asyncio.Future[None], data: str | bytes) -> None:
        await woken
        emitted.append(data)
        await in_process.gateway.sio.emit("n", data, to=ROOM)

    for x_turn, y_turn, x_scheduled_first in itertools.product(range(6), range(6), (True, False)):
        emitted.clear()
        x_woken, y_woken = loop.create_future(), loop.create_future()
        tasks = [
            asyncio.create_task(emit_when(x_woken, x)),
            asyncio.create_task(emit_when(y_woken, "y")),
        ]
        await turns(1)  # both wait for their future
        received = len(client.named("n"))
        await in_process.send_through_engineio(client, "n", "engine.io")
        wake_x = (x_turn, lambda f=x_woken: f.set_result(None))
        wake_y = (y_turn, lambda f=y_woken: f.set_result(None))
        for count, wake in (wake_x, wake_y) if x_scheduled_first else (wake_y, wake_x):
            call_after_turns(count, wake)
        await asyncio.wait_for(asyncio.gather(*tasks), WAIT)
        await client.wait_until(lambda n=received: len(client.named("n")) == n + 3)
        assert client.named("n")[received:] == ["engine.io", *emitted], (x_turn, y_turn)


async def test_a_socket_under_back_pressure_gets_broadcasts_through_its_queue_in_order(
    in_process: InProcessServer,
) -> None:
    client = await quiet_websocket_client(in_process)
    sio, manager = in_process.gateway.sio, in_process.manager
    protocol = in_process.protocol(client)
    protocol.pause_writing()  # what the transport calls when its buffer passes the high mark
    for n in range(5):
        await sio.emit("n", n, to=ROOM)
        await turns(n % 3)
    assert (manager.direct_writes, manager.queued_writes) == (1, 5)
    assert client.named("n") == []
    protocol.resume_writing()
    for n in range(5, 10):  # while the writer catches up, and once it has
        await sio.emit("n", n, to=ROOM)
        await turns(n % 3)
    await client.wait_until(lambda: len(client.named("n")) == 10)
    assert client.named("n") == list(range(10))
    # Caught up and waiting again: the next broadcast is written directly.
    written = manager.direct_writes
    await sio.emit("n", 10, to=ROOM)
    await client.wait_until(lambda: len(client.named("n")) == 11)
    assert client.named("n") == list(range(11))
    assert manager.direct_writes == written + 1


@pytest.mark.parametrize("transports", [["polling"], None], ids=["polling", "upgraded"])
async def test_long_polling_and_upgraded_sockets_get_broadcasts_through_the_library_in_order(
    in_process: InProcessServer, transports: list[str] | None
) -> None:
    client = await in_process.connect(transports)
    for n in range(30):
        await in_process.gateway.sio.emit("n", n, to=ROOM)
        await turns(n % 5)
    await client.wait_until(lambda: len(client.named("n")) == 30)
    assert client.named("n") == list(range(30))
    assert (in_process.manager.direct_writes, in_process.manager.queued_writes) == (0, 30)


async def test_the_events_of_one_batch_reach_a_socket_in_one_write_in_order(
    in_process: InProcessServer,
) -> None:
    client = await quiet_websocket_client(in_process)
    manager = in_process.manager
    writes, direct = manager.socket_writes, manager.direct_writes

    await in_process.gateway.emit_many(
        [(NOTIFICATION_DELETED, {"id": str(n)}) for n in range(3)]  # the listener's batch
    )

    await client.wait_until(lambda: len(client.named(NOTIFICATION_DELETED)) == 3)
    assert [event["id"] for event in client.named(NOTIFICATION_DELETED)] == ["0", "1", "2"]
    assert (manager.socket_writes, manager.direct_writes) == (writes + 1, direct + 3)


async def test_a_batch_to_a_socket_under_back_pressure_joins_its_queue_in_order(
    in_process: InProcessServer,
) -> None:
    client = await quiet_websocket_client(in_process)
    protocol = in_process.protocol(client)
    protocol.pause_writing()
    await in_process.gateway.emit_many([(NOTIFICATION_DELETED, {"id": str(n)}) for n in range(3)])
    protocol.resume_writing()
    await in_process.gateway.emit_many([(NOTIFICATION_DELETED, {"id": str(n)}) for n in (3, 4)])

    await client.wait_until(lambda: len(client.named(NOTIFICATION_DELETED)) == 5)
    assert [event["id"] for event in client.named(NOTIFICATION_DELETED)] == list("01234")


async def test_an_unread_count_rides_in_the_next_notifications_write(
    in_process: InProcessServer,
) -> None:
    client = await quiet_websocket_client(in_process)
    manager = in_process.manager
    writes, direct = manager.socket_writes, manager.direct_writes

    count = asyncio.create_task(
        in_process.gateway.emit_unhurried(NOTIFICATIONS_UNREAD_COUNT, {"count": 1})
    )
    await turns(3)  # the count waits in the pipeline for company ...
    assert manager.socket_writes == writes
    await in_process.gateway.emit_many([(NOTIFICATION_DELETED, {"id": "n1"})])  # ... and gets it
    await asyncio.wait_for(count, WAIT)

    await client.wait_until(lambda: len(client.events) == 3)
    assert [name for name, _ in client.events] == [
        "warm-up",
        NOTIFICATIONS_UNREAD_COUNT,
        NOTIFICATION_DELETED,
    ]
    assert (manager.socket_writes, manager.direct_writes) == (writes + 1, direct + 2)


async def test_an_unread_count_with_no_company_goes_out_alone_within_the_grace(
    in_process: InProcessServer,
) -> None:
    client = await quiet_websocket_client(in_process)
    started = asyncio.get_running_loop().time()
    await in_process.gateway.emit_unhurried(NOTIFICATIONS_UNREAD_COUNT, {"count": 2})
    waited = asyncio.get_running_loop().time() - started
    await client.wait_until(lambda: len(client.named(NOTIFICATIONS_UNREAD_COUNT)) == 1)
    assert client.named(NOTIFICATIONS_UNREAD_COUNT) == [{"count": 2}]
    assert COALESCE_SECONDS * 0.9 <= waited < WAIT


async def test_batches_that_wait_behind_a_fan_out_go_out_together_in_order(
    in_process: InProcessServer,
) -> None:
    client = await quiet_websocket_client(in_process)
    manager = in_process.manager
    writes = manager.socket_writes
    # The listener hands over three batches before the fan-out task has run: none waits for
    # the sockets (fewer than MAX_BATCHES_AHEAD are behind), and all three reach the socket in
    # one write, in order (a listener limited to one batch ahead made three writes).
    async with asyncio.timeout(WAIT):
        for n in range(3):
            await in_process.gateway.emit_many([(NOTIFICATION_DELETED, {"id": f"n{n}"})])
    await client.wait_until(lambda: len(client.named(NOTIFICATION_DELETED)) == 3)
    assert [event["id"] for event in client.named(NOTIFICATION_DELETED)] == ["n0", "n1", "n2"]
    assert manager.socket_writes == writes + 1
