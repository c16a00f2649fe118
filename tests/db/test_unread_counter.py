"""The unread count (a fold plus the deltas of later commits) equals count(*) after any write,
and keeping it never makes one writer wait for another, fail to serialise, or deadlock."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import DictRow, dict_row

from server.store._queries import query_sql
from server.store.notifications import notification_unread_fold

Conn = psycopg.Connection[DictRow]

MARK_ONE_READ = (
    'UPDATE notifications SET "isRead" = true WHERE id = '
    '(SELECT id FROM notifications WHERE NOT "isRead" ORDER BY "insertSeq" LIMIT 1)'
)
LEAD = "INSERT INTO leads (\"firstName\", \"lastName\") VALUES ('C', 'W')"


def counted(db: Conn) -> int:
    """What the server's getUnreadCount runs."""
    row = db.execute(query_sql("notification_unread_count")).fetchone()
    assert row is not None
    return int(row["count"])


def fold(db: Conn) -> None:
    db.execute(query_sql("notification_unread_fold"))


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


@pytest.fixture
def connect(database_url: str) -> Iterator[list[Conn]]:
    """Extra connections for a test, closed (rolled back) afterwards."""
    opened: list[Conn] = []
    yield opened
    for conn in opened:
        conn.close()


def open_connection(opened: list[Conn], database_url: str, **kwargs: object) -> Conn:
    conn: Conn = psycopg.connect(database_url, row_factory=dict_row, **kwargs)  # type: ignore[arg-type]
    opened.append(conn)
    return conn


def test_the_count_follows_inserts_updates_and_deletes_of_one_row_and_of_many(db: Conn) -> None:
    start = counted(db)
    assert start == actual(db)
    insert_leads(db, 1)
    insert_leads(db, 50)
    assert counted(db) == actual(db) == start + 51
    db.execute(MARK_ONE_READ)
    db.execute(
        'UPDATE notifications SET "isRead" = true WHERE id IN '
        '(SELECT id FROM notifications WHERE NOT "isRead" ORDER BY id LIMIT 10)'
    )
    assert counted(db) == actual(db)
    db.execute("DELETE FROM notifications WHERE id IN (SELECT id FROM notifications LIMIT 5)")
    db.execute('UPDATE notifications SET "isRead" = false WHERE "isRead"')
    assert counted(db) == actual(db)


def test_the_count_is_exact_across_commits_folds_savepoints_and_early_stamps(
    committed_db: Conn, database_url: str, connect: list[Conn]
) -> None:
    writer = open_connection(connect, database_url)
    insert_leads(writer, 3)
    writer.execute("SAVEPOINT s")
    insert_leads(writer, 4)
    writer.execute("ROLLBACK TO SAVEPOINT s")
    writer.execute(MARK_ONE_READ)
    assert counted(writer) == actual(writer)  # its own uncommitted changes count for itself
    assert counted(committed_db) == actual(committed_db)  # and not for anyone else
    writer.commit()
    assert counted(committed_db) == actual(committed_db) == 2
    fold(committed_db)
    assert counted(committed_db) == actual(committed_db) == 2
    # SET CONSTRAINTS ALL IMMEDIATE stamps the transaction at its first statement; later
    # statements still count.
    writer.execute("SET CONSTRAINTS ALL IMMEDIATE")
    insert_leads(writer, 2)
    insert_leads(writer, 3)
    writer.commit()
    assert counted(committed_db) == actual(committed_db) == 7
    fold(committed_db)
    fold(committed_db)  # nothing new: a no-op
    assert counted(committed_db) == actual(committed_db) == 7


def test_truncate_resets_the_count_also_when_it_cascades_from_leads(db: Conn) -> None:
    insert_leads(db, 5)
    db.execute("TRUNCATE notifications")
    assert counted(db) == actual(db) == 0
    insert_leads(db, 5)
    db.execute("TRUNCATE leads CASCADE")
    assert counted(db) == actual(db) == 0
    insert_leads(db, 3)
    assert counted(db) == actual(db) == 3


def test_a_committed_truncate_resets_the_count_for_everyone(
    committed_db: Conn, database_url: str, connect: list[Conn]
) -> None:
    insert_leads(committed_db, 4)
    fold(committed_db)
    insert_leads(committed_db, 2)
    truncating = open_connection(connect, database_url)
    insert_leads(truncating, 1)  # its own row before the TRUNCATE goes too
    truncating.execute("TRUNCATE leads CASCADE")
    insert_leads(truncating, 2)
    truncating.commit()
    assert counted(committed_db) == actual(committed_db) == 2
    fold(committed_db)
    assert counted(committed_db) == actual(committed_db) == 2


