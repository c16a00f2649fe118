"""A mutation that PostgreSQL aborted to resolve a deadlock or a serialization conflict is
tried again, a bounded number of times, before it answers SERVICE_UNAVAILABLE.

Only for resolvers whose whole database work is one transaction (every mutation here): the
aborted attempt committed nothing, so running it again cannot apply it twice. The short, jittered
pause lets the transaction that won finish first.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from server.db import is_transient
from server.errors import DatabaseUnavailable

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

ATTEMPTS = 3


def retried_when_aborted(resolver: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    @functools.wraps(resolver)
    async def attempt(*args: P.args, **kwargs: P.kwargs) -> T:
        for number in range(1, ATTEMPTS + 1):
            try:
                return await resolver(*args, **kwargs)
            except DatabaseUnavailable as exc:
                if number == ATTEMPTS or not is_transient(exc):
                    raise
                logger.warning(
                    "action=mutation_retried resolver=%s attempt=%d cause=%s",
                    resolver.__name__,
                    number,
                    type(exc.__cause__).__name__,
                )
                await asyncio.sleep(random.uniform(0.01, 0.05) * number)  # noqa: S311 - jitter
        raise AssertionError("unreachable")

    return attempt
