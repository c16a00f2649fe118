from __future__ import annotations

import re
from uuid import uuid4

import psycopg
import pytest
from psycopg.rows import DictRow, dict_row

from server.cursors import StreamCursor, decode_cursor
from server.serialization import iso8601, notification_payload
from server.store.notifications import notifications_by_ids

AsyncConn = psycopg.AsyncConnection[DictRow]


@pytest.fixture
async def conn(database_url: str):
    """An async connection in a transaction that is rolled back afterwards."""
    async with await psycopg.AsyncConnection.connect(database_url, row_factory=dict_row) as c:
        await c.execute("SET TIME ZONE 'UTC'")
        try:
            yield c
        finally:
            await c.rollback()


async def test_notifications_by_ids_returns_contract_fields_and_the_commit_position(
    conn: AsyncConn,
) -> None:
    await conn.execute(
        """INSERT INTO leads ("firstName", "lastName") VALUES ('John', 'Doe'), ('Ann', 'Lee')"""
    )
    cur = await conn.execute("SELECT id FROM notifications")
    ids = [row["id"] for row in await cur.fetchall()]

    rows = await notifications_by_ids(conn, ids=[*ids, uuid4()])

    assert {row["id"] for row in rows} == set(ids)
    assert set(rows[0]) == {
        "id", "type", "title", "message", "isRead", "relatedLeadId",
        "createdAt", "updatedAt", "commitSeq", "insertSeq",
    }  # fmt: skip
    # Not committed yet, so no commit position: 0, which a cursor reads as "from the start".
    assert [row["commitSeq"] for row in rows] == [0, 0]
    assert len({row["insertSeq"] for row in rows}) == 2
    assert await notifications_by_ids(conn, ids=[]) == []


async def test_notification_payload_is_the_socket_shape_with_a_cursor_for_after(
    conn: AsyncConn,
) -> None:
    await conn.execute("""INSERT INTO leads ("firstName", "lastName") VALUES ('John', 'Doe')""")
    cur = await conn.execute('SELECT id, "relatedLeadId" FROM notifications')
    (only,) = await cur.fetchall()
    (row,) = await notifications_by_ids(conn, ids=[only["id"]])

    payload = notification_payload(row, cursor_secret="s3cret")

    assert payload == {
        "id": str(only["id"]),
        "type": "lead_created",
        "title": "New Lead Created",
        "message": "John Doe added to pipeline",
        "isRead": False,
        "relatedLeadId": only["relatedLeadId"],
        "createdAt": iso8601(row["createdAt"]),
        "updatedAt": iso8601(row["updatedAt"]),
        "cursor": payload["cursor"],
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", payload["createdAt"])
    cursor = decode_cursor(payload["cursor"], "s3cret")
    assert cursor == StreamCursor(row["createdAt"], row["id"], row["commitSeq"], row["insertSeq"])
