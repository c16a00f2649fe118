"""Real PostgreSQL for the tests.

The server is TEST_DATABASE_URL's when that is set (an admin URL: the tests create and drop
databases there), otherwise an embedded one under .data/test-postgres. The schema is migrated
once per session into a template database; each test module gets its own clone of it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import DictRow, dict_row

from server.embedded_postgres import EmbeddedPostgres, client_bin_dir
from server.migrate import run_dbmate
from server.settings import DATA_DIR

APP_TABLES = ("users", "leads", "tasks", "comments", "notifications")
# The user of the realtime harness's token() (tests/realtime/harness.py), which start_server
# creates: tokens of users that do not exist are refused (server/revocation.py). It survives the
# emptying of the tables, and users are deleted row by row, not truncated: a TRUNCATE of users
# announces that every user's tokens ended, and every server would drop every socket, possibly
# one the next test has just opened.
TOKEN_USER_ID = "00000000-0000-4000-8000-000000000001"


def with_database(url: str, name: str) -> str:
    """The same server URL, pointing at database `name`."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


class PostgresServer:
    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.bin_dir: Path = client_bin_dir()  # pg_dump for `dbmate dump`

    def create_database(self, name: str, template: str | None = None) -> str:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
            if template is not None:
                statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
            conn.execute(statement)
        return with_database(self.admin_url, name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        yield PostgresServer(configured)
        return
    embedded = EmbeddedPostgres(DATA_DIR / "test-postgres")
    yield PostgresServer(embedded.url("postgres"))


@pytest.fixture(scope="session")
def template_database(postgres_server: PostgresServer) -> Iterator[str]:
    """A migrated database that every test module clones."""
    name = f"crm_template_{uuid.uuid4().hex[:12]}"
    url = postgres_server.create_database(name)
    try:
        run_dbmate(url, ["up"])
        yield name
    finally:
        postgres_server.drop_database(name)


@pytest.fixture(scope="module")
def database_url(postgres_server: PostgresServer, template_database: str) -> Iterator[str]:
    """A fresh migrated database of this module's own."""
    name = f"crm_test_{uuid.uuid4().hex[:12]}"
    url = postgres_server.create_database(name, template=template_database)
    try:
        yield url
    finally:
        postgres_server.drop_database(name)


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection[DictRow]]:
    """A connection inside a transaction that is rolled back afterwards: fast, leaves nothing."""
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        try:
            yield conn
        finally:
            conn.rollback()


def truncate_app_tables(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        truncated = [table for table in APP_TABLES if table != "users"]
        conn.execute(f"TRUNCATE {', '.join(truncated)} RESTART IDENTITY CASCADE")
        conn.execute("DELETE FROM users WHERE id <> %s", (TOKEN_USER_ID,))


@pytest.fixture
def committed_db(database_url: str) -> Iterator[psycopg.Connection[DictRow]]:
    """An autocommit connection for tests that need commits; the tables are emptied afterwards."""
    with psycopg.connect(database_url, row_factory=dict_row, autocommit=True) as conn:
        try:
            yield conn
        finally:
            truncate_app_tables(database_url)
