"""Every writer reaches every client: plain SQL here, with no API call, through a real server."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg.rows import DictRow

from server.cursors import decode_cursor
from tests.realtime.harness import (
    PROJECT_ROOT,
    SECRET,
    WAIT,
    RecordingClient,
    ServerProcess,
    insert_lead,
    token,
)

NewClient = Callable[[], RecordingClient]
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
PAYLOAD_KEYS = {
    "id",
    "type",
    "title",
    "message",
    "isRead",
    "relatedLeadId",
    "createdAt",
    "updatedAt",
    "cursor",
}


def notification_of(conn: psycopg.Connection[DictRow], lead_id: int) -> dict[str, Any]:
    row = conn.execute(
        'SELECT * FROM notifications WHERE "relatedLeadId" = %s', (lead_id,)
    ).fetchone()
    assert row is not None
    return row


def unread(conn: psycopg.Connection[DictRow]) -> int:
    row = conn.execute('SELECT count(*) AS n FROM notifications WHERE NOT "isRead"').fetchone()
    assert row is not None
    return int(row["n"])


async def connected(new_client: NewClient, server: ServerProcess) -> RecordingClient:
    client = new_client()
    await client.connect(server.url, auth={"token": token()})
    # The count sent on connect: from here on, every event is caused by this test.
    await client.next_event("notifications:unread-count")
    return client


async def test_a_plain_sql_lead_insert_reaches_every_socket_as_notification_created(
    server: ServerProcess, new_client: NewClient, committed_db: psycopg.Connection[DictRow]
) -> None:
    first, second = await connected(new_client, server), await connected(new_client, server)
    lead_id = insert_lead(committed_db)
    row = notification_of(committed_db, lead_id)
    for client in (first, second):
        event = await client.next_event("notification:created")
        assert set(event) == PAYLOAD_KEYS
        assert event["id"] == str(row["id"])
        assert event["type"] == "lead_created"
        assert event["title"] == "New Lead Created"
        assert event["message"] == "Ada Lovelace added to pipeline"
        assert event["isRead"] is False
        assert event["relatedLeadId"] == lead_id
        assert ISO_UTC.match(event["createdAt"])
        assert ISO_UTC.match(event["updatedAt"])
        cursor = decode_cursor(event["cursor"], SECRET)  # signed as GraphQL signs its cursors
        assert cursor.id == row["id"]
        assert cursor.created_at == row["createdAt"]
    assert first.named("notification:created") == second.named("notification:created")


async def test_a_plain_sql_update_of_one_row_reaches_clients_as_notification_updated(
    server: ServerProcess, new_client: NewClient, committed_db: psycopg.Connection[DictRow]
) -> None:
    row = notification_of(committed_db, insert_lead(committed_db))
    client = await connected(new_client, server)
    committed_db.execute('UPDATE notifications SET "isRead" = true WHERE id = %s', (row["id"],))
    event = await client.next_event("notification:updated")
    assert event["id"] == str(row["id"])
    assert event["isRead"] is True
    assert set(event) == PAYLOAD_KEYS
    # One statement, one event (the insert's own event may still arrive: it raced the connect).
    assert client.named("notification:updated") == [event]
    assert client.named("notifications:bulk-updated") == []


async def test_a_plain_sql_delete_of_one_row_reaches_clients_as_notification_deleted(
    server: ServerProcess, new_client: NewClient, committed_db: psycopg.Connection[DictRow]
) -> None:
    row = notification_of(committed_db, insert_lead(committed_db))
    client = await connected(new_client, server)
    committed_db.execute("DELETE FROM notifications WHERE id = %s", (row["id"],))
    assert await client.next_event("notification:deleted") == {"id": str(row["id"])}


async def test_an_insert_select_of_many_leads_sends_one_bulk_create_and_no_row_events(
    server: ServerProcess, new_client: NewClient, committed_db: psycopg.Connection[DictRow]
) -> None:
    client = await connected(new_client, server)
    committed_db.execute(
        'INSERT INTO leads ("firstName", "lastName") '
        "SELECT 'Lead', 'Number ' || n FROM generate_series(1, 250) AS n"
    )
    assert await client.next_event("notifications:bulk-updated") == {
        "action": "bulk-create",
        "count": 250,
    }
    await client.next_event("notifications:unread-count", lambda data: data["count"] == 250)
    assert client.named("notification:created") == []
    assert len(client.named("notifications:bulk-updated")) == 1


async def test_marking_every_unread_row_read_in_one_statement_sends_mark_all_read(
    server: ServerProcess, new_client: NewClient, committed_db: psycopg.Connection[DictRow]
) -> None:
    for n in range(3):
        insert_lead(committed_db, "Lead", str(n))
    client = await connected(new_client, server)
    committed_db.execute('UPDATE notifications SET "isRead" = true WHERE NOT "isRead"')
    assert await client.next_event("notifications:bulk-updated") == {
        "action": "mark-all-read",
        "count": 3,
    }
    await client.next_event("notifications:unread-count", lambda data: data["count"] == 0)
    assert client.named("notification:updated") == []


async def test_one_writers_commits_reach_clients_in_commit_order(
    server: ServerProcess, new_client: NewClient, committed_db: psycopg.Connection[DictRow]
) -> None:
    client = await connected(new_client, server)
    lead_id = insert_lead(committed_db)
    row_id = str(notification_of(committed_db, lead_id)["id"])
    committed_db.execute('UPDATE notifications SET "isRead" = true WHERE id = %s', (row_id,))
    committed_db.execute("UPDATE leads SET score = 42 WHERE id = %s", (lead_id,))
    committed_db.execute('UPDATE notifications SET "isRead" = false WHERE id = %s', (row_id,))

    def row_events() -> list[tuple[str, str]]:
        return [
            (name, data["id"]) for name, data in client.events if name.startswith("notification:")
        ]

    await client.wait_until(lambda: len(row_events()) >= 4)
    (created, first_id), (updated, second_id), (score, _), (unread_again, third_id) = row_events()
    assert (created, updated, score, unread_again) == (
        "notification:created",
        "notification:updated",
        "notification:created",
        "notification:updated",
    )
    assert first_id == second_id == third_id == row_id


async def test_the_unread_count_follows_changes_and_equals_the_table(
    server: ServerProcess, new_client: NewClient, committed_db: psycopg.Connection[DictRow]
) -> None:
    client = await connected(new_client, server)
    for n in range(5):
        insert_lead(committed_db, "Lead", str(n))
    await client.next_event("notifications:unread-count", lambda data: data["count"] == 5)
    committed_db.execute(
        'UPDATE notifications SET "isRead" = true WHERE id = '
        '(SELECT id FROM notifications ORDER BY "createdAt" LIMIT 1)'
    )
    await client.next_event("notifications:unread-count", lambda data: data["count"] == 4)
    assert client.named("notifications:unread-count")[-1] == {"count": unread(committed_db)}
    # Coalesced: five announcements in a burst cost far fewer than five counts.
    assert len(client.named("notifications:unread-count")) <= 4


class NodeClient:
    """tests/realtime/js/client.js: the official socket.io-client, printing JSON lines."""

    SCRIPT = PROJECT_ROOT / "tests" / "realtime" / "js" / "client.js"

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[dict[str, Any]] = []

    @classmethod
    async def start(cls, url: str, bearer: str, mode: str = "auth") -> NodeClient:
        process = await asyncio.create_subprocess_exec(
            "node",
            str(cls.SCRIPT),
            url,
            bearer,
            mode,
            "30",
            cwd=PROJECT_ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(process)

    async def next_line(self, event: str) -> dict[str, Any]:
        """Lines up to and including the first for `event`; an early end of output fails."""
        assert self.process.stdout is not None
        async with asyncio.timeout(WAIT):
            while True:
                raw = await self.process.stdout.readline()
                assert raw, f"client ended before {event}; got {self.lines}"
                line = json.loads(raw)
                self.lines.append(line)
                if line["event"] == event:
                    return line

    async def stop(self) -> int:
        if self.process.stdin is not None and not self.process.stdin.is_closing():
            self.process.stdin.close()
        try:
            async with asyncio.timeout(WAIT):
                return await self.process.wait()
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            raise


@pytest.mark.parametrize("mode", ["auth", "header"])
async def test_the_official_javascript_client_receives_events_with_either_way_of_sending_the_token(
    server: ServerProcess, committed_db: psycopg.Connection[DictRow], mode: str
) -> None:
    client = await NodeClient.start(server.url, token(), mode)
    try:
        await client.next_line("connect")
        await client.next_line("notifications:unread-count")
        lead_id = insert_lead(committed_db, "Node", "Client")
        created = await client.next_line("notification:created")
        assert created["data"]["relatedLeadId"] == lead_id
        assert created["data"]["message"] == "Node Client added to pipeline"
        assert set(created["data"]) == PAYLOAD_KEYS
    finally:
        assert await client.stop() == 0


async def test_the_official_javascript_client_is_refused_with_a_bad_token_and_gets_nothing(
    server: ServerProcess,
) -> None:
    client = await NodeClient.start(server.url, "not-a-jwt")
    line = await client.next_line("connect_error")
    assert line["message"] == "unauthorized"
    assert await client.stop() == 1
    assert [line["event"] for line in client.lines] == ["connect_error"]
