"""Keeps the unread count cheap: folds committed transactions' deltas into a new fold.

The count is the newest fold plus the delta of every transaction committed after it (see
`notification_unread_count`), so it costs as many rows as commits since the last fold. Every
server process folds at most once per `min_interval` when announcements arrive; folds are
idempotent and one process at a time does the work (the query's try-lock), so several processes
need no coordination. Writers never wait for a fold: it only reads their committed rows.

The try-lock is transaction-scoped (`pg_try_advisory_xact_lock`) and taken in the fold's own
transaction, so it holds through PgBouncer in transaction mode too (docs/DEPLOYMENT.md (g)).
"""

from __future__ import annotations

import logging
import time

from psycopg_pool import AsyncConnectionPool

from server.db import Connection
from server.store.notifications import notification_unread_fold

logger = logging.getLogger(__name__)


class UnreadFolder:
    def __init__(self, pool: AsyncConnectionPool[Connection], *, min_interval: float = 1.0):
        self._pool = pool
        self._min_interval = min_interval
        self._last = float("-inf")

    async def fold(self) -> None:
        """Fold now; a failure is logged, never raised (the count stays exact without folds)."""
        self._last = time.monotonic()
        try:
            async with self._pool.connection() as conn:
                await notification_unread_fold(conn)
        except Exception:
            logger.exception("action=unread_fold_failed")

    async def fold_if_due(self) -> None:
        if time.monotonic() - self._last >= self._min_interval:
            await self.fold()
