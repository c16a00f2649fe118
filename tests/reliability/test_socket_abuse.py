"""Socket.IO under abuse: bad handshakes in bulk, unknown and oversized messages, a client that
stops reading. Raw WebSocket clients (the `websockets` library) speak engine.io by hand, so they
can misbehave in ways a real Socket.IO client never would."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest
import socketio
from psycopg.rows import DictRow
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from server.realtime.sio import SOCKET_MAX_MESSAGE_BYTES
from tests.realtime.harness import ServerProcess, close_client, eventually, token

BOUND = 5.0  # seconds: what a good client may wait, whatever the others do


def ws_url(server: ServerProcess) -> str:
    return f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket"


async def raw_handshake(
    server: ServerProcess, auth_token: str, **options: Any
) -> tuple[ClientConnection, str]:
    """Open an engine.io WebSocket and send the Socket.IO CONNECT with `auth_token`; the
    connection and the server's answer ("40{...}" accepted, "44{...}" refused)."""
    ws = await connect(ws_url(server), open_timeout=BOUND, ping_interval=None, **options)
    opening = await asyncio.wait_for(ws.recv(), BOUND)
    assert str(opening).startswith("0{"), opening
    await ws.send("40" + json.dumps({"token": auth_token}))
    answer = str(await asyncio.wait_for(ws.recv(), BOUND))
    return ws, answer


class TimedClient:
    """A real Socket.IO client that notes when each notification:created arrives."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.arrivals: dict[str, float] = {}
        self.sio.on("notification:created", self._created)

    async def _created(self, data: dict[str, Any]) -> None:
        self.arrivals[data["message"]] = time.monotonic()

    async def connect(self, server: ServerProcess) -> float:
        started = time.monotonic()
        await self.sio.connect(
            server.url, auth={"token": token()}, transports=["websocket"], wait_timeout=BOUND
        )
        return time.monotonic() - started

    async def wait_for(self, messages: set[str], within: float = BOUND) -> None:
        async with asyncio.timeout(within):
            while not messages <= self.arrivals.keys():  # noqa: ASYNC110 - test polling
                await asyncio.sleep(0.01)


@pytest.fixture
async def timed_clients() -> AsyncIterator[list[TimedClient]]:
    made = [TimedClient() for _ in range(2)]
    try:
        yield made
    finally:
        for client in made:
            await close_client(client.sio)


async def until_closed(ws: ClientConnection) -> None:
    """Read (events may still arrive before the close) until the server closes, within BOUND."""
    async with asyncio.timeout(BOUND):
        while True:
            await ws.recv()


async def healthz(server: ServerProcess) -> int:
    async with httpx.AsyncClient(timeout=BOUND) as client:
        return (await client.get(f"{server.url}/healthz")).status_code


def insert_lead(conn: psycopg.Connection[DictRow], first: str) -> str:
    conn.execute("""INSERT INTO leads ("firstName", "lastName") VALUES (%s, 'L')""", (first,))
    return f"{first} L added to pipeline"


async def test_a_flood_of_bad_handshakes_does_not_keep_a_good_client_out_or_waiting(
    server: ServerProcess,
    committed: psycopg.Connection[DictRow],
    timed_clients: list[TimedClient],
) -> None:
    refused: list[str] = []

    async def bad_client(rounds: int) -> None:
        for _ in range(rounds):
            ws, answer = await raw_handshake(server, "not-a-token")
            refused.append(answer)
            await ws.close()

    # 300 bad handshakes, 30 at a time: below SOCKETIO_MAX_CONNECTIONS_PER_ADDRESS (50) with
    # the good client, since every client here comes from 127.0.0.1.
    flood = [asyncio.create_task(bad_client(10)) for _ in range(30)]
    try:
        await asyncio.sleep(0.2)  # the flood is under way
        good = timed_clients[0]
        connect_seconds = await good.connect(server)
        started = time.monotonic()
        message = insert_lead(committed, "DuringFlood")
        await good.wait_for({message})
        event_seconds = good.arrivals[message] - started
    finally:
        async with asyncio.timeout(60):
            await asyncio.gather(*flood)

    assert connect_seconds < BOUND
    assert event_seconds < BOUND
    assert len(refused) == 300
    assert all(answer.startswith("44") and "unauthorized" in answer for answer in refused)


async def test_unknown_events_are_ignored_and_the_socket_stays_usable(
    server: ServerProcess,
    committed: psycopg.Connection[DictRow],
    timed_clients: list[TimedClient],
) -> None:
    client = timed_clients[0]
    await client.connect(server)

    for event in ("unknown", "markAsRead", "message", "connect", "disconnect"):
        await client.sio.emit(event, {"id": "x", "junk": [1, 2, 3]})
    message = insert_lead(committed, "AfterJunk")

    await client.wait_for({message})
    assert client.sio.connected


async def test_a_message_over_the_limit_cuts_that_socket_and_no_other(
    server: ServerProcess,
    committed: psycopg.Connection[DictRow],
    timed_clients: list[TimedClient],
) -> None:
    bystander = timed_clients[0]
    await bystander.connect(server)
    ws, answer = await raw_handshake(server, token())
    assert answer.startswith("40"), answer

    await ws.send('42["x","' + "a" * (SOCKET_MAX_MESSAGE_BYTES + 1) + '"]')

    with pytest.raises(ConnectionClosed):
        await until_closed(ws)
    message = insert_lead(committed, "AfterOversize")
    await bystander.wait_for({message})
    assert await healthz(server) == 200


async def test_a_frame_over_the_websocket_limit_is_refused_before_it_is_buffered(
    server: ServerProcess,
) -> None:
    ws, answer = await raw_handshake(server, token(), max_size=None)
    assert answer.startswith("40"), answer

    # 1 MiB: uvicorn closes with 1009 (message too big) at its frame limit, long before
    # engine.io would see, let alone buffer, the whole message.
    await ws.send('42["x","' + "a" * (1024 * 1024) + '"]')

    with pytest.raises(ConnectionClosed) as closed:
        await until_closed(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009
    assert await healthz(server) == 200


@contextlib.asynccontextmanager
async def stalled_socket(server: ServerProcess) -> AsyncIterator[ClientConnection]:
    """An authenticated socket with a tiny receive buffer that is never read again: once the
    kernel's buffers and uvicorn's write buffer fill, every frame for it has to wait somewhere."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    ws = await connect(
        ws_url(server), sock=sock, open_timeout=BOUND, ping_interval=None, max_queue=1
    )
    try:
        assert str(await asyncio.wait_for(ws.recv(), BOUND)).startswith("0{")
        await ws.send("40" + json.dumps({"token": token()}))
        assert str(await asyncio.wait_for(ws.recv(), BOUND)).startswith("40")
        yield ws
    finally:
        await ws.close()


