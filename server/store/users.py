"""Users: look-ups for login and `me`, and the writes of the create-user command."""

from __future__ import annotations

from typing import TypedDict, cast
from uuid import UUID

from server.db import Connection
from server.store._queries import fetch_one


class UserRow(TypedDict):
    id: UUID
    email: str


class UserCredentialsRow(UserRow):
    passwordHash: str


async def user_by_email(conn: Connection, *, email: str) -> UserCredentialsRow | None:
    """Case-insensitive: the SQL lower-cases `email` as the trigger did when storing it."""
    return cast(UserCredentialsRow | None, await fetch_one(conn, "user_by_email", email=email))


async def user_by_id(conn: Connection, *, id: UUID) -> UserRow | None:
    return cast(UserRow | None, await fetch_one(conn, "user_by_id", id=id))


async def user_insert(conn: Connection, *, email: str, password_hash: str) -> UserRow | None:
    """The new user, or None when the email is taken."""
    row = await fetch_one(conn, "user_insert", email=email, password_hash=password_hash)
    return cast(UserRow | None, row)


async def user_set_password(conn: Connection, *, email: str, password_hash: str) -> UserRow | None:
    """The user whose password changed, or None when there is no such user."""
    row = await fetch_one(conn, "user_set_password", email=email, password_hash=password_hash)
    return cast(UserRow | None, row)


class UserTokenStateRow(TypedDict):
    validAfter: int | None


async def user_token_state(conn: Connection, *, id: UUID) -> UserTokenStateRow | None:
    """None when the user is gone; else when their password last changed (whole seconds)."""
    return cast(UserTokenStateRow | None, await fetch_one(conn, "user_token_state", id=id))
