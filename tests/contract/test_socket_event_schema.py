"""The Socket.IO JSON Schema matches the server's own payload code, and rejects what is wrong."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, get_args, get_type_hints

import psycopg
import pytest
from graphql import build_schema
from jsonschema import Draft202012Validator, FormatChecker
from psycopg.rows import DictRow
from psycopg_pool import AsyncConnectionPool

from server.db import Connection, create_pool
from server.graphql import SCHEMA_PATH
from server.realtime.broadcaster import Broadcaster, UnreadCounter
from server.realtime.events import (
    BulkAction,
    BulkAnnouncement,
    EventName,
    Payload,
    Resync,
    RowAnnouncement,
)
from server.serialization import NotificationPayload, notification_payload
from server.store.notifications import notifications_by_ids, unread_count
from tests.contract.conftest import assert_valid, events_schema, validator_for
from tests.realtime.harness import RecordingClient, start_server, token

CURSOR_SECRET = "contract-tests-secret-that-is-long-enough-for-hs256"
Emitted = list[tuple[str, Any]]


def test_the_schema_is_valid_draft_2020_12() -> None:
    schema = events_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_the_schema_names_exactly_the_events_the_server_sends() -> None:
    schema = events_schema()
    assert set(schema["properties"]) == set(get_args(EventName))
    assert set(schema["required"]) == set(get_args(EventName))


def test_enums_match_the_server_and_the_graphql_schema() -> None:
    defs = events_schema()["$defs"]
    assert set(defs["BulkAction"]["enum"]) == set(get_args(BulkAction))
    sdl = build_schema(SCHEMA_PATH.read_text())
    notification_type = sdl.get_type("NotificationType")
    assert notification_type is not None
    assert set(defs["NotificationType"]["enum"]) == set(notification_type.values)


def test_the_notification_payload_is_graphqls_notification_less_related_lead() -> None:
    definition = events_schema()["$defs"]["NotificationPayload"]
    sdl = build_schema(SCHEMA_PATH.read_text())
    graphql_fields = set(sdl.get_type("Notification").fields) - {"relatedLead"}
    typed_dict_keys = set(get_type_hints(NotificationPayload))
    assert set(definition["properties"]) == graphql_fields == typed_dict_keys
    assert set(definition["required"]) == typed_dict_keys


def every_kind_of_notification(conn: psycopg.Connection[DictRow]) -> list[uuid.UUID]:
    """One of each trigger's notifications by plain SQL, one with no lead left; their ids."""
    lead = conn.execute(
        """INSERT INTO leads ("firstName", "lastName", company) VALUES ('Ada', 'Lovelace', 'AE')
           RETURNING id"""
    ).fetchone()
    assert lead is not None
    gone = conn.execute(
        """INSERT INTO leads ("firstName", "lastName") VALUES ('Grace', 'Hopper') RETURNING id"""
    ).fetchone()
    assert gone is not None
    conn.execute("UPDATE leads SET score = 42 WHERE id = %s", (lead["id"],))
    conn.execute(
        """INSERT INTO tasks ("leadId", title, "completedAt") VALUES (%s, 'Call', now())""",
        (lead["id"],),
    )
    conn.execute("INSERT INTO comments (\"leadId\", body) VALUES (%s, 'Hello')", (lead["id"],))
    conn.execute("DELETE FROM leads WHERE id = %s", (gone["id"],))  # relatedLeadId -> null
    rows = conn.execute('SELECT id FROM notifications ORDER BY "createdAt", id').fetchall()
    return [row["id"] for row in rows]


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool[Connection]]:
    pool = create_pool(database_url)
    await pool.open(wait=True, timeout=10.0)
    try:
        yield pool
    finally:
        await pool.close()


async def test_notification_payload_of_every_kind_of_real_row_validates(
    committed_db: psycopg.Connection[DictRow], pool: AsyncConnectionPool[Connection]
) -> None:
    ids = every_kind_of_notification(committed_db)
    async with pool.connection() as conn:
        rows = await notifications_by_ids(conn, ids=ids)
    assert {row["type"] for row in rows} == {
        "lead_created",
        "score_updated",
        "task_completed",
        "comment_added",
    }
    assert any(row["relatedLeadId"] is None for row in rows)
    for row in rows:
        payload = notification_payload(row, cursor_secret=CURSOR_SECRET)
        assert_valid("notification:created", payload)
        assert_valid("notification:updated", payload)


