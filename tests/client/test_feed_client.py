"""The feed client package in Node against real server processes: whatever the writers and the
faults, the store ends equal to the database (its feed, newest first, and its unread count).

The writes are plain SQL on their own connections, as any tool makes them; the store learns of
them only through the server. Each test ends by comparing the store with the table.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import DictRow, dict_row

from bench.feed_store import FeedStoreProcess
from server.accounts import create_user
from tests.client.build import node
from tests.client.driver import assert_equal_to_database
from tests.client.driver import start_store as start_feed_store
from tests.client.servers import start_on_port
from tests.conftest import PostgresServer
from tests.realtime.harness import (
    LISTENER,
    WAIT,
    ServerProcess,
    allow_connections,
    eventually,
    start_server,
    token,
)

QUICK_START = Path(__file__).resolve().parent / "js" / "quick_start.mjs"
StartStore = Callable[..., Awaitable[FeedStoreProcess]]


@pytest.fixture
async def start_store() -> AsyncIterator[StartStore]:
    """Starts stores (Node processes), live and loaded; every one is closed when the test ends."""
    started: list[FeedStoreProcess] = []

    async def start(url: str, *, page_size: int = 5, access: str | None = None) -> FeedStoreProcess:
        store = await start_feed_store(url, access or token(), page_size)
        started.append(store)
        return store

    try:
        yield start
    finally:
        for store in started:
            await store.close()


def writer(database_url: str) -> psycopg.Connection[DictRow]:
    return psycopg.connect(database_url, row_factory=dict_row, autocommit=True)


def insert_leads(database_url: str, prefix: str, count: int, per_statement: int = 1) -> None:
    """`count` leads on a connection of their own (see insert_leads_on)."""
    with writer(database_url) as conn:
        insert_leads_on(conn, prefix, count, per_statement)


def insert_leads_on(
    conn: psycopg.Connection[DictRow], prefix: str, count: int, per_statement: int = 1
) -> None:
    """`count` leads, `per_statement` to an INSERT (more than one: a bulk-create statement)."""
    for start in range(0, count, per_statement):
        names = [(prefix, str(n)) for n in range(start, min(start + per_statement, count))]
        values = sql.SQL(", ").join(sql.SQL("(%s, %s)") for _ in names)
        conn.execute(
            sql.SQL('INSERT INTO leads ("firstName", "lastName") VALUES {}').format(values),
            [part for name in names for part in name],
        )


def listener_pid(conn: psycopg.Connection[DictRow]) -> int:
    (row,) = conn.execute(LISTENER).fetchall()
    return int(row["pid"])


async def test_plain_sql_writers_bulk_statements_and_the_stores_own_writes(
    server: ServerProcess,
    database_url: str,
    committed_db: psycopg.Connection[DictRow],
    start_store: StartStore,
) -> None:
    store = await start_store(server.url)
    assert (await store.request("snapshot"))["items"] == []

    # Three writers at once: single-row inserts, five-row inserts, and bulk marks and deletes.
    def marks_and_deletes() -> None:
        with writer(database_url) as conn:
            for _ in range(4):
                conn.execute("""UPDATE notifications SET "isRead" = true WHERE NOT "isRead" """)
                conn.execute("""DELETE FROM notifications WHERE message LIKE 'Multi 1%'""")
                conn.execute(
                    """UPDATE notifications SET "isRead" = false
                       WHERE id = (SELECT id FROM notifications ORDER BY "createdAt" LIMIT 1)"""
                )

    await asyncio.gather(
        asyncio.to_thread(insert_leads, database_url, "Single", 20),
        asyncio.to_thread(insert_leads, database_url, "Multi", 20, per_statement=5),
        asyncio.to_thread(marks_and_deletes),
    )
    snapshot = await assert_equal_to_database(store, committed_db)

    # The store's own writes reach the table and come back as events.
    first, second = snapshot["items"][0], snapshot["items"][1]
    assert await store.request("markAsRead", id=first["id"]) is True
    assert await store.request("delete", id=second["id"]) is True
    await assert_equal_to_database(store, committed_db)
    assert await store.request("markAllAsRead") >= 0
    snapshot = await assert_equal_to_database(store, committed_db)
    assert snapshot["unreadCount"] == 0

    # Older pages: all of them, then it says there are no more.
    while (snapshot := await store.request("loadOlder"))["hasOlder"]:
        pass
    await assert_equal_to_database(store, committed_db)


async def test_a_killed_listen_connection_is_covered_by_the_resync(
    server: ServerProcess,
    database_url: str,
    committed_db: psycopg.Connection[DictRow],
    postgres_server: PostgresServer,
    start_store: StartStore,
) -> None:
    insert_leads(database_url, "Before", 3)
    store = await start_store(server.url)
    await assert_equal_to_database(store, committed_db)

    # Keep the listener out while it is down, so these writes are announced to nobody.
    database = committed_db.info.dbname
    allow_connections(postgres_server, database, False)
    try:
        committed_db.execute("SELECT pg_terminate_backend(%s)", (listener_pid(committed_db),))
        await eventually(lambda: server.readyz() == 503)
        insert_leads_on(committed_db, "Unheard", 4)
        committed_db.execute(
            """UPDATE notifications SET "isRead" = true WHERE message LIKE 'Before 0%'"""
        )
        committed_db.execute("""DELETE FROM notifications WHERE message LIKE 'Before 1%'""")
        await eventually(lambda: "action=listener_reconnect_failed" in server.log())
    finally:
        allow_connections(postgres_server, database, True)

    await eventually(lambda: server.readyz() == 200, within=15.0)
    snapshot = await assert_equal_to_database(store, committed_db)
    assert any(item["message"].startswith("Unheard 3") for item in snapshot["items"])
    insert_leads(database_url, "After", 2)
    await assert_equal_to_database(store, committed_db)


async def test_after_a_server_restart_it_catches_up_and_refreshes_the_rows_it_shows(
    database_url: str,
    committed_db: psycopg.Connection[DictRow],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    start_store: StartStore,
) -> None:
    first = start_server(database_url, tmp_path)
    second = None
    try:
        insert_leads(database_url, "Shown", 4)
        store = await start_store(first.url, page_size=10)
        shown = (await assert_equal_to_database(store, committed_db))["items"]

        first.terminate()
        await store.wait_for_event({"event": "connection", "state": "reconnecting"}, WAIT)
        # While no server runs: new rows (only catch-up finds them), and changes to rows the
        # store shows (catch-up returns only new rows: the refresh must find these).
        insert_leads(database_url, "Missed", 3)
        committed_db.execute(
            """UPDATE notifications SET "isRead" = true WHERE id = %s""", (shown[0]["id"],)
        )
        committed_db.execute("DELETE FROM notifications WHERE id = %s", (shown[1]["id"],))

        live = {"event": "connection", "state": "live"}
        live_before = store.count(live)
        second = start_on_port(monkeypatch, first.port, database_url, tmp_path)
        await store.wait_until(lambda: store.count(live) > live_before, within=15.0)
        snapshot = await assert_equal_to_database(store, committed_db)
        assert len(snapshot["items"]) == 4 + 3 - 1  # the whole table, which fits in a page
        assert snapshot["items"][0]["message"].startswith("Missed 2")
    finally:
        first.terminate()
        if second is not None:
            second.terminate()


async def test_a_connection_dropped_in_the_middle_of_a_burst_loses_nothing(
    server: ServerProcess,
    database_url: str,
    committed_db: psycopg.Connection[DictRow],
    start_store: StartStore,
) -> None:
    store = await start_store(server.url, page_size=4)

    def burst() -> None:
        with writer(database_url) as conn:
            for n in range(60):
                conn.execute(
                    """INSERT INTO leads ("firstName", "lastName") VALUES ('Burst', %s)""",
                    (str(n),),
                )
                # ~0.6 s in all: the drops below land inside the burst, however fast the
                # server delivers (unpaced, the whole burst could reach the store before the
                # first drop, and the test would drop a quiet connection).
                time.sleep(0.01)
                if n % 7 == 0:
                    conn.execute(
                        """UPDATE notifications SET "isRead" = true
                           WHERE id = (SELECT id FROM notifications ORDER BY random() LIMIT 1)"""
                    )

    writing = asyncio.create_task(asyncio.to_thread(burst))
    for _ in range(3):
        await asyncio.sleep(0.15)
        await store.request("dropConnection")
    await writing
    # Every drop is followed by a reconnect; the store must then be the table.
    await store.wait_until(lambda: store.count({"event": "connection", "state": "live"}) >= 2, WAIT)
    snapshot = await assert_equal_to_database(store, committed_db)
    assert snapshot["items"][0]["message"].startswith("Burst 59")


async def test_an_expired_token_is_an_event_the_app_answers_with_a_new_token(
    server: ServerProcess,
    database_url: str,
    committed_db: psycopg.Connection[DictRow],
    start_store: StartStore,
) -> None:
    store = await start_store(server.url, access=token(expires_in=3))
    await store.wait_for_event({"event": "token-expired"}, 15.0)
    assert (await store.request("snapshot"))["connection"] == "unauthorized"
    insert_leads(database_url, "Meanwhile", 2)

    await store.request("setToken", token=token())
    await store.wait_for_event({"event": "connection", "state": "live"}, WAIT)
    insert_leads(database_url, "Renewed", 1)
    snapshot = await assert_equal_to_database(store, committed_db)
    assert snapshot["items"][0]["message"].startswith("Renewed 0")


async def test_the_readme_quick_start_signs_in_and_shows_the_feed(
    server: ServerProcess,
    database_url: str,
    committed_db: psycopg.Connection[DictRow],
) -> None:
    await create_user(database_url, email="grace@example.com", password="a long enough password")
    insert_leads(database_url, "Quick", 2)
    process = await asyncio.create_subprocess_exec(
        node(),
        str(QUICK_START),
        server.url,
        "grace@example.com",
        "a long enough password",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, stderr.decode()
    assert json.loads(stdout) == {
        "unreadCount": 2,
        "messages": ["Quick 1 added to pipeline", "Quick 0 added to pipeline"],
    }
