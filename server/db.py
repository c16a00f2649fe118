"""The connection pool, and the one place where driver errors become domain errors."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from server.errors import BadInput, DatabaseUnavailable, DomainError, NotFound
from server.settings import DatabaseTimeouts

Connection = AsyncConnection[DictRow]
Pool = AsyncConnectionPool[Connection]


def configure_connection(
    timeouts: DatabaseTimeouts,
) -> Callable[[Connection], Coroutine[Any, Any, None]]:
    """How every pooled connection is set up.

    UTC, so times leave as ISO 8601 with a zone. Time limits, so a lock held elsewhere (a `psql`
    user who typed BEGIN) or a runaway statement answers an error instead of holding a request
    and a pooled connection for ever. No parallel plans: every query here reads a page of rows
    through an index, and a generic plan of `LIMIT $1` (psycopg prepares a statement after five
    uses) assumes a tenth of the table and picks a parallel plan whose workers cost more to start
    than the whole read.
    """

    async def configure(conn: Connection) -> None:
        await conn.execute("SET TIME ZONE 'UTC'")
        await conn.execute("SET max_parallel_workers_per_gather = 0")
        await conn.execute(
            "SELECT set_config('statement_timeout', %s, false), "
            "set_config('lock_timeout', %s, false), "
            "set_config('idle_in_transaction_session_timeout', %s, false)",
            (
                f"{timeouts.statement_seconds}s",
                f"{timeouts.lock_seconds}s",
                f"{timeouts.idle_in_transaction_seconds}s",
            ),
        )
        await conn.commit()

    return configure


def create_pool(
    database_url: str,
    *,
    min_size: int = 2,
    max_size: int = 10,
    timeouts: DatabaseTimeouts | None = None,
) -> AsyncConnectionPool[Connection]:
    """An unopened pool; the lifespan opens it (and waits for it) and closes it."""
    return AsyncConnectionPool(
        database_url,
        min_size=min_size,
        max_size=max_size,
        open=False,
        kwargs={"row_factory": dict_row, "autocommit": False},
        configure=configure_connection(timeouts or DatabaseTimeouts()),
        connection_class=AsyncConnection[DictRow],
        timeout=5.0,
        name="crm",
    )


def is_transient(error: BaseException) -> bool:
    """A failure that the same work may not meet again: a serialization failure or a deadlock
    (PostgreSQL chose this transaction as the one to abort)."""
    cause = error.__cause__ if isinstance(error, DatabaseUnavailable) else error
    return isinstance(cause, psycopg.errors.SerializationFailure | psycopg.errors.DeadlockDetected)


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
