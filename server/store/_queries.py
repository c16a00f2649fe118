"""Named queries from server/sql/*.sql, loaded once by aiosql, behind four typed helpers.

aiosql is untyped, so this module is the only one that touches it: store modules call
`fetch_all`/`fetch_one`/`execute` with a query name and keyword parameters. Every statement run
through here is counted for the current request (see `count_statements`), which is how a request's
log line, and the N+1 test, know how many statements a GraphQL request cost.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosql

from server.db import Connection

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"

# "apsycopg" is aiosql's psycopg 3 async adapter: `:name` parameters become `%(name)s`, so values
# always travel as bind parameters, never as SQL text.
QUERIES: Any = aiosql.from_path(SQL_DIR, "apsycopg")

Row = dict[str, Any]


@dataclass
class StatementCount:
    statements: int = 0


_current_count: ContextVar[StatementCount | None] = ContextVar("crm_statement_count", default=None)


@contextlib.contextmanager
def count_statements() -> Iterator[StatementCount]:
    """Count the statements run in this context and the tasks it starts (GraphQL resolvers)."""
    count = StatementCount()
    token = _current_count.set(count)
    try:
        yield count
    finally:
        _current_count.reset(token)


def query_names() -> list[str]:
    """The names in server/sql/*.sql (without the `*_cursor` variants aiosql adds)."""
    names = set(QUERIES.available_queries)
    return sorted(n for n in names if not (n.endswith("_cursor") and n[: -len("_cursor")] in names))


def query_sql(name: str) -> str:
    """The SQL text as sent to the driver (pyformat placeholders)."""
    sql: str = getattr(QUERIES, name).sql
    return sql


def _query(name: str) -> Any:
    count = _current_count.get()
    if count is not None:
        count.statements += 1
    return getattr(QUERIES, name)


async def fetch_all(conn: Connection, name: str, **params: Any) -> list[Row]:
    """Every row, fetched at once: aiosql's own select hands them out through two nested async
    generators, a coroutine step per row. Its SQL and parameters go to the driver as aiosql
    would send them (pyformat, values bound)."""
    cursor = await conn.execute(_query(name).sql, params)
    try:
        return await cursor.fetchall()
    finally:
        await cursor.close()


async def fetch_one(conn: Connection, name: str, **params: Any) -> Row | None:
    """The first row (the query names `^` or `<!`), or None."""
    row: Row | None = await _query(name)(conn, **params)
    return row


async def execute(conn: Connection, name: str, **params: Any) -> int:
    """Rows affected by an INSERT/UPDATE/DELETE query (named with `!`)."""
    rowcount: int = await _query(name)(conn, **params)
    return rowcount
