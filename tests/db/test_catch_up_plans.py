"""The catch-up and unread-count queries the server runs read about `limit` rows through
indexes, with custom plans and with the generic plan a prepared statement may switch to
(psycopg prepares a statement after five uses), in the pool's session settings."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg.rows import DictRow

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


def prepared(conn: Conn, name: str, params: dict[str, Any]) -> tuple[str, list[Any]]:
    """The named query as the server sends it, turned into PREPARE/EXECUTE text."""
    order: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in order:
            order.append(match.group(1))
        return f"${order.index(match.group(1)) + 1}"

    text = re.sub(r"%\((\w+)\)s", number, query_sql(name)).strip().rstrip(";")
    return text, [params[key] for key in order]


def literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime | UUID):
        return f"'{value}'"
    raise TypeError(value)


def analyze(conn: Conn, name: str, params: dict[str, Any], mode: str) -> dict[str, Any]:
    text, values = prepared(conn, name, params)
    conn.execute("SET max_parallel_workers_per_gather = 0")  # as server.db configures the pool
    conn.execute(f"SET plan_cache_mode = {mode}")
    conn.execute("DEALLOCATE ALL")
    conn.execute(f"PREPARE q AS {text}")
    arguments = ", ".join(literal(v) for v in values)
    execute = f"EXECUTE q({arguments})" if values else "EXECUTE q"
    row = conn.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {execute}").fetchone()
    assert row is not None
    plan: dict[str, Any] = row["QUERY PLAN"][0]
    return plan


def scans(node: dict[str, Any]) -> Iterator[tuple[str, str, int]]:
    """(node type, relation, rows it returned in all) for every scan of a plan."""
    if "Relation Name" in node:
        rows = round(float(node["Actual Rows"]) * float(node["Actual Loops"]))
        yield node["Node Type"], node["Relation Name"], rows
    for child in node.get("Plans", []):
        yield from scans(child)


def assert_reads_about(plan: dict[str, Any], rows: int) -> None:
    found = list(scans(plan["Plan"]))
    assert all(kind != "Seq Scan" for kind, _, _ in found), found
    for relation in ("notifications", "notification_transactions"):
        read = sum(n for _, rel, n in found if rel == relation)
        assert read <= rows + 2, (relation, read, found)


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
    found = list(scans(plan["Plan"]))
    assert all(relation != "notifications" for _, relation, _ in found), found
    assert sum(n for _, rel, n in found if rel == "notification_transactions") == 40
