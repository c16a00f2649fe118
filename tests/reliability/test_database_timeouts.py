"""Time limits on the server's pool sessions, and mutations retried when PostgreSQL aborts them
to break a deadlock; against a real server process and real PostgreSQL sessions."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import DictRow, dict_row

from server.db import create_pool
from server.settings import DatabaseTimeouts
from tests.realtime.harness import ServerProcess, insert_lead, start_server, token

UPDATE = 'mutation($id: Int!) { updateLead(id: $id, input: {company: "Acme"}) { id company } }'
DELETE = "mutation($id: Int!) { deleteLead(id: $id) }"


@pytest.fixture(scope="module")
def timed_server(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    process = start_server(
        database_url,
        tmp_path_factory.mktemp("timeouts"),
        extra_env={"DB_LOCK_TIMEOUT": "2s", "DB_STATEMENT_TIMEOUT": "5s"},
    )
    try:
        yield process
    finally:
        process.terminate()


async def graphql(server: ServerProcess, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as http:
        answer = await http.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {token()}"},
        )
    body: dict[str, Any] = answer.json()
    return body


def codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors") or []]


async def test_a_request_stuck_behind_a_lock_answers_an_error_within_the_lock_timeout(
    timed_server: ServerProcess, committed_db: psycopg.Connection[DictRow], database_url: str
) -> None:
    lead = insert_lead(committed_db)
    with psycopg.connect(database_url) as holder:  # a psql user who typed BEGIN and went away
        holder.execute("SELECT * FROM leads WHERE id = %s FOR UPDATE", (lead,))
        started = time.monotonic()
        body = await graphql(timed_server, UPDATE, {"id": lead})
        waited = time.monotonic() - started
    assert codes(body) == ["SERVICE_UNAVAILABLE"], body
    assert "lock" not in str(body).lower()  # nothing internal reaches the client
    assert 1.5 < waited < 2 + 3.0, waited  # the 2 s lock timeout, not for ever
    # Once the lock is gone, the same request succeeds: the connection went back healthy.
    assert (await graphql(timed_server, UPDATE, {"id": lead}))["data"]["updateLead"]["company"] == (
        "Acme"
    )


def backend_waits_for_a_lock(database_url: str, application: str, within: float = 10.0) -> None:
    """Until some session other than `application`'s waits for a lock (the server's)."""
    with psycopg.connect(database_url, autocommit=True) as probe:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            row = probe.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database() AND application_name <> %s",
                (application,),
            ).fetchone()
            if row is not None and row[0] > 0:
                return
            time.sleep(0.02)
    raise AssertionError("the server's mutation never waited for the lock")


async def test_a_mutation_chosen_as_a_deadlock_victim_is_retried_and_succeeds(
    timed_server: ServerProcess, committed_db: psycopg.Connection[DictRow], database_url: str
) -> None:
    lead = insert_lead(committed_db)
    notification = committed_db.execute(
        'SELECT id FROM notifications WHERE "relatedLeadId" = %s', (lead,)
    ).fetchone()
    assert notification is not None
    other = psycopg.connect(database_url, row_factory=dict_row, application_name="deadlocker")
    try:
        # Another writer holds the lead's notification row...
        other.execute(
            'UPDATE notifications SET "isRead" = true WHERE id = %s', (notification["id"],)
        )
        # ...while deleteLead locks the lead and waits for that row (ON DELETE SET NULL)...
        deleting = asyncio.ensure_future(graphql(timed_server, DELETE, {"id": lead}))
        await asyncio.to_thread(backend_waits_for_a_lock, database_url, "deadlocker")

        # ...then the other writer wants the lead: a deadlock. The mutation waited first, so
        # PostgreSQL aborts it after deadlock_timeout; the other writer then goes on, commits,
        # and the retried mutation finds the way clear.
        def lock_the_lead_then_commit() -> None:
            other.execute("UPDATE leads SET company = 'x' WHERE id = %s", (lead,))
            other.commit()

        finishing = threading.Thread(target=lock_the_lead_then_commit)
        finishing.start()
        body = await asyncio.wait_for(deleting, 30)
        finishing.join(timeout=10)
    finally:
        other.close()
    assert body == {"data": {"deleteLead": True}}, body
    log = timed_server.log()
    assert (
        "action=mutation_retried resolver=resolve_delete_lead attempt=1 cause=DeadlockDetected"
        in log
    )


async def test_every_pooled_session_carries_the_configured_limits(database_url: str) -> None:
    pool = create_pool(
        database_url,
        min_size=1,
        max_size=1,
        timeouts=DatabaseTimeouts(
            statement_seconds=7, lock_seconds=3, idle_in_transaction_seconds=11
        ),
    )
    await pool.open(wait=True, timeout=10)
    try:
        async with pool.connection() as conn:
            shown = {
                name: (await (await conn.execute(f"SHOW {name}")).fetchone() or {}).get(name)
                for name in (
                    "statement_timeout",
                    "lock_timeout",
                    "idle_in_transaction_session_timeout",
                    "max_parallel_workers_per_gather",
                )
            }
    finally:
        await pool.close()
    assert shown == {
        "statement_timeout": "7s",
        "lock_timeout": "3s",
        "idle_in_transaction_session_timeout": "11s",
        "max_parallel_workers_per_gather": "0",
    }
