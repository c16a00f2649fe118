"""The unread count and the catch-up queries at 1,000,000 notifications.

    python -m bench.catch_up [--rows 1000000] [--commits 5000]

On a throwaway database (DATABASE_URL's server, or the embedded one): `--rows` notifications
written by one import, then `--commits` one-lead transactions, a fold (as the server does about
once a second), and then 0, 100 and 1,000 more commits that the count must add to the fold. For
each: the SQL execution time of the server's queries (best of 5, EXPLAIN ANALYZE, custom and
generic plans) and the rows each read, beside count(*) over the unread partial index, which
is what the count would cost without the fold.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import psycopg

from bench.harness import RESULTS_DIR, PostgresServer, log
from bench.plans import analyze, rows_read
from server.store._queries import query_sql

MODES = ("force_custom_plan", "force_generic_plan")
LIMIT = 50


def best_of(conn: psycopg.Connection[Any], name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Per plan mode: the best execution time of 5 and the rows read from each table."""
    figures: dict[str, Any] = {}
    for mode in MODES:
        plans = [analyze(conn, name, params, mode) for _ in range(5)]
        fastest = min(plans, key=lambda plan: float(plan["Execution Time"]))
        figures[mode] = {
            "ms": round(float(fastest["Execution Time"]), 3),
            "rows_notifications": rows_read(fastest, "notifications"),
            "rows_transactions": rows_read(fastest, "notification_transactions"),
        }
    return figures


def count_star_ms(conn: psycopg.Connection[Any]) -> float:
    times = []
    for _ in range(5):
        row = conn.execute(
            'EXPLAIN (ANALYZE, FORMAT JSON) SELECT count(*) FROM notifications WHERE NOT "isRead"'
        ).fetchone()
        assert row is not None
        times.append(float(row[0][0]["Execution Time"]))
    return round(min(times), 3)


def one_lead_commits(conn: psycopg.Connection[Any], count: int, tag: str) -> None:
    for i in range(count):
        conn.execute('INSERT INTO leads ("firstName", "lastName") VALUES (%s, %s)', (tag, str(i)))


def measure(url: str, rows: int, commits: int) -> dict[str, Any]:
    report: dict[str, Any] = {"rows": rows, "commits": commits, "limit": LIMIT}
    with psycopg.connect(url, autocommit=True) as conn:
        started = time.perf_counter()
        conn.execute(
            'INSERT INTO notifications (type, title, message, "isRead", "createdAt") '
            "SELECT 'lead_created', 'New Lead Created', 'Seed ' || g || ' Lead added', "
            "g %% 2 = 0, now() - (%s - g) * interval '10 ms' FROM generate_series(1, %s) AS g",
            (rows, rows),
        )
        one_lead_commits(conn, commits, "One")
        conn.execute(query_sql("notification_unread_fold"))
        conn.execute("VACUUM ANALYZE notifications")
        conn.execute("VACUUM ANALYZE notification_transactions")
        seconds = time.perf_counter() - started
        log(f"catch_up: {rows:,} rows and {commits:,} commits in {seconds:.0f}s")
        report["count_star_ms"] = count_star_ms(conn)
        report["unread_count"] = {}
        after_fold = 0
        for more in (0, 100, 1_000):
            one_lead_commits(conn, more - after_fold, "Two")
            after_fold = more
            figures = best_of(conn, "notification_unread_count", {})
            report["unread_count"][str(more)] = figures
            log(f"catch_up: count with {more} commits after the fold: {figures}")
        middle = conn.execute(
            'SELECT n."createdAt", n.id, t."commitSeq", n."insertSeq" FROM notifications n '
            'JOIN notification_transactions t ON t.txid = n."createdTxid" '
            "WHERE n.message = %s",
            (f"One {commits // 2} added to pipeline",),
        ).fetchone()
        newest = conn.execute(
            'SELECT "createdAt", id FROM notifications ORDER BY "createdAt" DESC, id DESC LIMIT 1'
        ).fetchone()
        assert middle is not None
        assert newest is not None
        at, row_id, commit_seq, insert_seq = middle
        report["catch_up_committed"] = best_of(
            conn,
            "notification_catch_up_committed",
            {
                "limit": LIMIT,
                "unread_only": False,
                "commit_seq": commit_seq,
                "insert_seq": insert_seq,
            },
        )
        report["catch_up_seen"] = best_of(
            conn,
            "notification_catch_up_seen",
            {
                "limit": LIMIT,
                "unread_only": False,
                "after_created_at": at,
                "after_id": row_id,
                "newest_created_at": newest[0],
                "newest_id": newest[1],
                "high_water": 2**62,
            },
        )
        report["first_page"] = best_of(
            conn,
            "notification_feed_before",
            {"limit": LIMIT, "unread_only": False, "before_created_at": None, "before_id": None},
        )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.catch_up", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--commits", type=int, default=5_000)
    args = parser.parse_args(argv)
    postgres = PostgresServer.from_environment()
    with postgres.throwaway_database("catch_up") as url:
        report = measure(url, args.rows, args.commits)
    report["postgres"] = postgres.version()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    output = RESULTS_DIR / f"catch_up-{time.strftime('%Y%m%dT%H%M%S')}.json"
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    log(f"catch_up: written to {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
