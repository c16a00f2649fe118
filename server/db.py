"""The connection pool, and the one place where driver errors become domain errors."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from server.errors import BadInput, DatabaseUnavailable, DomainError, NotFound

Connection = AsyncConnection[DictRow]
Pool = AsyncConnectionPool[Connection]


async def configure_connection(conn: Connection) -> None:
    """Every pooled connection speaks UTC so times leave as ISO 8601 with a zone.

    No parallel plans: every query here reads a page of rows through an index, and a generic
    plan of `LIMIT $1` (psycopg prepares a statement after five uses) assumes a tenth of the
    table and picks a parallel plan whose workers cost more to start than the whole read.
    """
    await conn.execute("SET TIME ZONE 'UTC'")
    await conn.execute("SET max_parallel_workers_per_gather = 0")
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


@contextlib.contextmanager
def translated_errors() -> Iterator[None]:
    """Driver errors become domain errors here, and only here, chained with `from exc`.

    The messages are generic on purpose: the original (SQL, constraint names, values) stays in
    the chained exception for the server's log and never reaches a client. Constraint errors are
    the database's last word on input the resolvers should already have refused.
    """
    try:
        yield
    except DomainError:
        raise
    except psycopg.errors.ForeignKeyViolation as exc:
        raise NotFound("a referenced record does not exist") from exc
    except (psycopg.IntegrityError, psycopg.DataError) as exc:
        raise BadInput("the input is not valid for this operation") from exc
    except psycopg.Error as exc:  # connection lost, pool timeout, permissions, anything else
        raise DatabaseUnavailable("the database could not complete the request") from exc


@contextlib.asynccontextmanager
async def connection(pool: Pool) -> AsyncIterator[Connection]:
    """A pooled connection for one unit of work: committed when the block succeeds, rolled back
    when it raises; any driver error, the commit's included, is translated."""
    with translated_errors():
        async with pool.connection() as conn:
            yield conn
