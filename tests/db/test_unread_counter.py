"""The unread counters (kept by tg_notifications__announce) equal count(*) after any write."""

from __future__ import annotations

import psycopg
from psycopg.rows import DictRow

Conn = psycopg.Connection[DictRow]


def counted(db: Conn) -> int:
    row = db.execute(
        "SELECT coalesce(sum(unread), 0) AS n FROM notification_unread_counts"
    ).fetchone()
    assert row is not None
    return int(row["n"])


def actual(db: Conn) -> int:
    row = db.execute('SELECT count(*) AS n FROM notifications WHERE NOT "isRead"').fetchone()
    assert row is not None
    return int(row["n"])


def insert_leads(db: Conn, count: int) -> None:
    db.execute(
        'INSERT INTO leads ("firstName", "lastName") '
        "SELECT 'F' || i, 'L' || i FROM generate_series(1, %s) AS i",
        (count,),
    )


def test_the_counters_follow_inserts_updates_and_deletes_of_one_row_and_of_many(
    db: Conn,
) -> None:
    start = counted(db)
    assert start == actual(db)
    insert_leads(db, 1)
    insert_leads(db, 50)
    assert counted(db) == actual(db) == start + 51
    db.execute(
        'INSERT INTO notifications (type, title, message, "isRead") '
        "SELECT 'lead_created', 't', 'm', i % 3 = 0 FROM generate_series(1, 30) AS i"
    )
    assert counted(db) == actual(db) == start + 51 + 20
    one = db.execute('SELECT id FROM notifications WHERE NOT "isRead" LIMIT 1').fetchone()
    assert one is not None
    db.execute('UPDATE notifications SET "isRead" = true WHERE id = %s', (one["id"],))
    db.execute('UPDATE notifications SET "isRead" = NOT "isRead" WHERE message = %s', ("m",))
    db.execute('UPDATE notifications SET title = %s WHERE "isRead"', ("unchanged count",))
    assert counted(db) == actual(db)
    db.execute("DELETE FROM leads WHERE id IN (SELECT id FROM leads ORDER BY id LIMIT 10)")
    db.execute('DELETE FROM notifications WHERE "relatedLeadId" IS NULL AND NOT "isRead"')
    db.execute(
        "DELETE FROM notifications WHERE id = (SELECT min(id::text)::uuid FROM notifications)"
    )
    assert counted(db) == actual(db)
    db.execute('UPDATE notifications SET "isRead" = true WHERE NOT "isRead"')
    assert counted(db) == actual(db) == 0


def test_truncate_resets_the_counters_also_when_it_cascades_from_leads(db: Conn) -> None:
    insert_leads(db, 5)
    db.execute("TRUNCATE notifications")
    assert counted(db) == actual(db) == 0
    insert_leads(db, 5)
    db.execute("TRUNCATE leads CASCADE")
    assert counted(db) == actual(db) == 0
    insert_leads(db, 3)
    assert counted(db) == actual(db) == 3


def test_counts_from_concurrent_writers_add_up(committed_db: Conn, database_url: str) -> None:
    start = counted(committed_db)
    # Four open transactions at once, each on its own slot (two writers on one slot would
    # simply wait for each other, which this sequential test cannot do).
    writers: dict[int, psycopg.Connection[tuple[int]]] = {}
    spare: list[psycopg.Connection[tuple[int]]] = []
    try:
        while len(writers) < 4 and len(spare) < 20:
            conn: psycopg.Connection[tuple[int]] = psycopg.connect(database_url)
            slot = conn.info.backend_pid % 16
            if slot in writers:
                spare.append(conn)
            else:
                writers[slot] = conn
        for conn in writers.values():
            conn.execute("INSERT INTO leads (\"firstName\", \"lastName\") VALUES ('C', 'W')")
        for conn in writers.values():
            conn.commit()
    finally:
        for conn in [*writers.values(), *spare]:
            conn.close()
    assert counted(committed_db) == actual(committed_db) == start + len(writers)
    assert len(writers) == 4
