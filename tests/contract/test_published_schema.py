"""GET /graphql/schema.graphql serves the SDL file the server runs, where introspection is on."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import httpx
import pytest

from server.app import create_app
from server.graphql import SCHEMA_PATH
from server.settings import Settings

BASE = Settings(
    app_env="development",
    host="127.0.0.1",
    port=0,
    database_url="postgresql://unused",
    jwt_secret="published-schema-tests-secret-long-enough-for-hs256",
    jwt_expires_in_seconds=3600,
    cors_origins=("http://localhost:3000",),
)


async def client_for(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    # Routes only: these requests touch neither the pool nor the lifespan.
    app = create_app(settings, "postgresql://unused")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
async def development() -> AsyncIterator[httpx.AsyncClient]:
    async for client in client_for(BASE):
        yield client


async def test_the_sdl_is_served_as_the_file_it_is(development: httpx.AsyncClient) -> None:
    response = await development.get("/graphql/schema.graphql")
    assert response.status_code == 200
    assert response.content == SCHEMA_PATH.read_bytes()
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_the_sdl_route_is_exact(development: httpx.AsyncClient) -> None:
    assert (await development.get("/graphql/other.graphql")).status_code == 404
    assert (await development.post("/graphql/schema.graphql")).status_code == 405


@pytest.mark.parametrize(
    ("serve_schema", "status"), [(None, 404), (False, 404), (True, 200)], ids=str
)
async def test_outside_development_the_sdl_is_served_only_when_serve_schema_says_so(
    serve_schema: bool | None, status: int
) -> None:
    settings = dataclasses.replace(BASE, app_env="production", serve_schema=serve_schema)
    async for client in client_for(settings):
        assert (await client.get("/graphql/schema.graphql")).status_code == status


async def test_serve_schema_false_hides_it_in_development_too() -> None:
    async for client in client_for(dataclasses.replace(BASE, serve_schema=False)):
        assert (await client.get("/graphql/schema.graphql")).status_code == 404
