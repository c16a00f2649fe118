"""Scenario 3: GraphQL throughput and p99 at 32 concurrent connections, on a seeded table.

The table gets 100,000 notifications (half unread), then the load runs getUnreadCount,
getNotifications(limit: 50) and createLead in turn; then the table grows to 1,000,000 rows and
getUnreadCount runs again, to see whether the unread count stays flat as the table grows. The
load is bench/http_load.mjs (node's http client): its CPU cost per request is a fraction of a
Python client's, which matters on two cores shared with the server.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from bench.harness import PostgresServer, app_server, bench_token, log, run_node_json
from server.store._queries import query_sql

QUERIES = {
    "getUnreadCount": "query { getUnreadCount }",
    "getNotifications(limit: 50)": (
        "query { getNotifications(limit: 50) { id type title message isRead relatedLeadId "
        "createdAt updatedAt cursor } }"
    ),
    "createLead": (
        'mutation { createLead(input: {firstName: "Api", lastName: "Load"}) { id firstName } }'
    ),
}

# The unread count two ways: count(*) over the partial index (what the query was), and what the
# server runs: the newest fold plus the transactions committed after it.
COUNT_PLANS = {
    "partial-index count(*)": 'SELECT count(*) FROM notifications WHERE NOT "isRead"',
    "fold + later commits": query_sql("notification_unread_count"),
}
SEED = """
INSERT INTO notifications (type, title, message, "isRead", "createdAt", "updatedAt")
SELECT 'lead_created', 'New Lead Created', format('Seed %%s Lead added to pipeline', g),
       g %% 2 = 0, now() - g * interval '1 second', now() - g * interval '1 second'
FROM generate_series(%s, %s) AS g
"""


@dataclass
class ApiOptions:
    seconds: float
    concurrency: int
    workers: int
    small_rows: int
    large_rows: int
    log_dir: Path


def seed(database_url: str, first: int, last: int) -> float:
    """Rows first..last (half unread); VACUUM so index-only scans see an all-visible table."""
    started = time.perf_counter()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(SEED, (first, last))
        # As the server does after a burst (here: the seed is one transaction).
        conn.execute(query_sql("notification_unread_fold"))
        conn.execute("VACUUM ANALYZE notifications")
    return time.perf_counter() - started


def count_query_ms(database_url: str) -> dict[str, float]:
    """Each unread-count query's own execution time in the database (best of 5)."""
    times: dict[str, float] = {}
    with psycopg.connect(database_url, autocommit=True) as conn:
        for name, query in COUNT_PLANS.items():
            best = float("inf")
            try:
                for _ in range(5):
                    row = conn.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {query}").fetchone()
                    assert row is not None
                    best = min(best, float(row[0][0]["Execution Time"]))
            except psycopg.errors.UndefinedTable:
                continue
            times[name] = best
    return times


async def _load(url: str, name: str, options: ApiOptions, rows: int) -> dict[str, Any]:
    result = await run_node_json(
        "http_load.mjs",
        {
            "url": f"{url}/graphql",
            "headers": {"authorization": f"Bearer {bench_token()}"},
            "body": f'{{"query": {_json_string(QUERIES[name])}}}',
            "concurrency": options.concurrency,
            "seconds": options.seconds,
        },
        within=options.seconds + 60,
    )
    result = {"operation": name, "rows": rows, **result}
    log(
        f"api {name} @ {rows:,} rows: {result['requests_per_s']:,.0f} req/s "
        f"p50={result['p50_ms']:.1f}ms p99={result['p99_ms']:.1f}ms errors={result['errors']}"
    )
    return result


def _json_string(text: str) -> str:
    import json

    return json.dumps(text)


async def run_api(postgres: PostgresServer, options: ApiOptions) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    count_ms: dict[str, dict[str, float]] = {}
    with postgres.throwaway_database("api") as database_url:
        seconds = seed(database_url, 1, options.small_rows)
        log(f"api: seeded {options.small_rows:,} notifications in {seconds:.1f}s")
        count_ms[str(options.small_rows)] = count_query_ms(database_url)
        with app_server(database_url, workers=options.workers, log_dir=options.log_dir) as server:
            for name in ("getUnreadCount", "getNotifications(limit: 50)"):
                results.append(await _load(server.url, name, options, options.small_rows))
            seconds = seed(database_url, options.small_rows + 1, options.large_rows)
            log(f"api: grew to {options.large_rows:,} notifications in {seconds:.1f}s")
            count_ms[str(options.large_rows)] = count_query_ms(database_url)
            results.append(await _load(server.url, "getUnreadCount", options, options.large_rows))
            # Last: it adds rows (about a thousand per second of load).
            results.append(await _load(server.url, "createLead", options, options.large_rows))
    small = next(r for r in results if r["operation"] == "getUnreadCount")
    large = [r for r in results if r["operation"] == "getUnreadCount"][-1]
    return {
        "runs": results,
        "unread_count_sql_ms": count_ms,
        "unread_count_p99_ratio": large["p99_ms"] / small["p99_ms"],
        "workers": options.workers,
    }
