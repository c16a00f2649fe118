"""Query.me and Mutation.login."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from ariadne import MutationType, QueryType

from server.auth import issue_token
from server.errors import Unauthenticated
from server.graphql.context import Info, RequestContext
from server.store.users import UserRow, user_by_email, user_by_id

query = QueryType()
mutation = MutationType()

# One message for an unknown email and a wrong password, so neither reveals which accounts exist.
INVALID_CREDENTIALS = "invalid email or password"


@query.field("me")
async def resolve_me(_obj: None, info: Info) -> UserRow:
    ctx: RequestContext = info.context
    claims = ctx.claims()
    try:
        user_id = UUID(claims["sub"])
    except ValueError as exc:
        raise Unauthenticated("invalid or expired token") from exc
    async with ctx.connection() as conn:
        user = await user_by_id(conn, id=user_id)
    if user is None:  # deleted since the token was issued
        raise Unauthenticated("this account no longer exists")
    return user


@mutation.field("login")
async def resolve_login(_obj: None, info: Info, input: dict[str, Any]) -> dict[str, Any]:
    ctx: RequestContext = info.context
    email: str = input["email"]
    password: str = input["password"]
    address = ctx.client_address
    # Before the database and argon2, and counted at once as a failure: a refused attempt costs
    # neither and does not count, and concurrent attempts are counted as they arrive, so a burst
    # gets no more passwords checked than the ceiling allows (server/throttle.py).
    attempt = ctx.login_throttle.reserve(email, address)
    try:
        async with ctx.connection() as conn:
            user = await user_by_email(conn, email=email)
        # Outside the connection block: the pool connection is not held while argon2 works. The
        # gate runs it in a thread, a few at a time, and answers "busy" when too many wait. An
        # unknown email is still checked against a dummy hash, so both failures take the same time.
        password_hash = user["passwordHash"] if user is not None else None
        matches = await ctx.login_throttle.passwords.verify(password_hash, password)
    except BaseException:
        attempt.release()  # no answer on the password: database down, server busy, cancelled
        raise
    if user is None or not matches:
        attempt.failed()
        raise Unauthenticated(INVALID_CREDENTIALS)
    attempt.succeeded()
    token = issue_token(
        user_id=str(user["id"]),
        email=user["email"],
        secret=ctx.settings.jwt_secret,
        expires_in_seconds=ctx.settings.jwt_expires_in_seconds,
    )
    return {"token": token, "user": {"id": user["id"], "email": user["email"]}}
