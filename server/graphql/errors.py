"""What clients see of an error: a message and `extensions.code`, never internals.

Domain errors (server/errors.py) carry messages written for clients and pass as they are.
GraphQL's own errors (syntax, validation, variable coercion such as an Int that overflows 32 bits)
are the caller's to fix, so they pass too, coded BAD_USER_INPUT. Anything else (a database
failure, a bug) becomes a generic message with the request id, in development too: the detail
goes to the server's log under that id, where whoever runs the server can find it.
"""

from __future__ import annotations

import logging
from typing import Any

from graphql import GraphQLError

from server.errors import DatabaseUnavailable, DomainError
from server.request_context import request_id_var

logger = logging.getLogger(__name__)

INTERNAL_MESSAGE = "internal server error"
UNAVAILABLE_MESSAGE = "the service is temporarily unavailable"


def format_error(error: GraphQLError, debug: bool = False) -> dict[str, Any]:
    """ariadne's error_formatter; `debug` is ignored on purpose (no stack traces to clients)."""
    original = error.original_error
    formatted: dict[str, Any] = {"message": error.message}
    if error.locations is not None:
        formatted["locations"] = [location._asdict() for location in error.locations]
    if error.path is not None:
        formatted["path"] = error.path
    request_id = request_id_var.get()

    if isinstance(original, DatabaseUnavailable):
        logger.error(
            "action=graphql_error kind=database request_id=%s path=%s",
            request_id,
            error.path,
            exc_info=original,
        )
        formatted["message"] = UNAVAILABLE_MESSAGE
        formatted["extensions"] = {"code": original.code, "requestId": request_id}
    elif isinstance(original, DomainError):
        logger.info(
            "action=graphql_error code=%s request_id=%s path=%s",
            original.code,
            request_id,
            error.path,
        )
        formatted["message"] = str(original)
        formatted["extensions"] = original.extensions()
    elif original is None or _is_input_coercion(error, original):
        code = (error.extensions or {}).get("code", "BAD_USER_INPUT")
        formatted["extensions"] = {"code": code}
    else:
        logger.error(
            "action=graphql_error kind=unexpected request_id=%s path=%s",
            request_id,
            error.path,
            exc_info=original,
        )
        formatted["message"] = INTERNAL_MESSAGE
        formatted["extensions"] = {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id}
    return formatted


def _is_input_coercion(error: GraphQLError, original: Exception) -> bool:
    """Variables that fail their type (a 64-bit number for Int, say) fail before execution, so
    the error has no path; the wrapped error is GraphQL's own or a scalar parser's."""
    return isinstance(original, GraphQLError) or (
        error.path is None and isinstance(original, (ValueError, TypeError))
    )


class SilentLogger(logging.LoggerAdapter[logging.Logger]):
    """Given to ariadne, which would otherwise log every error with a stack trace, wrong input
    included; `format_error` logs each error once instead, at the level it deserves."""

    def __init__(self) -> None:
        super().__init__(logging.getLogger("ariadne"), {})

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        return None
