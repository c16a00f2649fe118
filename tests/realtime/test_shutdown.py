"""SIGTERM: the server stops accepting, drains, closes its sockets so that clients reconnect
elsewhere, closes its LISTEN connection, and exits. (With other processes and a writer:
tests/deploy/test_rolling_deploy.py.)"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import DictRow

from tests.realtime.harness import RecordingClient, start_server, token


class ReasonRecordingClient(RecordingClient):
    """Also keeps why each connection ended."""

    def __init__(self) -> None:
        super().__init__()
        self.reasons: list[Any] = []

    async def _on_disconnect(self, reason: Any = None) -> None:
        self.reasons.append(reason)
        await super()._on_disconnect(reason)


LISTENERS = (
    "SELECT count(*) AS n FROM pg_stat_activity "
    "WHERE application_name = 'crm-listener' AND datname = current_database()"
)


async def test_sigterm_closes_sockets_and_the_listen_connection_and_exits_within_seconds(
    database_url: str, tmp_path: Path, committed_db: psycopg.Connection[DictRow]
) -> None:
    server = start_server(database_url, tmp_path)
    clients = [ReasonRecordingClient(), ReasonRecordingClient()]
    try:
        await clients[0].connect(server.url, auth={"token": token()})
        await clients[1].connect(server.url, auth={"token": token()}, headers={})
        for client in clients:
            await client.next_event("notifications:unread-count")
        row = committed_db.execute(LISTENERS).fetchone()
        assert row is not None
        assert row["n"] == 1

        started = time.monotonic()
        code = await asyncio.to_thread(server.terminate, 10.0)
        elapsed = time.monotonic() - started
        # uvicorn re-raises the signal once it has shut down cleanly.
        assert code in (0, -signal.SIGTERM), server.log()
        assert elapsed < 10.0
        for client in clients:
            await client.wait_until(lambda c=client: c.disconnects == 1)
            # The connection closed under it: Socket.IO's clients reconnect after that (they
            # would stay away after a Socket.IO DISCONNECT, "io server disconnect").
            assert client.reasons == [client.sio.reason.TRANSPORT_ERROR]
        row = committed_db.execute(LISTENERS).fetchone()
        assert row is not None
        assert row["n"] == 0
        log = server.log()
        assert "action=listener_stopped" in log
        assert "action=drained sockets=2 unflushed=0" in log
        assert "Application shutdown complete" in log
    finally:
        for client in clients:
            await client.close()
        if server.process.poll() is None:
            server.process.kill()
            pytest.fail("server still running")


async def test_sigterm_answers_a_waiting_long_poll_at_once_so_its_client_reconnects(
    database_url: str, tmp_path: Path, committed_db: psycopg.Connection[DictRow]
) -> None:
    """Without the release, uvicorn waits its graceful timeout (5 s) for the poll, then cancels
    it into a 400 that a browser logs; a client then sees its next poll refused instead."""
    server = start_server(database_url, tmp_path)
    client = ReasonRecordingClient()
    try:
        await client.connect(server.url, auth={"token": token()}, transports=["polling"])
        await client.next_event("notifications:unread-count")
        assert client.sio.transport() == "polling"

        code = await asyncio.to_thread(server.terminate, 10.0)
        assert code in (0, -signal.SIGTERM), server.log()
        await client.wait_until(lambda: client.disconnects == 1)
        assert client.reasons == [client.sio.reason.TRANSPORT_ERROR]
        log = server.log()
        assert "action=long_polls_released sockets=1" in log
        assert "timeout graceful shutdown exceeded" not in log
        assert not [line for line in log.splitlines() if "/socket.io/" in line and '" 400' in line]
    finally:
        await client.close()
        if server.process.poll() is None:
            server.process.kill()
            pytest.fail("server still running")
