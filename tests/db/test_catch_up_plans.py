"""The catch-up and unread-count queries the server runs read about `limit` rows through
indexes, with custom plans and with the generic plan a prepared statement may switch to
(psycopg prepares a statement after five uses), in the pool's session settings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import DictRow

from bench.plans import analyze, rows_read, scans
from server.store._queries import query_sql

Conn = psycopg.Connection[DictRow]
LIMIT = 50


@pytest.fixture(scope="module")
def history(database_url: str) -> Iterator[dict[str, Any]]:
    """20,000 rows from one import, 1,500 one-lead transactions, 300 read marks, folded."""
    with psycopg.connect(database_url, autocommit=True, row_factory=psycopg.rows.dict_row) as db:
        db.execute(
            'INSERT INTO leads ("firstName", "lastName") '
            "SELECT 'F' || i, 'L' || i FROM generate_series(1, 20000) AS i"
        )
        for i in range(1_500):
            db.execute('INSERT INTO leads ("firstName", "lastName") VALUES (%s, %s)', ("One", i))
            if i % 5 == 0:
                db.execute(
                    'UPDATE notifications SET "isRead" = true WHERE id = (SELECT id FROM '
                    'notifications WHERE NOT "isRead" ORDER BY "insertSeq" LIMIT 1)'
                )
        db.execute(query_sql("notification_unread_fold"))
        for i in range(40):  # after the fold: what the count must add
            db.execute('INSERT INTO leads ("firstName", "lastName") VALUES (%s, %s)', ("Two", i))
        db.execute("VACUUM ANALYZE notifications")
        db.execute("VACUUM ANALYZE notification_transactions")
        middle = db.execute(
            'SELECT n."createdAt", n.id, t."commitSeq", n."insertSeq" FROM notifications n '
            'JOIN notification_transactions t ON t.txid = n."createdTxid" '
            "WHERE n.message LIKE 'One 700 %%'"
        ).fetchone()
        newest = db.execute(
            'SELECT "createdAt", id FROM notifications ORDER BY "createdAt" DESC, id DESC LIMIT 1'
        ).fetchone()
        assert middle is not None
        assert newest is not None
        yield {"middle": middle, "newest": newest}
        db.execute("TRUNCATE leads CASCADE")


def assert_reads_about(plan: dict[str, Any], rows: int) -> None:
    found = list(scans(plan["Plan"]))
    assert all(kind != "Seq Scan" for kind, _, _ in found), found
    for relation in ("notifications", "notification_transactions"):
        assert rows_read(plan, relation) <= rows + 2, found


@pytest.mark.parametrize("mode", ["force_custom_plan", "force_generic_plan"])
def test_catch_up_in_commit_order_reads_about_limit_rows(
    db: Conn, history: dict[str, Any], mode: str
) -> None:
    middle = history["middle"]
    for start in ((middle["commitSeq"], middle["insertSeq"]), (middle["commitSeq"], 2**63 - 1)):
        plan = analyze(
            db,
            "notification_catch_up_committed",
            {"limit": LIMIT, "unread_only": False, "commit_seq": start[0], "insert_seq": start[1]},
            mode,
        )
        assert plan["Plan"]["Actual Rows"] == LIMIT
        assert_reads_about(plan, LIMIT)


@pytest.mark.parametrize("mode", ["force_custom_plan", "force_generic_plan"])
def test_catch_up_within_a_pages_read_reads_about_limit_rows(
    db: Conn, history: dict[str, Any], mode: str
) -> None:
    middle, newest = history["middle"], history["newest"]
    plan = analyze(
        db,
        "notification_catch_up_seen",
        {
            "limit": LIMIT,
            "unread_only": False,
            "after_created_at": middle["createdAt"],
            "after_id": middle["id"],
            "newest_created_at": newest["createdAt"],
            "newest_id": newest["id"],
            "high_water": 2**62,
        },
        mode,
    )
    assert plan["Plan"]["Actual Rows"] == LIMIT
    assert_reads_about(plan, LIMIT)


@pytest.mark.parametrize("mode", ["force_custom_plan", "force_generic_plan"])
def test_the_unread_count_reads_only_what_came_after_the_fold(
    db: Conn, history: dict[str, Any], mode: str
) -> None:
    plan = analyze(db, "notification_unread_count", {}, mode)
    assert rows_read(plan, "notifications") == 0
    assert rows_read(plan, "notification_transactions") == 40
