"""Every writer path of CONTRACT §1, by plain SQL, writes its notification in its transaction."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import DictRow

from tests.db.listening import Listener

Conn = psycopg.Connection[DictRow]


def insert_lead(conn: Conn, first: str = "John", last: str = "Doe", **columns: Any) -> int:
    names = ['"firstName"', '"lastName"', *(f'"{c}"' for c in columns)]
    values = [first, last, *columns.values()]
    row = conn.execute(
        f"INSERT INTO leads ({', '.join(names)}) VALUES ({', '.join(['%s'] * len(values))}) "
        "RETURNING id",
        values,
    ).fetchone()
    assert row is not None
    return int(row["id"])


def notifications(conn: Conn) -> list[dict[str, Any]]:
    return conn.execute(
        'SELECT type::text AS type, title, message, "relatedLeadId", "isRead" '
        'FROM notifications ORDER BY "createdAt", message COLLATE "C"'
    ).fetchall()


def test_inserting_a_lead_writes_lead_created(db: Conn) -> None:
    lead_id = insert_lead(db)
    assert notifications(db) == [
        {
            "type": "lead_created",
            "title": "New Lead Created",
            "message": "John Doe added to pipeline",
            "relatedLeadId": lead_id,
            "isRead": False,
        }
    ]


def test_changing_a_score_writes_score_updated(db: Conn) -> None:
    lead_id = insert_lead(db, score=10)
    db.execute("DELETE FROM notifications")
    db.execute("UPDATE leads SET score = 42 WHERE id = %s", (lead_id,))
    assert notifications(db) == [
        {
            "type": "score_updated",
            "title": "Lead Score Updated",
            "message": "John Doe score changed from 10 to 42",
            "relatedLeadId": lead_id,
            "isRead": False,
        }
    ]


def test_an_update_that_keeps_the_score_writes_nothing(db: Conn) -> None:
    lead_id = insert_lead(db, score=10)
    db.execute("DELETE FROM notifications")
    db.execute("UPDATE leads SET score = 10, company = 'Acme' WHERE id = %s", (lead_id,))
    assert notifications(db) == []


def test_completing_a_task_writes_task_completed(db: Conn) -> None:
    lead_id = insert_lead(db)
    task = db.execute(
        'INSERT INTO tasks ("leadId", title) VALUES (%s, %s) RETURNING id', (lead_id, "Call back")
    ).fetchone()
    assert task is not None
    db.execute("DELETE FROM notifications")
    db.execute('UPDATE tasks SET "completedAt" = now() WHERE id = %s', (task["id"],))
    # Completing it again (a later time) is not a new completion.
    db.execute("UPDATE tasks SET \"completedAt\" = now() + interval '1 minute'")
    assert notifications(db) == [
        {
            "type": "task_completed",
            "title": "Task Completed",
            "message": "Call back completed for John Doe",
            "relatedLeadId": lead_id,
            "isRead": False,
        }
    ]


def test_inserting_a_completed_task_writes_task_completed(db: Conn) -> None:
    lead_id = insert_lead(db)
    db.execute("DELETE FROM notifications")
    db.execute(
        'INSERT INTO tasks ("leadId", title, "completedAt") VALUES (%s, %s, now()), (%s, %s, null)',
        (lead_id, "Send offer", lead_id, "Not done yet"),
    )
    assert [n["message"] for n in notifications(db)] == ["Send offer completed for John Doe"]


def test_adding_a_comment_writes_comment_added_with_author_or_someone(db: Conn) -> None:
    lead_id = insert_lead(db)
    db.execute("DELETE FROM notifications")
    db.execute(
        'INSERT INTO comments ("leadId", body, "authorEmail") VALUES (%s, %s, %s)',
        (lead_id, "Looks promising", "ann@example.com"),
    )
    db.execute('INSERT INTO comments ("leadId", body) VALUES (%s, %s)', (lead_id, "Anonymous"))
    assert notifications(db) == [
        {
            "type": "comment_added",
            "title": "New Comment",
            "message": "Someone commented on John Doe",
            "relatedLeadId": lead_id,
            "isRead": False,
        },
        {
            "type": "comment_added",
            "title": "New Comment",
            "message": "ann@example.com commented on John Doe",
            "relatedLeadId": lead_id,
            "isRead": False,
        },
    ]


def test_inserting_several_leads_writes_one_notification_each(db: Conn) -> None:
    db.execute(
        'INSERT INTO leads ("firstName", "lastName") '
        "VALUES ('A', 'One'), ('B', 'Two'), ('C', 'Three')"
    )
    assert sorted(n["message"] for n in notifications(db)) == [
        "A One added to pipeline",
        "B Two added to pipeline",
        "C Three added to pipeline",
    ]


def test_a_rolled_back_write_leaves_no_row_and_announces_nothing(
    committed_db: Conn, listener: Listener
) -> None:
    with committed_db.transaction(force_rollback=True):
        insert_lead(committed_db)
        assert len(notifications(committed_db)) == 1
    assert notifications(committed_db) == []
    assert listener.collect(timeout=0.5) == []


def test_a_failing_statement_rolls_back_its_notification(
    committed_db: Conn, listener: Listener
) -> None:
    try:
        with committed_db.transaction():
            insert_lead(committed_db)
            insert_lead(committed_db, first=" ")  # violates the non-blank name check
    except psycopg.errors.CheckViolation:
        pass
    else:
        raise AssertionError("a blank first name must be refused")
    assert notifications(committed_db) == []
    assert listener.collect(timeout=0.5) == []


def test_a_committed_write_is_announced_once(committed_db: Conn, listener: Listener) -> None:
    insert_lead(committed_db)
    row = committed_db.execute("SELECT id FROM notifications").fetchone()
    assert row is not None
    [announcement] = listener.collect()
    assert announcement["op"] == "insert"
    assert announcement["count"] == 1
    assert announcement["id"] == str(row["id"])


def test_deleting_a_lead_keeps_its_notifications_without_the_link(db: Conn) -> None:
    lead_id = insert_lead(db)
    db.execute("DELETE FROM leads WHERE id = %s", (lead_id,))
    assert notifications(db) == [
        {
            "type": "lead_created",
            "title": "New Lead Created",
            "message": "John Doe added to pipeline",
            "relatedLeadId": None,
            "isRead": False,
        }
    ]


def test_very_long_names_insert_fine(committed_db: Conn, listener: Listener) -> None:
    long_name = "x" * 20_000
    insert_lead(committed_db, first=long_name, last=long_name)
    [row] = notifications(committed_db)
    assert row["message"] == f"{long_name} {long_name} added to pipeline"
    [payload] = listener.raw()
    assert len(payload.encode()) < 8000
