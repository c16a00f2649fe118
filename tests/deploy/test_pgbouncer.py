"""Two server processes whose pool goes through a real PgBouncer in transaction pooling mode
(DATABASE_POOL_MODE=transaction) while LISTEN and migrations go straight to PostgreSQL
(LISTEN_DATABASE_URL): writers through GraphQL and SQL, delivery, catch-up, the unread count,
and every transaction's limits when other clients of the pooler leave settings behind."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import DictRow

from server.db import create_pool
from server.settings import DatabaseTimeouts
from tests.deploy.pgbouncer import PgBouncer, pgbouncer_binary, start_pgbouncer
from tests.deploy.table import catch_up, commit_ordered_ids
from tests.realtime.harness import RecordingClient, ServerProcess, start_server, token

WITHIN = 20.0
WRITES_PER_WRITER = 25
PAGE = 20


@pytest.fixture(scope="module")
def pgbouncer(database_url: str) -> Iterator[PgBouncer]:
    binary = pgbouncer_binary()
    if binary is None:
        pytest.skip(
            "pgbouncer is not installed: this test runs Debian's PgBouncer between the servers "
            "and PostgreSQL (`apt-get install pgbouncer`; `make test` installs it where apt can)"
        )
    bouncer = start_pgbouncer(binary, database_url)
    try:
        yield bouncer
    finally:
        bouncer.stop()


@pytest.fixture
def pooled_servers(
    database_url: str, pgbouncer: PgBouncer, tmp_path: Path
) -> Iterator[list[ServerProcess]]:
    env = {
        "DATABASE_URL": pgbouncer.url,
        "LISTEN_DATABASE_URL": database_url,
        "DATABASE_POOL_MODE": "transaction",
    }
    started: list[ServerProcess] = []
    try:
        for _ in range(2):
            started.append(start_server(database_url, tmp_path, extra_env=env))
        yield started
    finally:
        for server in started:
            server.terminate()


async def graphql(url: str, query: str, variables: dict[str, Any] | None = None) -> Any:
    async with httpx.AsyncClient(timeout=WITHIN) as http:
        answer = await http.post(
            f"{url}/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {token()}"},
        )
    body = answer.json()
    assert "errors" not in body, body
    return body["data"]


def write_with_sql(url: str, tag: str) -> None:
    """Another tool behind the pooler: plain SQL, one transaction per lead."""
    with psycopg.connect(url, autocommit=True, prepare_threshold=None) as conn:
        for n in range(WRITES_PER_WRITER):
            conn.execute(
                'INSERT INTO leads ("firstName", "lastName") VALUES (%s, %s)', (tag, str(n))
            )


async def write_with_graphql(url: str, tag: str) -> None:
    for n in range(WRITES_PER_WRITER):
        await graphql(
            url,
            "mutation ($input: CreateLeadInput!) { createLead(input: $input) { id } }",
            {"input": {"firstName": tag, "lastName": str(n)}},
        )


def unread_in_table(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute('SELECT count(*) FROM notifications WHERE NOT "isRead"').fetchone()
    assert row is not None
    return int(row[0])


async def test_two_servers_behind_pgbouncer_deliver_catch_up_and_count_exactly(
    database_url: str,
    pgbouncer: PgBouncer,
    pooled_servers: list[ServerProcess],
    committed_db: psycopg.Connection[DictRow],
) -> None:
    first, second = pooled_servers
    clients = [RecordingClient() for _ in range(4)]
    try:
        for client, server in zip(clients, [first, second, first, second], strict=True):
            await client.connect(server.url, auth={"token": token()}, transports=["websocket"])
            await client.next_event("notifications:unread-count")

        # Writers at once: GraphQL on each process, and SQL through the pooler.
        sql_writer = threading.Thread(target=write_with_sql, args=(pgbouncer.url, "Sql"))
        sql_writer.start()
        await asyncio.gather(
            write_with_graphql(first.url, "First"), write_with_graphql(second.url, "Second")
        )
        await asyncio.to_thread(sql_writer.join, WITHIN)
        assert not sql_writer.is_alive()
        everything = commit_ordered_ids(database_url)
        assert len(everything) == 3 * WRITES_PER_WRITER

        # Delivery: every client, whichever process it is on, has every row once, in order.
        for client in clients:
            await client.wait_until(
                lambda c=client: len(c.named("notification:created")) >= len(everything),
                within=WITHIN,
            )
            assert [n["id"] for n in client.named("notification:created")] == everything
            assert client.named("notifications:resync") == []

        # Catch-up from a cursor in the middle, on either process: exactly the rows after it.
        middle = clients[0].named("notification:created")[len(everything) // 2]
        for server in pooled_servers:
            caught_up = await catch_up(server.url, middle["cursor"], page=PAGE, within=WITHIN)
            assert sorted(caught_up) == sorted(everything[len(everything) // 2 + 1 :])

        # The unread count, after reads through both processes: GraphQL and the pushed count.
        for notification_id in everything[:7]:
            await graphql(
                first.url,
                "mutation ($id: String!) { markAsRead(id: $id) { id } }",
                {"id": notification_id},
            )
        await graphql(
            second.url,
            "mutation ($id: String!) { markAsRead(id: $id) { id } }",
            {"id": everything[-1]},
        )
        expected = unread_in_table(database_url)
        assert expected == len(everything) - 8
        for server in pooled_servers:
            assert (await graphql(server.url, "{ getUnreadCount }"))["getUnreadCount"] == expected
        for client in clients:
            await client.wait_until(
                lambda c=client: c.named("notifications:unread-count")[-1]["count"] == expected
            )
    finally:
        for client in clients:
            await client.close()
    for server in pooled_servers:
        log = server.log()
        assert "Traceback" not in log, log
        assert "prepared statement" not in log, log


async def test_every_transaction_through_pgbouncer_runs_under_the_configured_limits(
    pgbouncer: PgBouncer,
) -> None:
    # Other clients of the pooler leave session settings on every server connection it holds
    # (three, all taken at once), as a psql user's SET would: they outlive their transactions.
    leaking = [psycopg.connect(pgbouncer.url) for _ in range(3)]
    try:
        for conn in leaking:  # each in a transaction, so each holds a server connection
            for statement in (
                "SET statement_timeout = 0",
                "SET lock_timeout = 0",
                "SET idle_in_transaction_session_timeout = 0",
                "SET max_parallel_workers_per_gather = 4",
                "SET TIME ZONE 'Asia/Tokyo'",
            ):
                conn.execute(statement)
        for conn in leaking:
            conn.commit()
    finally:
        for conn in leaking:
            conn.close()
    with psycopg.connect(pgbouncer.url, autocommit=True) as bare:
        row = bare.execute("SHOW statement_timeout").fetchone()
    assert row == ("0",), "the leak was not set up: this test would prove nothing"

    pool = create_pool(
        pgbouncer.url,
        min_size=4,
        max_size=4,
        timeouts=DatabaseTimeouts(
            statement_seconds=7, lock_seconds=3, idle_in_transaction_seconds=11
        ),
        pool_mode="transaction",
    )
    await pool.open(wait=True, timeout=10)
    names = (
        "statement_timeout",
        "lock_timeout",
        "idle_in_transaction_session_timeout",
        "max_parallel_workers_per_gather",
        "TimeZone",
    )

    async def shown() -> dict[str, Any]:
        async with pool.connection() as conn:
            values = {}
            for name in names:
                cursor = await conn.execute("SELECT current_setting(%s) AS value", (name,))
                row = await cursor.fetchone()
                assert row is not None
                values[name] = row["value"]
            return values

    try:
        seen = await asyncio.gather(*(shown() for _ in range(24)))
    finally:
        await pool.close()
    assert all(
        values
        == {
            "statement_timeout": "7s",
            "lock_timeout": "3s",
            "idle_in_transaction_session_timeout": "11s",
            "max_parallel_workers_per_gather": "0",
            "TimeZone": "UTC",
        }
        for values in seen
    ), seen
