"""Keeps the garbage collector's full collections from walking every connected socket.

A full collection walks every object the collector tracks, and each connected socket holds a
few hundred (engine.io's and python-socketio's state, uvicorn's protocol, asyncio handles): at
1,000 sockets one stalls the event loop for about 100 ms, every delivery and request waiting
(bench/RESULTS.md section 13). CPython runs one whenever the objects promoted since the last
outnumber a quarter of the older ones, which is what a burst of connections does, so a
reconnect storm brought several, each longer as more sockets were back.

Sockets live for minutes to hours. After every FREEZE_AFTER_JOINS sockets that join, the young
generations are collected and what is left is frozen (`gc.freeze()`: constant time, it moves
the generations' lists into the permanent one, which no collection walks), so later full
collections walk only what is newer. A frozen object that becomes garbage in a cycle (the state
of a socket that has since left) is not reclaimed while frozen: every REFREEZE_SECONDS the
policy thaws everything, collects once and freezes again, one full collection at a known rhythm
instead of several at the worst time.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import Final

from server.background import cancel_and_wait
from server.metrics import GC_FREEZES

logger = logging.getLogger(__name__)

FREEZE_AFTER_JOINS: Final = 64
REFREEZE_SECONDS: Final = 600.0


class CollectorPolicy:
    def __init__(
        self,
        *,
        freeze_after_joins: int = FREEZE_AFTER_JOINS,
        refreeze_seconds: float = REFREEZE_SECONDS,
    ) -> None:
        self._freeze_after_joins = freeze_after_joins
        self._refreeze_seconds = refreeze_seconds
        self._joins = 0
        self._task: asyncio.Task[None] | None = None

    def socket_joined(self) -> None:
        self._joins += 1
        if self._joins >= self._freeze_after_joins:
            self._joins = 0
            # The young generations first: what the handshakes left in cycles is freed now
            # (a young collection walks only young objects), not frozen for ten minutes.
            gc.collect(1)
            gc.freeze()
            GC_FREEZES.labels(reason="joins").inc()

    def refreeze(self) -> int:
        """Thaw, collect everything once, freeze what is left: the objects collected."""
        started = time.perf_counter()
        gc.unfreeze()
        collected = gc.collect()
        gc.freeze()
        GC_FREEZES.labels(reason="refreeze").inc()
        logger.info(
            "action=gc_refreeze collected=%d frozen=%d ms=%.1f",
            collected,
            gc.get_freeze_count(),
            (time.perf_counter() - started) * 1000,
        )
        return collected

    def start(self) -> None:
        self._task = asyncio.create_task(self._refreeze_forever(), name="gc-refreeze")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _refreeze_forever(self) -> None:
        while True:
            await asyncio.sleep(self._refreeze_seconds)
            self.refreeze()
