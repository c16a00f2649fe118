"""Two server processes on two ports, one database: every client gets every event."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import psycopg
from psycopg.rows import DictRow

from tests.realtime.harness import WAIT, RecordingClient, ServerProcess, token

NewClient = Callable[[], RecordingClient]


async def test_a_client_on_each_process_gets_every_event_whichever_process_or_writer_caused_it(
    server: ServerProcess,
    second_server: ServerProcess,
    new_client: NewClient,
    committed_db: psycopg.Connection[DictRow],
) -> None:
    assert server.port != second_server.port
    clients = []
    for process in (server, second_server):
        client = new_client()
        await client.connect(process.url, auth={"token": token()})
        await client.next_event("notifications:unread-count")
        clients.append(client)

    # A plain SQL writer, then a GraphQL write through each process in turn.
    committed_db.execute("""INSERT INTO leads ("firstName", "lastName") VALUES ('Via', 'SQL')""")
    async with httpx.AsyncClient(timeout=WAIT) as http:
        for process in (server, second_server):
            response = await http.post(
                f"{process.url}/graphql",
                json={
                    "query": "mutation($i: CreateLeadInput!) { createLead(input: $i) { id } }",
                    "variables": {"i": {"firstName": "Via", "lastName": f"port {process.port}"}},
                },
                headers={"Authorization": f"Bearer {token()}"},
            )
            assert response.json().get("errors") is None, response.json()

    expected = {"Via SQL", f"Via port {server.port}", f"Via port {second_server.port}"}
    for client in clients:
        await client.wait_until(lambda c=client: len(c.named("notification:created")) == 3)
        messages = {
            event["message"].removesuffix(" added to pipeline")
            for event in client.named("notification:created")
        }
        assert messages == expected
    await clients[0].next_event("notifications:unread-count", lambda data: data["count"] == 3)
    await clients[1].next_event("notifications:unread-count", lambda data: data["count"] == 3)
