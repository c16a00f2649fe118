"""GraphQL tests: the real app (lifespan included) on the module's database, over httpx.

`api` talks to the app through httpx's ASGITransport: real HTTP requests and responses, the real
pool and database, no server socket. Tests that write use `committed_db`, which empties the tables
afterwards, so no test depends on another's leftovers or order.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import DictRow, dict_row

from server.app import create_app
from server.auth import hash_password, issue_token
from server.settings import Settings
from tests.conftest import truncate_app_tables

SECRET = "graphql-tests-secret-that-is-long-enough-for-hs256"
PASSWORD = "correct horse battery staple"
STARTUP_TIMEOUT = 30.0


def settings_for(database_url: str, *, app_env: str = "development") -> Settings:
    return Settings(
        app_env="development" if app_env == "development" else "production",
        host="127.0.0.1",
        port=0,
        database_url=database_url,
        jwt_secret=SECRET,
        jwt_expires_in_seconds=3600,
        cors_origins=("http://localhost:3000",),
    )


@asynccontextmanager
async def lifespan_running(app: Any) -> AsyncIterator[None]:
    """Drive the ASGI lifespan protocol, as uvicorn does, around the block."""
    to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
    task = asyncio.ensure_future(app(scope, to_app.get, from_app.put))
    await to_app.put({"type": "lifespan.startup"})
    started = await asyncio.wait_for(from_app.get(), STARTUP_TIMEOUT)
    if started["type"] != "lifespan.startup.complete":
        task.cancel()
        raise RuntimeError(f"app failed to start: {started}")
    try:
        yield
    finally:
        await to_app.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(from_app.get(), STARTUP_TIMEOUT)
        await asyncio.wait_for(task, STARTUP_TIMEOUT)


@dataclass
class GraphQLResult:
    status: int
    body: dict[str, Any]
    headers: httpx.Headers

    @property
    def data(self) -> Any:
        return self.body.get("data")

    @property
    def errors(self) -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = self.body.get("errors") or []
        return errors

    @property
    def codes(self) -> list[str]:
        return [error.get("extensions", {}).get("code") for error in self.errors]


@dataclass
class Api:
    client: httpx.AsyncClient
    token: str | None = None

    async def gql(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> GraphQLResult:
        headers = {}
        bearer = token if token is not None else self.token
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        response = await self.client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        return GraphQLResult(response.status_code, response.json(), response.headers)

    async def ok(self, query: str, variables: dict[str, Any] | None = None) -> Any:
        """The data of a request that must succeed."""
        result = await self.gql(query, variables)
        assert result.errors == [], result.errors
        assert result.status == 200
        return result.data


@asynccontextmanager
async def running_api(settings: Settings) -> AsyncIterator[Api]:
    assert settings.database_url is not None
    app = create_app(settings, settings.database_url)
    async with lifespan_running(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Api(client)


@pytest.fixture(scope="module")
async def anonymous_api(database_url: str) -> AsyncIterator[Api]:
    """The development app of this module's database, shared by its tests; no token."""
    async with running_api(settings_for(database_url)) as api:
        yield api


@pytest.fixture
async def committed_db(database_url: str) -> AsyncIterator[psycopg.Connection[DictRow]]:
    """tests/conftest.py's committed_db, but the TRUNCATE runs in a thread.

    The app shares this event loop, and its realtime listener reads notifications in short
    transactions when our writes announce them. A TRUNCATE that waited for those on the loop's own
    thread would block the loop they need to finish: a deadlock until the test timeout.
    """
    with psycopg.connect(database_url, row_factory=dict_row, autocommit=True) as conn:
        try:
            yield conn
        finally:
            await asyncio.to_thread(truncate_app_tables, database_url)


@cache
def password_hash() -> str:
    return hash_password(PASSWORD)  # argon2 is slow on purpose: hash once per session


@dataclass(frozen=True)
class User:
    id: str
    email: str
    password: str
    token: str


def create_user(conn: psycopg.Connection[DictRow], email: str = "ada@example.com") -> User:
    row = conn.execute(
        """INSERT INTO users (email, "passwordHash") VALUES (%s, %s) RETURNING id, email""",
        (email, password_hash()),
    ).fetchone()
    assert row is not None
    token = issue_token(
        user_id=str(row["id"]), email=row["email"], secret=SECRET, expires_in_seconds=3600
    )
    return User(str(row["id"]), row["email"], PASSWORD, token)


@pytest.fixture
def user(committed_db: psycopg.Connection[DictRow]) -> User:
    """A committed user (removed with the other rows when the test ends)."""
    return create_user(committed_db)


@pytest.fixture
def api(anonymous_api: Api, user: User) -> Api:
    """The shared app, signed in as `user`."""
    return dataclasses.replace(anonymous_api, token=user.token)
