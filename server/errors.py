"""Domain errors. Each maps to one GraphQL `extensions.code`; none carries internal detail."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code = "INTERNAL_SERVER_ERROR"

    def extensions(self) -> dict[str, Any]:
        """What a client sees besides the message: the code, and what it may act on."""
        return {"code": self.code}


class BadInput(DomainError):
    code = "BAD_USER_INPUT"


class NotFound(DomainError):
    code = "NOT_FOUND"


class Unauthenticated(DomainError):
    code = "UNAUTHENTICATED"


class DatabaseUnavailable(DomainError):
    """The database cannot be reached or failed; the message is generic on purpose."""

    code = "SERVICE_UNAVAILABLE"


class RetryLater(DomainError):
    """An error the client answers by trying again in `retry_after` whole seconds."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def extensions(self) -> dict[str, Any]:
        return {"code": self.code, "retryAfter": self.retry_after}


class RateLimited(RetryLater):
    """Too many attempts; `retry_after` whole seconds until the next one may be tried."""

    code = "RATE_LIMITED"
