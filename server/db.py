"""The connection pool, and the one place where driver errors become domain errors."""

from __future__ import annotations

from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

Connection = AsyncConnection[DictRow]


async def configure_connection(conn: Connection) -> None:
    """Every pooled connection speaks UTC so times leave as ISO 8601 with a zone."""
    await conn.execute("SET TIME ZONE 'UTC'")
    await conn.commit()


def create_pool(
    database_url: str, *, min_size: int = 2, max_size: int = 10
) -> AsyncConnectionPool[Connection]:
    """An unopened pool; the lifespan opens it (and waits for it) and closes it."""
    return AsyncConnectionPool(
        database_url,
        min_size=min_size,
        max_size=max_size,
        open=False,
        kwargs={"row_factory": dict_row, "autocommit": False},
        configure=configure_connection,
        connection_class=AsyncConnection[DictRow],
        timeout=5.0,
        name="crm",
    )