def test_folding_keeps_the_count_and_drops_what_catch_up_does_not_need(committed_db: Conn) -> None:
    insert_leads(committed_db, 3)
    committed_db.execute(MARK_ONE_READ)
    before = counted(committed_db)
    fold(committed_db)
    assert counted(committed_db) == before == actual(committed_db)
    kept = committed_db.execute(
        'SELECT count(*) AS n, bool_and("insertedRows" > 0) AS inserting '
        "FROM notification_transactions"
    ).fetchone()
    assert kept == {"n": 1, "inserting": True}  # the update's row went, the insert's stays
    folds = committed_db.execute("SELECT count(*) AS n FROM notification_unread_folds").fetchone()
    assert folds == {"n": 1}


def test_deleting_every_row_of_a_folded_transaction_drops_its_row(committed_db: Conn) -> None:
    insert_leads(committed_db, 2)
    fold(committed_db)
    committed_db.execute("DELETE FROM notifications")
    left = committed_db.execute("SELECT count(*) AS n FROM notification_transactions").fetchone()
    assert left is not None
    # The delete's own transaction (it changed the count) stays until the next fold.
    assert left["n"] == 1
    assert counted(committed_db) == actual(committed_db) == 0


def test_counts_from_concurrent_writers_add_up(
    committed_db: Conn, database_url: str, connect: list[Conn]
) -> None:
    start = counted(committed_db)
    writers = [open_connection(connect, database_url) for _ in range(8)]
    for conn in writers:
        conn.execute(LEAD)
    for conn in reversed(writers):
        conn.commit()
    assert counted(committed_db) == actual(committed_db) == start + len(writers)


def writer_sharing_a_slot_with(
    target: Conn, connect: list[Conn], database_url: str, **kwargs: object
) -> Conn:
    """A connection whose backend pid is the target's modulo 16.

    The design this replaced kept the count in 16 rows chosen by pid % 16, so two backends with
    the same residue waited for each other; these tests pick such pairs so that they fail
    for it deterministically.
    """
    for _ in range(200):
        conn = open_connection(connect, database_url, **kwargs)
        if conn.info.backend_pid % 16 == target.info.backend_pid % 16:
            return conn
    pytest.fail("no backend pid with the same residue in 200 connections")


def run_with_lock_timeout(conn: Conn, statements: list[str]) -> None:
    conn.execute("SET lock_timeout = '2s'")
    for statement in statements:
        conn.execute(statement)
    conn.commit()


def test_an_open_transaction_that_inserted_a_lead_stalls_no_other_writer(
    committed_db: Conn, database_url: str, connect: list[Conn]
) -> None:
    insert_leads(committed_db, 4)
    writer = open_connection(connect, database_url)
    # A psql user who typed BEGIN, inserted a lead, marked one row read and went to lunch;
    # seventeen of them, one on the writer's old counter slot.
    idle = [writer_sharing_a_slot_with(writer, connect, database_url)]
    idle += [open_connection(connect, database_url) for _ in range(16)]
    for i, conn in enumerate(idle):
        conn.execute(LEAD)
        if i < 3:
            conn.execute(
                'UPDATE notifications SET "isRead" = true WHERE id = '
                '(SELECT id FROM notifications ORDER BY "createdAt", id OFFSET %s LIMIT 1)',
                (i,),
            )
    # Every kind of write completes (a lock wait would hit lock_timeout and raise).
    run_with_lock_timeout(
        writer,
        [
            LEAD,
            'UPDATE notifications SET "isRead" = true WHERE id = '
            '(SELECT id FROM notifications ORDER BY "createdAt" DESC, id DESC LIMIT 1)',
            "DELETE FROM notifications WHERE id = "
            '(SELECT id FROM notifications ORDER BY "createdAt" DESC, id DESC LIMIT 1)',
        ],
    )
    fold(committed_db)
    assert counted(committed_db) == actual(committed_db)
    for conn in idle:
        conn.commit()
    assert counted(committed_db) == actual(committed_db)


