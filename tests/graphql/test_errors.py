"""Failures a client cannot fix reach it as a generic error; the detail stays in the log."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import psycopg
import pytest
from graphql import GraphQLError
from psycopg.rows import DictRow

from server.graphql.errors import format_error
from server.request_context import request_id_var
from tests.graphql.conftest import Api

INTERNALS = ("notifications", "select", "relation", "sql", "traceback", "psycopg", "permission")


def assert_generic(message: str) -> None:
    assert not any(word in message.lower() for word in INTERNALS), message


@pytest.fixture
async def notifications_table_gone(
    committed_db: psycopg.Connection[DictRow],
) -> AsyncIterator[None]:
    """The table the feed reads disappears (in this module's own database), then comes back."""

    def rename(old: str, new: str) -> None:
        committed_db.execute(f"ALTER TABLE {old} RENAME TO {new}")

    await asyncio.to_thread(rename, "notifications", "notifications_away")
    try:
        yield
    finally:
        await asyncio.to_thread(rename, "notifications_away", "notifications")


@pytest.mark.usefixtures("notifications_table_gone")
async def test_a_failing_query_answers_a_generic_error_and_logs_the_detail(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="server.graphql")

    result = await api.gql("{ getNotifications { id } getUnreadCount }")

    assert result.status == 400  # ariadne: a request whose data is null
    assert result.data is None
    assert result.codes
    assert set(result.codes) == {"SERVICE_UNAVAILABLE"}
    for error in result.errors:
        assert_generic(error["message"])
        assert set(error["extensions"]) == {"code", "requestId"}
        assert error["extensions"]["requestId"] == result.headers["X-Request-ID"]
    logged = [r for r in caplog.records if r.levelno == logging.ERROR and r.exc_info]
    assert logged
    assert all(result.headers["X-Request-ID"] in r.getMessage() for r in logged)
    assert "notifications" in str(logged[0].exc_info[1].__cause__)  # type: ignore[index]


async def test_a_lost_database_connection_is_a_generic_error_and_the_next_request_recovers(
    api: Api, committed_db: psycopg.Connection[DictRow]
) -> None:
    # Kill every other backend of this database: the app's pooled connections die under it.
    committed_db.execute(
        """SELECT pg_terminate_backend(pid) FROM pg_stat_activity
           WHERE datname = current_database() AND pid <> pg_backend_pid()
             AND application_name <> 'crm-listener'"""
    )

    results = [await api.gql("{ getUnreadCount }") for _ in range(4)]

    for failed in (r for r in results if r.errors):
        assert failed.codes == ["SERVICE_UNAVAILABLE"]
        assert_generic(failed.errors[0]["message"])
    assert results[0].codes == ["SERVICE_UNAVAILABLE"]
    assert results[-1].data == {"getUnreadCount": 0}


def test_an_unexpected_exception_is_hidden_from_clients_and_logged_with_the_request_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = request_id_var.set("req-123")
    try:
        error = GraphQLError(
            "boom: SELECT secret FROM users",
            path=["me"],
            original_error=RuntimeError("boom: SELECT secret FROM users"),
        )
        with caplog.at_level(logging.ERROR, logger="server.graphql"):
            formatted = format_error(error, debug=True)
    finally:
        request_id_var.reset(token)

    assert formatted == {
        "message": "internal server error",
        "path": ["me"],
        "extensions": {"code": "INTERNAL_SERVER_ERROR", "requestId": "req-123"},
    }
    assert "request_id=req-123" in caplog.records[0].getMessage()
    assert caplog.records[0].exc_info is not None
