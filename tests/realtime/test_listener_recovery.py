"""A real server whose LISTEN connection is killed while writes go on."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
from psycopg.rows import DictRow

from tests.conftest import PostgresServer
from tests.realtime.harness import (
    LISTENER,
    RecordingClient,
    ServerProcess,
    allow_connections,
    eventually,
    token,
)

NewClient = Callable[[], RecordingClient]


def listener_pids(conn: psycopg.Connection[DictRow]) -> list[int]:
    return [row["pid"] for row in conn.execute(LISTENER).fetchall()]


async def test_a_killed_listener_reconnects_and_every_client_resyncs_not_ready_meanwhile(
    server: ServerProcess,
    new_client: NewClient,
    committed_db: psycopg.Connection[DictRow],
    postgres_server: PostgresServer,
) -> None:
    database = committed_db.info.dbname
    clients = []
    for _ in range(2):
        client = new_client()
        await client.connect(server.url, auth={"token": token()})
        await client.next_event("notifications:unread-count")
        clients.append(client)
    (old_pid,) = listener_pids(committed_db)
    assert server.readyz() == 200

    # Refuse new connections, so the listener stays down long enough to be seen down.
    allow_connections(postgres_server, database, False)
    try:
        committed_db.execute("SELECT pg_terminate_backend(%s)", (old_pid,))
        await eventually(lambda: server.readyz() == 503)
        # Writes go on while nobody listens: their announcements are lost, the resync covers them.
        for n in range(3):
            committed_db.execute(
                """INSERT INTO leads ("firstName", "lastName") VALUES ('While', %s)""", (str(n),)
            )
        # It keeps trying, and failing, while the database refuses it; still not ready.
        await eventually(lambda: "action=listener_reconnect_failed" in server.log())
        assert server.readyz() == 503
    finally:
        allow_connections(postgres_server, database, True)

    for client in clients:
        assert await client.next_event("notifications:resync", within=15.0) == {}
    await eventually(lambda: server.readyz() == 200)
    (new_pid,) = listener_pids(committed_db)
    assert new_pid != old_pid
    assert server.process.poll() is None  # neither crashed nor hung

    # And it listens again.
    committed_db.execute("""INSERT INTO leads ("firstName", "lastName") VALUES ('After', 'It')""")
    for client in clients:
        event = await client.next_event(
            "notification:created", lambda data: data["message"].startswith("After It")
        )
        assert event["type"] == "lead_created"
    log = server.log()
    assert "action=listener_connection_lost" in log
    assert "action=listener_reconnect_failed" in log
    assert "action=listener_reconnected" in log
