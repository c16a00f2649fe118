"""Per-request state for resolvers: settings, a way to the database, the caller, the loaders."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiodataloader import DataLoader
from graphql import GraphQLResolveInfo
from psycopg.pq import TransactionStatus
from starlette.requests import Request

from server import db
from server.auth import Claims, bearer_token, decode_token
from server.bounded_cache import BoundedCache
from server.errors import DomainError, Unauthenticated
from server.lifespan import AppState
from server.request_context import request_id_var
from server.revocation import Revocations
from server.settings import Settings
from server.store.leads import LeadRow, leads_by_ids
from server.throttle import LoginThrottle


@dataclass
class RequestContext:
    request: Request
    settings: Settings
    pool: db.Pool
    request_id: str
    login_throttle: LoginThrottle
    revocations: Revocations | None = None
    lead_loader: DataLoader[int, LeadRow | None] = field(init=False)
    _claims: Claims | None = field(default=None, init=False)
    _refusal: DomainError | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        # One loader per request: its cache never outlives the request, so no stale reads.
        self.lead_loader = DataLoader(self._load_leads)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[db.Connection]:
        """A pooled connection for one unit of work, with driver errors translated."""
        async with db.connection(self.pool) as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def statement(self) -> AsyncIterator[db.Connection]:
        """A pooled connection for work that is ONE statement, in autocommit: the statement is
        its own transaction (atomic, triggers and commit stamp included, as in `connection()`),
        in one round trip instead of three (BEGIN, the statement, COMMIT). Driver errors are
        translated the same way.

        Behind PgBouncer in transaction mode (DATABASE_POOL_MODE) the pool hands out a connection
        whose transaction is already open, holding this unit's settings: the statement then runs
        in it and is committed on the way out, as in `connection()`."""
        with db.translated_errors():
            async with self.pool.connection() as conn:
                if conn.info.transaction_status != TransactionStatus.IDLE:
                    yield conn
                    return
                await conn.set_autocommit(True)
                try:
                    yield conn
                finally:
                    await _back_to_transactions(conn)

    @property
    def client_address(self) -> str:
        """The peer's address; behind a proxy, uvicorn puts the forwarded one here when the
        proxy is trusted (--forwarded-allow-ips), so clients cannot choose it themselves."""
        client = self.request.client
        return client.host if client is not None else "unknown"

    async def authenticate(self) -> None:
        """Verify the token, if any, before execution: signature and expiry, then whether its
        user still exists and has not changed password since (server/revocation.py; usually a
        cache hit, no query). A failure is kept, not raised: only the fields that need a
        caller raise it (`claims()`), so `login` works whatever header comes with it."""
        token = bearer_token(self.request.headers.get("authorization"))
        if token is None:
            return
        try:
            claims = verified_claims(token, self.settings.jwt_secret)
            if self.revocations is not None:
                await self.revocations.check(claims)
        except DomainError as exc:
            self._refusal = exc
            return
        self._claims = claims

    def claims(self) -> Claims:
        """The caller's verified token claims, or Unauthenticated (DatabaseUnavailable when the
        database could not say whether the token was revoked)."""
        if self._claims is None:
            if self._refusal is not None:
                raise self._refusal
            raise Unauthenticated("authentication required")
        return self._claims

    async def _load_leads(self, ids: list[int]) -> list[LeadRow | None]:
        async with self.statement() as conn:
            rows = await leads_by_ids(conn, ids=list(ids))
        by_id = {row["id"]: row for row in rows}
        return [by_id.get(lead_id) for lead_id in ids]


async def _back_to_transactions(conn: db.Connection) -> None:
    """Pooled connections open transactions (`connection()` relies on it): a connection that
    cannot be switched back is closed, and the pool replaces it."""
    try:
        await conn.set_autocommit(False)
    except Exception:
        await conn.close()


# Tokens whose signature and claims were verified, per secret: a client sends the same token
# with every request, and verifying it again costs more than the unread count's query. Only
# the expiry can change with time (iat and nbf only become more valid), so a hit checks it as
# PyJWT does. Bounded; a token never verified is never stored.
VERIFIED_TOKENS_MAX = 1024
_verified: BoundedCache[tuple[str, str], Claims] = BoundedCache(VERIFIED_TOKENS_MAX)


def verified_claims(token: str, secret: str) -> Claims:
    """decode_token's answer, remembered for tokens it accepted."""
    key = (secret, token)
    claims = _verified.get(key)
    if claims is not None and claims["exp"] > time.time():
        return claims.copy()
    _verified.pop(key)
    claims = decode_token(token, secret)  # raises Unauthenticated
    _verified.put(key, claims.copy())
    return claims


async def context_for_request(request: Request, _data: Any) -> RequestContext:
    state: AppState = request.app.state.crm
    context = RequestContext(
        request=request,
        settings=state.settings,
        pool=state.pool,
        request_id=request_id_var.get(),
        login_throttle=state.login_throttle,
        revocations=state.revocations,
    )
    await context.authenticate()
    return context


# What resolvers receive as `info`: its `.context` is a RequestContext.
Info = GraphQLResolveInfo[RequestContext]