@pytest.mark.parametrize("isolation", ["REPEATABLE READ", "SERIALIZABLE"])
def test_concurrent_writers_under_strict_isolation_never_fail_to_serialise(
    committed_db: Conn, database_url: str, connect: list[Conn], isolation: str
) -> None:
    # Comments on existing leads and reads of distinct rows: writes that do not conflict in
    # the schema itself (two SERIALIZABLE transactions that both insert leads can, through
    # the foreign key of notifications on the leads index page, with or without a counter).
    insert_leads(committed_db, 2)
    leads = [r["id"] for r in committed_db.execute("SELECT id FROM leads ORDER BY id")]
    first = open_connection(connect, database_url)
    second = writer_sharing_a_slot_with(first, connect, database_url)
    for conn in (first, second):
        conn.execute(f"SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL {isolation}")
        conn.execute("SET lock_timeout = '2s'")
        conn.commit()
    comment = 'INSERT INTO comments ("leadId", body) VALUES (%s, %s)'
    mark_one_read = (
        'UPDATE notifications SET "isRead" = true WHERE id = (SELECT id FROM notifications '
        'WHERE "relatedLeadId" = %s AND NOT "isRead" ORDER BY "insertSeq" LIMIT 1)'
    )
    for round_ in range(3):
        first.execute(comment, (leads[0], f"a{round_}"))
        second.execute(comment, (leads[1], f"b{round_}"))
        second.execute(mark_one_read, (leads[1],))
        first.execute(mark_one_read, (leads[0],))
        second.commit()
        first.commit()
    assert counted(committed_db) == actual(committed_db) == 2


def test_the_counter_adds_no_deadlock_between_writers(
    committed_db: Conn, database_url: str, connect: list[Conn]
) -> None:
    committed_db.execute(LEAD)
    lead = committed_db.execute("SELECT id FROM leads").fetchone()
    assert lead is not None
    first = open_connection(connect, database_url)
    second = writer_sharing_a_slot_with(first, connect, database_url)
    first.execute(LEAD)  # first changes the count...
    second.execute("SELECT * FROM leads WHERE id = %s FOR UPDATE", (lead["id"],))
    errors: list[BaseException] = []

    def first_updates_the_lead() -> None:
        try:
            first.execute("UPDATE leads SET company = 'x' WHERE id = %s", (lead["id"],))
            first.commit()
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    waiting = threading.Thread(target=first_updates_the_lead)
    waiting.start()  # ...and waits for second's row lock
    second.execute(LEAD)  # second changes the count too: no deadlock, no wait
    second.commit()
    waiting.join(timeout=10)
    assert not waiting.is_alive()
    assert errors == []
    assert counted(committed_db) == actual(committed_db) == 3


def test_reading_the_count_reads_only_the_commits_after_the_newest_fold(
    committed_db: Conn,
) -> None:
    insert_leads(committed_db, 2_000)
    for _ in range(20):
        committed_db.execute(LEAD)
    fold(committed_db)
    for _ in range(7):
        committed_db.execute(LEAD)
    committed_db.execute("ANALYZE notification_transactions")
    for mode in ("auto", "force_generic_plan"):
        committed_db.execute(f"SET plan_cache_mode = {mode}")
        committed_db.execute("SET max_parallel_workers_per_gather = 0")  # as the server's pool
        committed_db.execute("DEALLOCATE ALL")
        committed_db.execute(f"PREPARE unread AS {query_sql('notification_unread_count')}")
        plan = committed_db.execute("EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE unread").fetchone()
        assert plan is not None
        scans = list(_scans(plan["QUERY PLAN"][0]["Plan"]))
        assert all(rel != "notifications" for rel, _ in scans)
        assert sum(rows for rel, rows in scans if rel == "notification_transactions") == 7
    assert counted(committed_db) == actual(committed_db) == 2_027


def _scans(node: dict[str, Any]) -> Iterator[tuple[str, int]]:
    """(relation, rows it returned in all) for every scan in an EXPLAIN ANALYZE JSON plan.
    PostgreSQL 18 prints the average rows per loop with decimals; earlier versions do not."""
    relation = node.get("Relation Name")
    if isinstance(relation, str):
        yield relation, round(float(node["Actual Rows"]) * float(node["Actual Loops"]))
    for child in node.get("Plans", []):
        yield from _scans(child)


async def test_folders_in_several_processes_never_collide(
    committed_db: Conn, database_url: str
) -> None:
    """Each server process folds; two folds at once must not compute the same fold twice."""

    async def folder() -> None:
        async with await psycopg.AsyncConnection.connect(
            database_url, row_factory=dict_row
        ) as conn:
            for _ in range(40):
                await notification_unread_fold(conn)
                await conn.commit()

    async def writer() -> None:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            for _ in range(60):
                await conn.execute(LEAD)

    await asyncio.gather(writer(), folder(), folder(), folder())
    fold(committed_db)
    assert counted(committed_db) == actual(committed_db) == 60
