from __future__ import annotations

import logging
import re

import psycopg
import pytest
from psycopg.rows import DictRow

from tests.graphql.conftest import Api

FEED = "query($limit: Int) { getNotifications(limit: $limit) { id relatedLead { firstName } } }"


def statements_of(caplog: pytest.LogCaptureFixture, request_id: str) -> int:
    for record in caplog.records:
        message = record.getMessage()
        if "action=graphql_request" in message and f"request_id={request_id}" in message:
            match = re.search(r"statements=(\d+)", message)
            assert match is not None
            return int(match.group(1))
    raise AssertionError(f"no log line for request {request_id}")


@pytest.mark.parametrize("page_size", [1, 20, 200])
async def test_related_leads_of_a_page_cost_a_fixed_number_of_statements(
    api: Api,
    committed_db: psycopg.Connection[DictRow],
    caplog: pytest.LogCaptureFixture,
    page_size: int,
) -> None:
    committed_db.execute(
        """INSERT INTO leads ("firstName", "lastName")
           SELECT 'F' || n, 'L' FROM generate_series(1, 200) AS n"""
    )
    # The first request of a user in a process also reads whether their tokens were revoked
    # (server/revocation.py); later ones find it cached. This counts a later one.
    await api.gql("{ getUnreadCount }")
    caplog.set_level(logging.INFO, logger="server.graphql")

    result = await api.gql(FEED, {"limit": page_size})

    rows = result.data["getNotifications"]
    assert len(rows) == page_size
    assert all(row["relatedLead"]["firstName"].startswith("F") for row in rows)
    # One for the page, one for all its leads: the same for 1 row as for 200.
    assert statements_of(caplog, result.headers["X-Request-ID"]) == 2
