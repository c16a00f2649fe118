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
from server.settings import DatabaseTimeouts, PoolMode

Connection = AsyncConnection[DictRow]
Pool = AsyncConnectionPool[Connection]


def session_settings(timeouts: DatabaseTimeouts) -> dict[str, str]:
    """What every unit of work runs under.

    UTC, so times leave as ISO 8601 with a zone. Time limits, so a lock held elsewhere (a `psql`
    user who typed BEGIN) or a runaway statement answers an error instead of holding a request
    and a pooled connection for ever. No parallel plans: every query here reads a page of rows
    through an index, and a generic plan of `LIMIT $1` (psycopg prepares a statement after five
    uses) assumes a tenth of the table and picks a parallel plan whose workers cost more to start
    than the whole read.
    """
    return {
        "TimeZone": "UTC",
        "max_parallel_workers_per_gather": "0",
        "statement_timeout": f"{timeouts.statement_seconds}s",
        "lock_timeout": f"{timeouts.lock_seconds}s",
        "idle_in_transaction_session_timeout": f"{timeouts.idle_in_transaction_seconds}s",
    }


def _set_config(settings: dict[str, str], *, local: bool) -> tuple[str, list[str]]:
    """One statement that applies `settings`, for the session or for the transaction only."""
    calls = ", ".join(f"set_config(%s, %s, {'true' if local else 'false'})" for _ in settings)
    return f"SELECT {calls}", [text for item in settings.items() for text in item]


def configure_connection(
    timeouts: DatabaseTimeouts,
) -> Callable[[Connection], Coroutine[Any, Any, None]]:
    """Session mode: each pooled connection is set up once, when it is opened."""
    statement, params = _set_config(session_settings(timeouts), local=False)

    async def configure(conn: Connection) -> None:
        await conn.execute(statement, params)
        await conn.commit()

    return configure


def configure_transaction(
    timeouts: DatabaseTimeouts,
) -> Callable[[Connection], Coroutine[Any, Any, None]]:
    """Transaction mode (PgBouncer): each unit of work starts its transaction with the settings,
    local to it. Through such a pooler a session setting would stay on whichever server
    connection ran it, for the next client, and the next transaction of ours may run on another
    one; so nothing here depends on the session. Run as the pool's `check`, it also proves the
    connection works before it is handed out (a broken one is replaced)."""
    statement, params = _set_config(session_settings(timeouts), local=True)

    async def begin(conn: Connection) -> None:
        await conn.execute(statement, params)  # opens the transaction the caller goes on in

    return begin


def create_pool(
    database_url: str,
    *,
    min_size: int = 2,
    max_size: int = 10,
    timeouts: DatabaseTimeouts | None = None,
    pool_mode: PoolMode = "session",
) -> AsyncConnectionPool[Connection]:
    """An unopened pool; the lifespan opens it (and waits for it) and closes it.

    `pool_mode="transaction"` is for DATABASE_URL behind PgBouncer in transaction mode: no
    prepared statements (PgBouncer 1.18 cannot route them) and the settings applied per
    transaction, at the cost of one more round trip per unit of work. Session mode, the default,
    sets each connection up once and lets psycopg prepare frequent statements.
    """
    timeouts = timeouts or DatabaseTimeouts()
    kwargs: dict[str, Any] = {"row_factory": dict_row, "autocommit": False}
    per_transaction = pool_mode == "transaction"
    if per_transaction:
        kwargs["prepare_threshold"] = None
    return AsyncConnectionPool(
        database_url,
        min_size=min_size,
        max_size=max_size,
        open=False,
        kwargs=kwargs,
        configure=None if per_transaction else configure_connection(timeouts),
        check=configure_transaction(timeouts) if per_transaction else None,
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
