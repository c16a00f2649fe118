"""User accounts outside GraphQL: the create-user command and the development sign-in."""

from __future__ import annotations

import logging

import psycopg
from psycopg.rows import dict_row

from server.auth import hash_password
from server.db import Connection, translated_errors
from server.errors import BadInput
from server.settings import Settings
from server.store.users import UserRow, user_insert, user_set_password

logger = logging.getLogger(__name__)

DEVELOPMENT_EMAIL = "test@example.com"
DEVELOPMENT_PASSWORD = "password"  # noqa: S105 - the documented development sign-in
MIN_PASSWORD_LENGTH = 8


def normalized_email(email: str) -> str:
    text = email.strip().lower()
    local, _, domain = text.partition("@")
    if not local or not domain or any(ch.isspace() for ch in text):
        raise BadInput(f"{email!r} is not an email address")
    return text


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise BadInput(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")


async def _connect(database_url: str) -> Connection:
    return await psycopg.AsyncConnection.connect(database_url, row_factory=dict_row)


async def create_user(
    database_url: str, *, email: str, password: str, reset_password: bool = False
) -> UserRow:
    """A new user, or with `reset_password` an existing one with a new password.

    BadInput when the email is taken (or, resetting, unknown) or the password too short.
    """
    address = normalized_email(email)
    check_password(password)
    password_hash = hash_password(password)
    with translated_errors():
        async with await _connect(database_url) as conn:
            if reset_password:
                user = await user_set_password(conn, email=address, password_hash=password_hash)
                missing = f"no user has the email {address}"
            else:
                user = await user_insert(conn, email=address, password_hash=password_hash)
                missing = f"a user with the email {address} already exists"
    if user is None:
        raise BadInput(missing)
    return user


def creates_development_user(settings: Settings) -> bool:
    """Only on the embedded development database: never with DATABASE_URL, never in production."""
    return settings.uses_embedded_database and settings.is_development


async def ensure_development_user(database_url: str) -> bool:
    """Create test@example.com / password if missing; True when it was created (and logged)."""
    with translated_errors():
        async with await _connect(database_url) as conn:
            created = await user_insert(
                conn, email=DEVELOPMENT_EMAIL, password_hash=hash_password(DEVELOPMENT_PASSWORD)
            )
    if created is not None:
        logger.warning(
            "action=development_user_created email=%s detail=sign in with the password "
            "'password'; this happens only on the embedded development database",
            DEVELOPMENT_EMAIL,
        )
    return created is not None