async def test_a_client_that_stops_reading_does_not_delay_the_others(
    server: ServerProcess,
    committed: psycopg.Connection[DictRow],
    timed_clients: list[TimedClient],
) -> None:
    async with stalled_socket(server):
        for client in timed_clients:
            await client.connect(server)

        # ~4 KiB per event, 300 events: about 1.2 MB that the stalled socket never takes.
        # Written from a thread, so this loop records arrivals while the writes go on.
        padding = "p" * 4000
        sent: dict[str, float] = {}

        def write() -> None:
            for index in range(300):
                started = time.monotonic()
                sent[insert_lead(committed, f"Slow{index}{padding}")] = started
                time.sleep(0.002)

        await asyncio.to_thread(write)
        for client in timed_clients:
            await client.wait_for(set(sent), within=30.0)

        delays = sorted(
            client.arrivals[message] - sent_at
            for client in timed_clients
            for message, sent_at in sent.items()
        )
        worst = delays[-1]
        p99 = delays[int(0.99 * (len(delays) - 1))]
        assert p99 < 1.0, (p99, worst)
        assert worst < 2.0, (p99, worst)
        assert await healthz(server) == 200


async def test_a_client_that_never_reads_is_cut_once_its_backlog_is_full_and_others_get_everything(
    server: ServerProcess,
    committed: psycopg.Connection[DictRow],
    timed_clients: list[TimedClient],
) -> None:
    async with stalled_socket(server):
        bystander = timed_clients[0]
        await bystander.connect(server)

        # 3,000 one-row statements of ~4 KiB events in one transaction: about 12 MB that the
        # stalled socket never takes, past the kernel's buffers and MAX_BACKLOG_PACKETS queued.
        count = 3000
        await asyncio.to_thread(
            committed.execute,
            f"""DO $$ BEGIN FOR i IN 1..{count} LOOP
                  INSERT INTO leads ("firstName", "lastName")
                  VALUES ('Stalled' || i || repeat('p', 4000), 'L');
                END LOOP; END $$""",
        )
        expected = {f"Stalled{i}{'p' * 4000} L added to pipeline" for i in range(1, count + 1)}
        await bystander.wait_for(expected, within=60.0)
        await eventually(lambda: "action=socket_cut_stalled" in server.log(), within=BOUND)
        assert await healthz(server) == 200
