"""The feed client package's store in a Node process (bench/feed_store.py), started for a test,
and the check every test ends with: the store equals the table."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
from psycopg.rows import DictRow

from bench.feed_store import FEED_QUERY, FeedStoreProcess, difference
from tests.realtime.harness import WAIT

CONVERGE_WITHIN = 20.0  # after the last write, the store must equal the table within this


async def start_store(url: str, token: str, page_size: int) -> FeedStoreProcess:
    store = await FeedStoreProcess.start(url, token, page_size)
    try:
        await store.live_and_loaded(WAIT)
    except BaseException:
        await store.close()
        raise
    return store


async def assert_equal_to_database(
    store: FeedStoreProcess,
    conn: psycopg.Connection[DictRow],
    within: float = CONVERGE_WITHIN,
) -> dict[str, Any]:
    """Polls until the store's feed and count equal the table's; fails with both otherwise."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        snapshot = await store.request("idle")
        rows = conn.execute(FEED_QUERY).fetchall()
        unread = sum(1 for row in rows if not row["isRead"])
        problem = difference(snapshot, rows, unread, store.page_size)
        if problem is None:
            return dict(snapshot)
        if loop.time() > deadline:
            raise AssertionError(
                f"the store is not the table after {within}s\n{problem}\n"
                f"store events: {store.events}"
            )
        await asyncio.sleep(0.1)
