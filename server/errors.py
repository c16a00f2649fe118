"""Domain errors. Each maps to one GraphQL `extensions.code`; none carries internal detail."""

from __future__ import annotations


class DomainError(Exception):
    code = "INTERNAL_SERVER_ERROR"


class BadInput(DomainError):
    code = "BAD_USER_INPUT"


class NotFound(DomainError):
    code = "NOT_FOUND"


class Unauthenticated(DomainError):
    code = "UNAUTHENTICATED"


class DatabaseUnavailable(DomainError):
    """The database cannot be reached or failed; the message is generic on purpose."""

    code = "SERVICE_UNAVAILABLE"
