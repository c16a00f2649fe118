"""One pg_notify per statement that touches notifications, never too long, never folded."""

from __future__ import annotations

import psycopg
from psycopg.rows import DictRow

from tests.db.listening import Listener

Conn = psycopg.Connection[DictRow]


def seed_leads(conn: Conn, count: int) -> None:
    conn.execute(
        'INSERT INTO leads ("firstName", "lastName") '
        "SELECT 'First' || i, 'Last' || i FROM generate_series(1, %s) AS i",
        (count,),
    )


def test_an_import_of_100000_leads_is_one_short_announcement(
    committed_db: Conn, listener: Listener
) -> None:
    seed_leads(committed_db, 100_000)
    count = committed_db.execute("SELECT count(*) AS n FROM notifications").fetchone()
    assert count == {"n": 100_000}
    payloads = listener.raw(timeout=1.0)
    assert len(payloads) == 1
    assert len(payloads[0].encode()) < 8000
    assert '"action": "bulk-create"' in payloads[0]
    assert '"count": 100000' in payloads[0]


def test_marking_everything_read_is_one_mark_all_read_announcement(
    committed_db: Conn, listener: Listener
) -> None:
    seed_leads(committed_db, 500)
    listener.collect()
    committed_db.execute('UPDATE notifications SET "isRead" = true WHERE NOT "isRead"')
    [announcement] = listener.collect()
    assert announcement["op"] == "update"
    assert announcement["count"] == 500
    assert announcement["action"] == "mark-all-read"


def test_a_mixed_bulk_update_is_bulk_update(committed_db: Conn, listener: Listener) -> None:
    seed_leads(committed_db, 3)
    committed_db.execute(
        'UPDATE notifications SET "isRead" = true '
        "WHERE id = (SELECT min(id::text)::uuid FROM notifications)"
    )
    listener.collect()
    committed_db.execute("UPDATE notifications SET \"isRead\" = true, title = 'Renamed'")
    [announcement] = listener.collect()
    assert announcement["action"] == "bulk-update"
    assert announcement["count"] == 3


def test_single_row_update_and_delete_name_the_row(committed_db: Conn, listener: Listener) -> None:
    seed_leads(committed_db, 1)
    row = committed_db.execute("SELECT id::text AS id FROM notifications").fetchone()
    assert row is not None
    listener.collect()
    committed_db.execute('UPDATE notifications SET "isRead" = true WHERE id = %s', (row["id"],))
    committed_db.execute("DELETE FROM notifications WHERE id = %s", (row["id"],))
    announcements = listener.collect()
    assert [(a["op"], a["count"], a["id"]) for a in announcements] == [
        ("update", 1, row["id"]),
        ("delete", 1, row["id"]),
    ]


def test_a_bulk_delete_is_one_announcement(committed_db: Conn, listener: Listener) -> None:
    seed_leads(committed_db, 7)
    listener.collect()
    committed_db.execute("DELETE FROM notifications")
    [announcement] = listener.collect()
    assert (announcement["op"], announcement["count"], announcement["action"]) == (
        "delete",
        7,
        "bulk-delete",
    )


def test_a_statement_that_touches_no_notification_announces_nothing(
    committed_db: Conn, listener: Listener
) -> None:
    committed_db.execute('UPDATE notifications SET "isRead" = true WHERE NOT "isRead"')
    committed_db.execute("DELETE FROM notifications WHERE false")
    assert listener.collect() == []


def test_identical_statements_in_one_transaction_are_each_announced(
    committed_db: Conn, listener: Listener
) -> None:
    with committed_db.transaction():
        for _ in range(3):
            seed_leads(committed_db, 2)
    announcements = listener.collect()
    assert [(a["op"], a["count"], a["action"]) for a in announcements] == [
        ("insert", 2, "bulk-create")
    ] * 3


def test_announcements_follow_commit_order(committed_db: Conn, listener: Listener) -> None:
    for i in range(20):
        committed_db.execute(
            'INSERT INTO leads ("firstName", "lastName") VALUES (%s, %s)', (f"N{i}", "Order")
        )
    announced = [a["id"] for a in listener.collect()]
    in_table = committed_db.execute(
        """SELECT n.id::text AS id FROM notifications n JOIN leads l ON l.id = n."relatedLeadId"
           ORDER BY l.id"""
    ).fetchall()
    assert announced == [r["id"] for r in in_table]


def test_deleting_a_lead_announces_the_update_of_its_notification(
    committed_db: Conn, listener: Listener
) -> None:
    seed_leads(committed_db, 1)
    row = committed_db.execute(
        'SELECT id::text AS id, "relatedLeadId" FROM notifications'
    ).fetchone()
    assert row is not None
    listener.collect()
    committed_db.execute("DELETE FROM leads WHERE id = %s", (row["relatedLeadId"],))
    [announcement] = listener.collect()
    assert (announcement["op"], announcement["count"], announcement["id"]) == (
        "update",
        1,
        row["id"],
    )
