"""Start-up and shutdown: the pool and the realtime side (LISTEN loop, Socket.IO), in and out.

This lives in Starlette's lifespan because python-socketio's ASGIApp forwards lifespan events to
the inner app only when it has no on_startup/on_shutdown of its own.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette

from server.db import Connection, create_pool
from server.metrics import pool_gauges
from server.realtime.drain import (
    long_poll_release,
    on_connections_closing,
    on_drain,
    realtime_drain,
)
from server.realtime.listener import ListenerOptions
from server.realtime.runtime import Realtime, running_realtime
from server.realtime.sio import SocketGateway
from server.revocation import Revocations, database_loader
from server.settings import Settings
from server.throttle import LoginThrottle

logger = logging.getLogger(__name__)


@dataclass
class AppState:
    settings: Settings
    pool: AsyncConnectionPool[Connection]
    # The LISTEN loop and Socket.IO; None only for an app built without them.
    realtime: Realtime | None = None
    # Per process: which users' tokens still work (server/revocation.py). Without the realtime
    # side nothing announces revocations, so it is never trusted and every check reads the table.
    revocations: Revocations | None = None
    # Per process, in memory (see server/throttle.py for why).
    login_throttle: LoginThrottle = field(init=False)

    def __post_init__(self) -> None:
        self.login_throttle = LoginThrottle.from_limits(self.settings.limits)


def lifespan_for(
    settings: Settings,
    database_url: str,
    *,
    gateway: SocketGateway | None = None,
    listener_options: ListenerOptions | None = None,
) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pool = create_pool(
            database_url,
            timeouts=settings.database_timeouts,
            pool_mode=settings.database_pool_mode,
        )
        await pool.open(wait=True, timeout=10.0)
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(pool.close)
            realtime = None
            revocations = Revocations(database_loader(pool))
            if gateway is not None:
                realtime = await stack.enter_async_context(
                    running_realtime(
                        gateway,
                        settings=settings,
                        # LISTEN needs a session: never through a transaction pooler.
                        database_url=settings.listen_database_url or database_url,
                        pool=pool,
                        options=listener_options,
                        revocations=revocations,
                    )
                )
                # SIGTERM hands the sockets over before uvicorn closes them (realtime/drain.py).
                stack.callback(on_drain(realtime_drain(realtime)))
                stack.callback(on_connections_closing(long_poll_release(realtime)))
            await stack.enter_async_context(pool_gauges(pool))
            app.state.crm = AppState(
                settings=settings, pool=pool, realtime=realtime, revocations=revocations
            )
            logger.info("action=startup env=%s", settings.app_env)
            yield
            logger.info("action=shutdown")

    return lifespan
