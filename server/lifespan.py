"""Start-up and shutdown: open the pool (and later the listener), close them on exit.

This lives in Starlette's lifespan because python-socketio's ASGIApp forwards lifespan events to
the inner app only when it has no on_startup/on_shutdown of its own.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette

from server.db import Connection, create_pool
from server.settings import Settings

logger = logging.getLogger(__name__)


@dataclass
class AppState:
    settings: Settings
    pool: AsyncConnectionPool[Connection]


def lifespan_for(
    settings: Settings, database_url: str
) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pool = create_pool(database_url)
        await pool.open(wait=True, timeout=10.0)
        app.state.crm = AppState(settings=settings, pool=pool)
        logger.info("action=startup env=%s", settings.app_env)
        try:
            yield
        finally:
            await pool.close()
            logger.info("action=shutdown")

    return lifespan
