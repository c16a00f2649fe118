"""What the deployment tests compare clients with: the table's notifications in commit order,
and docs/DELIVERY.md's catch-up (`after:` the newest cursor held, page by page) over HTTP."""

from __future__ import annotations

import httpx
import psycopg
from psycopg.rows import dict_row

from tests.realtime.harness import token

CATCH_UP = """query ($after: String, $limit: Int) {
  getNotifications(after: $after, limit: $limit) { id cursor }
}"""


def commit_ordered_ids(database_url: str) -> list[str]:
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        rows = conn.execute(
            """SELECT n.id::text AS id FROM notifications AS n
               JOIN notification_transactions AS t ON t.txid = n."createdTxid"
               ORDER BY t."commitSeq", n."insertSeq" """
        ).fetchall()
    return [row["id"] for row in rows]


async def catch_up(url: str, after: str, *, page: int, within: float) -> list[str]:
    """The ids a client catching up from `after` receives, oldest first."""
    ids: list[str] = []
    async with httpx.AsyncClient(timeout=within) as http:
        for _ in range(100):
            answer = await http.post(
                f"{url}/graphql",
                json={"query": CATCH_UP, "variables": {"after": after, "limit": page}},
                headers={"Authorization": f"Bearer {token()}"},
            )
            body = answer.json()
            assert "errors" not in body, body
            rows = body["data"]["getNotifications"]
            ids += [row["id"] for row in rows]
            if len(rows) < page:
                return ids
            after = rows[0]["cursor"]
    raise AssertionError("catch-up did not end")
