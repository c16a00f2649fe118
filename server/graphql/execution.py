"""graphql-core's executor with a cheaper "is this awaitable?" test (ariadne's
`execution_context_class`).

The executor asks it of every resolved value: 450 times for a page of 50 notifications with
nine fields. graphql-core's test tries isinstance twice and then hasattr(value, "__await__");
nearly every value here is a plain str, int, bool, None, dict or list, which one type lookup
answers (bench/RESULTS.md, getNotifications profile).
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from typing import Any, TypeGuard
from uuid import UUID

from graphql import Executor
from graphql.pyutils import is_awaitable as library_is_awaitable

_PLAIN = frozenset({str, int, bool, float, type(None), dict, list, tuple, datetime, UUID})


def is_awaitable(value: Any) -> TypeGuard[Awaitable[Any]]:
    return type(value) not in _PLAIN and library_is_awaitable(value)


class FastExecutor(Executor[Any]):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.is_awaitable = is_awaitable  # the constructor sets the library's per instance
