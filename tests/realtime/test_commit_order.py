"""Through a real server: events in commit order carry cursors that stand for exactly what came
before them, and TRUNCATE (which has no rows to announce) tells every client to refetch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import DictRow, dict_row

from tests.realtime.harness import RecordingClient, ServerProcess, insert_lead, token

NewClient = Callable[[], RecordingClient]
CATCH_UP = """query($after: String, $limit: Int) {
  getNotifications(after: $after, limit: $limit) { message cursor }
}"""


async def connected(new_client: NewClient, server: ServerProcess) -> RecordingClient:
    client = new_client()
    await client.connect(server.url, auth={"token": token()})
    await client.next_event("notifications:unread-count")
    return client


async def catch_up(server: ServerProcess, cursor: str, limit: int) -> list[str]:
    """The contract's loop; the first word of each message (the lead's first name)."""
    found: list[str] = []
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as http:
        while True:
            answer = await http.post(
                "/graphql",
                json={"query": CATCH_UP, "variables": {"after": cursor, "limit": limit}},
                headers={"Authorization": f"Bearer {token()}"},
            )
            rows: list[dict[str, Any]] = answer.json()["data"]["getNotifications"]
            found += [row["message"].split()[0] for row in rows]
            if len(rows) < limit:
                return found
            cursor = rows[0]["cursor"]


def created(client: RecordingClient) -> list[str]:
    return [event["message"].split()[0] for event in client.named("notification:created")]


async def test_catch_up_from_an_events_cursor_returns_what_committed_after_it(
    server: ServerProcess,
    new_client: NewClient,
    committed_db: psycopg.Connection[DictRow],
    database_url: str,
) -> None:
    """R inserts first, Q inserts and commits, then R commits: events Q then R; a client that
    lost its connection after Q's event catches up from Q's cursor and must get R."""
    client = await connected(new_client, server)
    with (
        psycopg.connect(database_url, row_factory=dict_row) as r,
        psycopg.connect(database_url, row_factory=dict_row) as q,
    ):
        insert_lead(r, "R")
        insert_lead(q, "Q")
        q.commit()
        await client.wait_until(lambda: created(client) == ["Q"])
        r.commit()
    await client.wait_until(lambda: created(client) == ["Q", "R"])
    q_event, r_event = client.named("notification:created")
    for limit in (1, 2, 50):
        assert await catch_up(server, q_event["cursor"], limit) == ["R"]
        assert await catch_up(server, r_event["cursor"], limit) == []


@pytest.mark.parametrize(
    "statement",
    ["TRUNCATE notifications", "TRUNCATE leads CASCADE", "TRUNCATE leads, tasks CASCADE"],
)
async def test_truncate_tells_every_client_to_refetch_and_pushes_a_zero_count(
    server: ServerProcess,
    new_client: NewClient,
    committed_db: psycopg.Connection[DictRow],
    statement: str,
) -> None:
    insert_lead(committed_db, "Before")
    client = await connected(new_client, server)
    await client.next_event("notifications:unread-count", lambda data: data["count"] == 1)
    committed_db.execute(statement)
    await client.next_event("notifications:resync")
    await client.wait_until(lambda: last_count(client) == 0)
    # A later write is counted from zero and delivered as usual.
    insert_lead(committed_db, "After")
    # "Before"'s own event may reach this client too, if it connected before the broadcast.
    await client.next_event(
        "notification:created", lambda data: data["message"].startswith("After")
    )
    await client.wait_until(lambda: last_count(client) == 1)


def last_count(client: RecordingClient) -> int:
    count: int = client.named("notifications:unread-count")[-1]["count"]
    return count
