from __future__ import annotations

import asyncio
import time
import uuid

import psycopg
import pytest
from psycopg.rows import DictRow

from tests.graphql.conftest import Api

FIELDS = "id type title message isRead relatedLeadId createdAt updatedAt cursor"


def add_leads(conn: psycopg.Connection[DictRow], count: int) -> list[str]:
    conn.execute(
        """INSERT INTO leads ("firstName", "lastName")
           SELECT 'Lead', n::text FROM generate_series(1, %s) AS n""",
        (count,),
    )
    rows = conn.execute('SELECT id FROM notifications ORDER BY "createdAt" DESC, id DESC')
    return [str(row["id"]) for row in rows]


async def test_mark_as_read_returns_the_row_and_a_second_call_changes_nothing(
    api: Api, committed_db: psycopg.Connection[DictRow]
) -> None:
    (notification_id,) = add_leads(committed_db, 1)
    mark = f'mutation {{ markAsRead(id: "{notification_id}") {{ {FIELDS} }} }}'

    first = (await api.ok(mark))["markAsRead"]
    again = (await api.ok(mark))["markAsRead"]

    assert first["isRead"] is True
    assert {k: v for k, v in again.items() if k != "cursor"} == {
        k: v for k, v in first.items() if k != "cursor"
    }
    assert (await api.ok("{ getUnreadCount }")) == {"getUnreadCount": 0}


async def test_mark_all_as_read_says_how_many_changed(
    api: Api, committed_db: psycopg.Connection[DictRow]
) -> None:
    ids = add_leads(committed_db, 3)
    await api.ok(f'mutation {{ markAsRead(id: "{ids[0]}") {{ id }} }}')

    assert await api.ok("mutation { markAllAsRead }") == {"markAllAsRead": 2}
    assert await api.ok("mutation { markAllAsRead }") == {"markAllAsRead": 0}
    assert await api.ok("{ getUnreadCount }") == {"getUnreadCount": 0}


async def test_unread_count_equals_the_database_count(
    api: Api, committed_db: psycopg.Connection[DictRow]
) -> None:
    ids = add_leads(committed_db, 5)
    committed_db.execute('UPDATE notifications SET "isRead" = true WHERE id = %s', (ids[1],))

    data = await api.ok("{ getUnreadCount }")

    row = committed_db.execute('SELECT count(*) AS n FROM notifications WHERE NOT "isRead"')
    assert data["getUnreadCount"] == row.fetchone()["n"] == 4  # type: ignore[index]


async def test_delete_notification_removes_it_once(
    api: Api, committed_db: psycopg.Connection[DictRow]
) -> None:
    (notification_id,) = add_leads(committed_db, 1)
    delete = f'mutation {{ deleteNotification(id: "{notification_id}") }}'

    assert await api.ok(delete) == {"deleteNotification": True}
    assert (await api.gql(delete)).codes == ["NOT_FOUND"]
    assert committed_db.execute("SELECT count(*) AS n FROM notifications").fetchone() == {"n": 0}


@pytest.mark.parametrize("operation", ["markAsRead(id: $id) { id }", "deleteNotification(id: $id)"])
async def test_unknown_notification_ids_are_not_found(api: Api, operation: str) -> None:
    result = await api.gql(f"mutation($id: String!) {{ {operation} }}", {"id": str(uuid.uuid4())})

    assert result.codes == ["NOT_FOUND"]
    assert result.data is None


@pytest.mark.parametrize("operation", ["markAsRead(id: $id) { id }", "deleteNotification(id: $id)"])
@pytest.mark.parametrize("bad_id", ["42", "", "not-a-uuid", "'; DROP TABLE notifications; --"])
async def test_malformed_notification_ids_are_bad_user_input(
    api: Api, operation: str, bad_id: str
) -> None:
    result = await api.gql(f"mutation($id: String!) {{ {operation} }}", {"id": bad_id})

    assert result.codes == ["BAD_USER_INPUT"]
    assert result.data is None


async def test_a_marked_row_cursor_resumes_the_feed_after_it(
    api: Api, committed_db: psycopg.Connection[DictRow]
) -> None:
    (notification_id,) = add_leads(committed_db, 1)
    marked = await api.ok(f'mutation {{ markAsRead(id: "{notification_id}") {{ cursor }} }}')

    newer = add_leads(committed_db, 1)
    after = await api.ok(
        "query($c: String) { getNotifications(after: $c) { id } }",
        {"c": marked["markAsRead"]["cursor"]},
    )

    assert [row["id"] for row in after["getNotifications"]] == newer[:1]


async def wait_for_a_lock_waiter(database_url: str) -> None:
    """Until some backend waits on a row lock (the mutation queued behind the open writer)."""

    def poll() -> None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            for _ in range(200):
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()"
                ).fetchone()
                if row is not None and row[0] > 0:
                    return
                time.sleep(0.025)
        raise AssertionError("the mutation never waited for the open writer's row lock")

    await asyncio.to_thread(poll)


@pytest.mark.parametrize(
    ("concurrent_write", "expected"),
    [
        ('UPDATE notifications SET "isRead" = true WHERE NOT "isRead"', "read"),
        ("DELETE FROM notifications", "not found"),
    ],
)
async def test_mark_as_read_behind_a_concurrent_writer_answers_what_that_writer_committed(
    api: Api,
    committed_db: psycopg.Connection[DictRow],
    database_url: str,
    concurrent_write: str,
    expected: str,
) -> None:
    (notification_id,) = add_leads(committed_db, 1)
    mark = f'mutation {{ markAsRead(id: "{notification_id}") {{ id isRead }} }}'
    with psycopg.connect(database_url) as writer:
        writer.execute(concurrent_write)  # holds the row lock until commit
        pending = asyncio.create_task(api.gql(mark))
        await wait_for_a_lock_waiter(database_url)
        await asyncio.to_thread(writer.commit)
    result = await asyncio.wait_for(pending, timeout=10)

    if expected == "read":
        assert result.data == {"markAsRead": {"id": notification_id, "isRead": True}}
    else:
        assert result.codes == ["NOT_FOUND"]
