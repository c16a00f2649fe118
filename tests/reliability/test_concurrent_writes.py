"""Many clients racing on the same rows over real HTTP: no deadlock, no lost update, a table and
an unread counter that agree, and only successes or clear NOT_FOUND answers."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
import psycopg
from psycopg.rows import DictRow

from server.store._queries import query_sql
from tests.realtime.harness import ServerProcess, token

MARK = "mutation($id: String!) { markAsRead(id: $id) { id isRead } }"
MARK_ALL = "mutation { markAllAsRead }"
DELETE = "mutation($id: String!) { deleteNotification(id: $id) }"
DELETE_LEAD = "mutation($id: Int!) { deleteLead(id: $id) }"
UPDATE_LEAD = "mutation($id: Int!, $s: Int!) { updateLead(id: $id, input: {score: $s}) { id } }"
COUNT = "{ getUnreadCount }"


async def test_racing_mark_read_mark_all_delete_and_lead_deletes_leave_a_consistent_table(
    server: ServerProcess, committed: psycopg.Connection[DictRow]
) -> None:
    committed.execute(
        """INSERT INTO leads ("firstName", "lastName")
           SELECT 'Race', g::text FROM generate_series(1, 30) AS g"""
    )
    # One statement per lead as well, so there are single-row notifications too.
    for index in range(30):
        committed.execute(
            """INSERT INTO leads ("firstName", "lastName") VALUES ('Solo', %s)""", (str(index),)
        )
    notification_ids = [str(row["id"]) for row in committed.execute("SELECT id FROM notifications")]
    lead_ids = [row["id"] for row in committed.execute("SELECT id FROM leads")]
    rng = random.Random(5)
    answers: list[tuple[str, dict[str, Any]]] = []

    async def worker(client: httpx.AsyncClient, seed: int) -> None:
        local = random.Random(seed)
        for _ in range(20):
            choice = local.random()
            if choice < 0.4:
                name, query, variables = "mark", MARK, {"id": local.choice(notification_ids)}
            elif choice < 0.5:
                name, query, variables = "markAll", MARK_ALL, {}
            elif choice < 0.75:
                name, query, variables = "delete", DELETE, {"id": local.choice(notification_ids)}
            elif choice < 0.85:
                name, query, variables = "deleteLead", DELETE_LEAD, {"id": local.choice(lead_ids)}
            else:
                name = "updateLead"
                query = UPDATE_LEAD
                variables = {"id": local.choice(lead_ids), "s": local.randint(0, 100)}
            response = await client.post(
                "/graphql",
                json={"query": query, "variables": variables},
                headers={"Authorization": f"Bearer {token()}"},
            )
            answers.append((name, response.json()))

    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(base_url=server.url, timeout=30.0, limits=limits) as client:
        async with asyncio.timeout(60):
            await asyncio.gather(*(worker(client, rng.randrange(1 << 30)) for _ in range(12)))

    codes = [
        error.get("extensions", {}).get("code")
        for _, body in answers
        for error in body.get("errors") or []
    ]
    assert set(codes) <= {"NOT_FOUND"}, codes
    assert len(answers) == 12 * 20
    counter = query_sql("notification_unread_count").strip().rstrip(";")
    row = committed.execute(
        f"""SELECT (SELECT count(*) FROM notifications WHERE NOT "isRead") AS unread,
                  ({counter}) AS counter,
                  (SELECT count(*) FROM notifications
                   WHERE "relatedLeadId" IS NOT NULL
                     AND "relatedLeadId" NOT IN (SELECT id FROM leads)) AS dangling"""
    ).fetchone()
    assert row is not None
    assert row["unread"] == row["counter"]
    assert row["dangling"] == 0
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as client:
        answer = await client.post(
            "/graphql", json={"query": COUNT}, headers={"Authorization": f"Bearer {token()}"}
        )
    assert answer.json() == {"data": {"getUnreadCount": row["unread"]}}
    # Every markAsRead that answered saw the row read.
    for name, body in answers:
        if name == "mark" and body.get("data"):
            assert body["data"]["markAsRead"]["isRead"] is True