async def test_every_event_the_broadcaster_and_unread_counter_emit_validates(
    committed_db: psycopg.Connection[DictRow], pool: AsyncConnectionPool[Connection]
) -> None:
    created, updated, deleted = every_kind_of_notification(committed_db)[:3]
    emitted: Emitted = []
    counted = asyncio.Event()

    async def emit(event: EventName, data: Payload, *, to: str | list[str] = "room") -> None:
        emitted.append((event, data))
        if event == "notifications:unread-count":
            counted.set()

    async def emit_many(events: Sequence[tuple[EventName, Payload]]) -> None:
        for event, data in events:
            await emit(event, data)

    broadcaster = Broadcaster(
        emit_many=emit_many, pool=pool, cursor_secret=CURSOR_SECRET, counts_changed=lambda: None
    )
    await broadcaster(
        [
            RowAnnouncement(op="insert", id=created, seq=1),
            RowAnnouncement(op="update", id=updated, seq=2),
            RowAnnouncement(op="delete", id=deleted, seq=3),
            *(
                BulkAnnouncement(op="update", count=2 + n, action=action, seq=4 + n)
                for n, action in enumerate(get_args(BulkAction))
            ),
            Resync(reason="reconnected"),
        ]
    )

    async def count() -> int:
        async with pool.connection() as conn:
            return await unread_count(conn)

    counter = UnreadCounter(count=count, emit=emit, room="room", min_interval=0.0)
    counter.start()
    try:
        counter.broadcast()
        await asyncio.wait_for(counted.wait(), 5.0)
    finally:
        await counter.stop()

    assert {name for name, _ in emitted} == set(get_args(EventName))
    for event, payload in emitted:
        assert_valid(event, payload)


NOTIFICATION = {
    "id": "5f0c6a1e-8d7b-4c1a-9a57-3b1f7f0e2d11",
    "type": "lead_created",
    "title": "New Lead Created",
    "message": "Ada Lovelace added to pipeline",
    "isRead": False,
    "relatedLeadId": 7,
    "createdAt": "2026-11-24T18:00:00.123456Z",
    "updatedAt": "2026-11-24T18:00:00.123456Z",
    "cursor": "opaque",
}


def without(payload: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k != key}


def test_a_well_formed_payload_of_each_event_validates() -> None:
    assert_valid("notification:created", NOTIFICATION)
    assert_valid("notification:updated", {**NOTIFICATION, "isRead": True, "relatedLeadId": None})
    assert_valid("notification:deleted", {"id": NOTIFICATION["id"]})
    assert_valid("notifications:bulk-updated", {"action": "mark-all-read", "count": 3})
    assert_valid("notifications:resync", {})
    assert_valid("notifications:unread-count", {"count": 0})


@pytest.mark.parametrize(
    ("event", "payload"),
    [
        ("notification:created", without(NOTIFICATION, "cursor")),
        ("notification:created", {**NOTIFICATION, "relatedLead": None}),
        ("notification:created", {**NOTIFICATION, "isRead": "false"}),
        ("notification:created", {**NOTIFICATION, "type": "lead_deleted"}),
        ("notification:created", {**NOTIFICATION, "id": "not-a-uuid"}),
        ("notification:created", {**NOTIFICATION, "createdAt": "24/11/2026 18:00"}),
        ("notification:created", {**NOTIFICATION, "relatedLeadId": "7"}),
        ("notification:created", {**NOTIFICATION, "title": "x" * 256}),
        ("notification:deleted", {"id": NOTIFICATION["id"], "type": "lead_created"}),
        ("notification:deleted", {}),
        ("notifications:bulk-updated", {"action": "mark-all", "count": 3}),
        ("notifications:bulk-updated", {"action": "bulk-create", "count": 1}),
        ("notifications:bulk-updated", {"action": "bulk-create"}),
        ("notifications:resync", {"reason": "reconnected"}),
        ("notifications:unread-count", {"count": -1}),
        ("notifications:unread-count", {"count": 1.5}),
        ("notifications:unread-count", {"unread": 1}),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_a_wrong_payload_fails(event: str, payload: dict[str, Any]) -> None:
    assert not validator_for(event).is_valid(payload)


def test_the_format_checker_really_checks_date_times_and_uuids() -> None:
    # jsonschema checks "date-time" only when rfc3339-validator is installed: prove it is.
    checker = FormatChecker()
    assert not checker.conforms("2026-13-45T99:00:00Z", "date-time")
    assert not checker.conforms("5f0c6a1e", "uuid")
    assert checker.conforms(NOTIFICATION["createdAt"], "date-time")


def _names(items: Sequence[tuple[str, Any]]) -> list[str]:
    return [name for name, _ in items]


async def test_every_event_a_real_client_receives_validates(
    committed_db: psycopg.Connection[DictRow], database_url: str, tmp_path: Path
) -> None:
    server = start_server(database_url, tmp_path)
    client = RecordingClient()
    try:
        await client.connect(server.url, auth={"token": token()})
        await client.next_event("notifications:unread-count")
        ids = every_kind_of_notification(committed_db)
        committed_db.execute(
            """INSERT INTO leads ("firstName", "lastName") VALUES ('A', 'One'), ('B', 'Two')"""
        )
        committed_db.execute('UPDATE notifications SET "isRead" = true WHERE NOT "isRead"')
        committed_db.execute("DELETE FROM notifications WHERE id = %s", (ids[0],))
        await client.wait_until(
            lambda: (
                "notification:deleted" in _names(client.events)
                and _names(client.events)[-1] == "notifications:unread-count"
            )
        )
    finally:
        await client.close()
        server.terminate()
    names = set(_names(client.events))
    assert {
        "notification:created",
        "notification:updated",
        "notification:deleted",
        "notifications:bulk-updated",
        "notifications:unread-count",
    } <= names
    for event, payload in client.events:
        assert_valid(event, payload)
