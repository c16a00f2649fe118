"""Scenario 3: GraphQL throughput, p99 and server CPU per request at 32 connections, ours beside
the NestJS reference (bench/reference.py), one server process each.

Both servers run at once on the same PostgreSQL server, each on its own database prefilled with
the same 100,000 notifications (half unread) and vacuumed. Rounds interleave: in each, every
operation runs once against each server, the order of the servers alternating from round to
round; the table gives the median of the rounds and the ratio of the medians. Then our table
grows to 1,000,000 rows and getUnreadCount runs again on ours alone: the unread count must stay
flat as the table grows. The load is bench/http_load.mjs (node's http client): its CPU cost per
request is a fraction of a Python client's, which matters on two cores shared with the servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from bench.harness import (
    PostgresServer,
    ServerProcess,
    app_server,
    bench_token,
    cpu_seconds,
    log,
    run_node_json,
)
from bench.reference import reference_server, reference_skip_reason, reference_token
from server.store._queries import query_sql

# The same text to both servers: the fields both have (ours also has cursor and relatedLead).
QUERIES = {
    "getUnreadCount": "query { getUnreadCount }",
    "getNotifications(limit: 50)": (
        "query { getNotifications(limit: 50) { id type title message isRead relatedLeadId "
        "createdAt updatedAt } }"
    ),
    "createLead": (
        'mutation { createLead(input: {firstName: "Api", lastName: "Load"}) { id firstName } }'
    ),
}
OURS = "ours"
REFERENCE = "reference"

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
# The reference's table (made by sequelize.sync()): no column defaults, Sequelize fills them.
REFERENCE_SEED = """
INSERT INTO notifications (id, type, title, message, "isRead", "relatedLeadId", "createdAt",
                           "updatedAt")
SELECT gen_random_uuid(), 'lead_created', 'New Lead Created',
       format('Seed %%s Lead added to pipeline', g), g %% 2 = 0, NULL,
       now() - g * interval '1 second', now() - g * interval '1 second'
FROM generate_series(%s, %s) AS g
"""


@dataclass
class ApiOptions:
    seconds: float
    concurrency: int
    rounds: int
    small_rows: int
    large_rows: int
    log_dir: Path
    reference: bool = True


@dataclass
class _Target:
    name: str
    server: ServerProcess
    token: str


def seed(database_url: str, first: int, last: int) -> float:
    """Rows first..last (half unread); VACUUM so index-only scans see an all-visible table."""
    started = time.perf_counter()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(SEED, (first, last))
        # As the server does after a burst (here: the seed is one transaction).
        conn.execute(query_sql("notification_unread_fold"))
        conn.execute("VACUUM ANALYZE notifications")
    return time.perf_counter() - started


def seed_reference(database_url: str, rows: int) -> float:
    started = time.perf_counter()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(REFERENCE_SEED, (1, rows))
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


# What createLead's INSERT alone sustains on our database, with as many connections as the
# server's pool (10) and the server up (its listener takes the announcements): every such
# commit waits for the last one's (NOTIFY's queue lock and the commit stamp are held across the
# WAL flush, docs/SCALING.md), so this is the ceiling createLead can reach on this machine now.
INSERT_CEILING_CONNECTIONS = 10
INSERT_CEILING_SECONDS = 2.0
CEILING_INSERT = (
    """INSERT INTO leads ("firstName", "lastName") VALUES ('Db', 'Ceiling') RETURNING id"""
)


async def insert_ceiling(database_url: str) -> float:
    """Lead inserts per second, one autocommit INSERT after another on each connection."""
    done = 0

    async def insert_until(stop: float) -> None:
        nonlocal done
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            while time.monotonic() < stop:
                await conn.execute(CEILING_INSERT)
                done += 1

    stop = time.monotonic() + INSERT_CEILING_SECONDS
    await asyncio.gather(*(insert_until(stop) for _ in range(INSERT_CEILING_CONNECTIONS)))
    rate = done / INSERT_CEILING_SECONDS
    log(f"api: the database alone commits {rate:,.0f} lead inserts/s")
    return rate


async def _load(target: _Target, operation: str, options: ApiOptions, rows: int) -> dict[str, Any]:
    pids = target.server.pids()
    cpu_before = cpu_seconds(pids)
    result = await run_node_json(
        "http_load.mjs",
        {
            "url": f"{target.server.url}/graphql",
            "headers": {"authorization": f"Bearer {target.token}"},
            "body": json.dumps({"query": QUERIES[operation]}),
            "concurrency": options.concurrency,
            "seconds": options.seconds,
        },
        within=options.seconds + 60,
    )
    # Warm-up included on both sides of the division: CPU over every request sent.
    cpu = cpu_seconds(pids) - cpu_before
    sent = result.get("sent") or result["requests"]
    result = {
        "server": target.name,
        "operation": operation,
        "rows": rows,
        **result,
        "server_cpu_ms_per_request": cpu * 1000 / sent if sent else None,
    }
    log(
        f"api {target.name} {operation} @ {rows:,} rows: {result['requests_per_s']:,.0f} req/s "
        f"p50={result['p50_ms']:.1f}ms p99={result['p99_ms']:.1f}ms "
        f"cpu={result['server_cpu_ms_per_request'] or 0:.2f}ms/req errors={result['errors']}"
    )
    return result


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per operation: each server's medians over the rounds, and ours over the reference."""
    summary = []
    for operation in QUERIES:
        entry: dict[str, Any] = {"operation": operation}
        for name in (OURS, REFERENCE):
            mine = [r for r in runs if r["operation"] == operation and r["server"] == name]
            if not mine:
                continue
            entry[name] = {
                "rounds": len(mine),
                "requests_per_s": _median(mine, "requests_per_s"),
                "requests_per_s_rounds": [r["requests_per_s"] for r in mine],
                "p50_ms": _median(mine, "p50_ms"),
                "p99_ms": _median(mine, "p99_ms"),
                "server_cpu_ms_per_request": _median(mine, "server_cpu_ms_per_request"),
                "errors": sum(r["errors"] for r in mine),
            }
        ours, ref = entry.get(OURS), entry.get(REFERENCE)
        if ours and ref and ref["requests_per_s"]:
            # Within a round the two loads run back to back, so a round's ratio cancels most of
            # what other work on the machine does to both; the median of those is the figure
            # (as bench/triggers.py does). The ratio of the medians is kept beside it.
            by_round = {
                r["round"]: r
                for r in runs
                if r["operation"] == operation and r["server"] == REFERENCE
            }
            ratios = [
                r["requests_per_s"] / by_round[r["round"]]["requests_per_s"]
                for r in runs
                if r["operation"] == operation
                and r["server"] == OURS
                and by_round.get(r["round"], {}).get("requests_per_s")
            ]
            entry["round_ratios"] = ratios
            entry["ratio"] = statistics.median(ratios)
            entry["ratio_of_medians"] = ours["requests_per_s"] / ref["requests_per_s"]
        summary.append(entry)
    return summary


