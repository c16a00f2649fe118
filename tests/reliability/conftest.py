"""Reliability tests: real servers (tests/realtime/harness.py), real HTTP, real PostgreSQL.

Requests go over TCP to `python -m server serve`, so limits on bodies, addresses and sockets are
exercised where they act. A table snapshot proves that a refused request changed nothing.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import DictRow, dict_row

from tests.conftest import APP_TABLES, PostgresServer, truncate_app_tables
from tests.graphql.conftest import PASSWORD, password_hash
from tests.realtime.harness import ServerProcess, start_server, token

# Every code a client may see (docs/RELIABILITY.md); anything else is a leak.
KNOWN_CODES = frozenset(
    {
        "BAD_USER_INPUT",
        "NOT_FOUND",
        "UNAUTHENTICATED",
        "RATE_LIMITED",
        "SERVICE_UNAVAILABLE",
        "PAYLOAD_TOO_LARGE",
        "GRAPHQL_VALIDATION_FAILED",
    }
)
# Words that only internals would put in a message.
LEAK_MARKERS = (
    "Traceback",
    'File "',
    "psycopg",
    "SELECT ",
    "INSERT ",
    "UPDATE ",
    "DELETE ",
    "relation ",
    "violates",
    "asyncpg",
    "graphql.error",
    "Exception",
    "object has no attribute",
    "NoneType",
)

# Short windows so that recovery is observable within a test.
THROTTLE_ENV = {
    "LOGIN_THROTTLE_WINDOW": "6s",
    "LOGIN_MAX_FAILURES_PER_EMAIL_AND_ADDRESS": "3",
    "LOGIN_MAX_FAILURES_PER_EMAIL": "8",
    "LOGIN_MAX_FAILURES_PER_ADDRESS": "4",
}


@pytest.fixture(scope="package")
def database_url(postgres_server: PostgresServer, template_database: str) -> Iterator[str]:
    """One database for the package (its tests empty the tables after themselves), so one server
    start serves every module here."""
    name = f"crm_reliability_{uuid.uuid4().hex[:12]}"
    url = postgres_server.create_database(name, template=template_database)
    try:
        yield url
    finally:
        postgres_server.drop_database(name)


@pytest.fixture(scope="package")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = start_server(database_url, tmp_path_factory.mktemp("server"), extra_env=THROTTLE_ENV)
    try:
        yield process
    finally:
        process.terminate()


@pytest.fixture
def committed(database_url: str) -> Iterator[psycopg.Connection[DictRow]]:
    """An autocommit connection; the tables are emptied afterwards."""
    with psycopg.connect(database_url, row_factory=dict_row, autocommit=True) as conn:
        try:
            yield conn
        finally:
            truncate_app_tables(database_url)


def add_user(conn: psycopg.Connection[DictRow], email: str) -> str:
    conn.execute(
        """INSERT INTO users (email, "passwordHash") VALUES (%s, %s)""", (email, password_hash())
    )
    return PASSWORD


SNAPSHOT = " UNION ALL ".join(
    f"SELECT '{table}', md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) "
    f"FROM {table} AS t"
    for table in (*APP_TABLES, "notification_transactions", "notification_unread_folds")
)


def snapshot(database_url: str | psycopg.Connection[DictRow]) -> dict[str, str]:
    """A digest of every row of every app table, and of the unread count's bookkeeping."""
    if isinstance(database_url, str):
        with psycopg.connect(database_url, row_factory=dict_row, autocommit=True) as conn:
            return snapshot(conn)
    return {row["?column?"]: row["md5"] for row in database_url.execute(SNAPSHOT)}


def gql(
    client: httpx.Client,
    query: str,
    variables: Any = None,
    *,
    bearer: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    all_headers = dict(headers or {})
    if bearer is not None:
        all_headers["Authorization"] = f"Bearer {bearer}"
    body: dict[str, Any] = {"query": query}
    if variables is not None:
        body["variables"] = variables
    return client.post("/graphql", json=body, headers=all_headers)


def codes(response: httpx.Response) -> list[str]:
    return [error.get("extensions", {}).get("code") for error in response.json().get("errors", [])]


@pytest.fixture
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=15.0) as client:
        yield client


@pytest.fixture
def bearer() -> str:
    return token()


def wait_for(check: Any, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {within}s")
        time.sleep(0.05)