@contextlib.contextmanager
def _reference_target(
    postgres: PostgresServer, options: ApiOptions, skipped: list[str]
) -> Iterator[_Target | None]:
    if not options.reference:
        yield None
        return
    reason = reference_skip_reason()
    if reason is not None:
        log(f"api: reference skipped: {reason}")
        skipped.append(reason)
        yield None
        return
    with reference_server(postgres.admin_url, log_dir=options.log_dir) as server:
        seconds = seed_reference(server.database_url, options.small_rows)
        log(f"api: reference seeded {options.small_rows:,} notifications in {seconds:.1f}s")
        yield _Target(REFERENCE, server, reference_token(server.database_url))


async def run_api(postgres: PostgresServer, options: ApiOptions) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    flat: list[dict[str, Any]] = []
    count_ms: dict[str, dict[str, float]] = {}
    skipped: list[str] = []
    with postgres.throwaway_database("api") as database_url:
        seconds = seed(database_url, 1, options.small_rows)
        log(f"api: seeded {options.small_rows:,} notifications in {seconds:.1f}s")
        count_ms[str(options.small_rows)] = count_query_ms(database_url)
        with (
            app_server(database_url, workers=1, log_dir=options.log_dir) as server,
            _reference_target(postgres, options, skipped) as reference,
        ):
            ours = _Target(OURS, server, bench_token())
            for number in range(options.rounds):
                targets = [ours] if reference is None else [ours, reference]
                if number % 2:
                    targets.reverse()
                for operation in QUERIES:
                    for target in targets:
                        run = await _load(target, operation, options, options.small_rows)
                        runs.append({**run, "round": number + 1})
            ceiling = await insert_ceiling(database_url)
            flat.append(
                [r for r in runs if r["operation"] == "getUnreadCount" and r["server"] == OURS][-1]
            )
            seconds = seed(database_url, options.small_rows + 1, options.large_rows)
            log(f"api: grew to {options.large_rows:,} notifications in {seconds:.1f}s")
            count_ms[str(options.large_rows)] = count_query_ms(database_url)
            flat.append(await _load(ours, "getUnreadCount", options, options.large_rows))
    return {
        "runs": runs,
        "summary": summarise(runs),
        "reference_skipped": skipped[0] if skipped else None,
        "lead_insert_ceiling_per_s": ceiling,
        "unread_count_flat": flat,
        "unread_count_sql_ms": count_ms,
        "unread_count_p99_ratio": flat[-1]["p99_ms"] / flat[0]["p99_ms"],
        "rounds": options.rounds,
        "seconds": options.seconds,
        "concurrency": options.concurrency,
        "workers": 1,
    }
