"""The page's routes: served in development, elsewhere only with SERVE_UI=true; locked down."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import httpx
import pytest

from server.app import create_app
from server.settings import PROJECT_ROOT, Settings, SettingsError, load_settings
from server.ui import CLIENT_DIST, SOCKET_IO_CLIENT

BASE = Settings(
    app_env="development",
    host="127.0.0.1",
    port=0,
    database_url="postgresql://unused",
    jwt_secret="page-route-tests-secret-that-is-long-enough-for-hs256",
    jwt_expires_in_seconds=3600,
    cors_origins=("http://localhost:3000",),
)
PAGE = ("/", "/ui/app.js", "/ui/app.css", "/ui/socket.io.esm.min.js", "/ui/client/store.js")


async def client_for(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, "postgresql://unused")  # routes only: no lifespan, no pool
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
async def development() -> AsyncIterator[httpx.AsyncClient]:
    async for client in client_for(BASE):
        yield client


async def test_the_page_and_its_files_are_served_in_development(
    development: httpx.AsyncClient,
) -> None:
    types = {
        "/": "text/html",
        "/ui/app.js": "text/javascript",
        "/ui/app.css": "text/css",
        "/ui/socket.io.esm.min.js": "text/javascript",
        "/ui/client/store.js": "text/javascript",
        "/ui/client/contract/documents.js": "text/javascript",
    }
    for path, media_type in types.items():
        response = await development.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith(media_type), path
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert response.headers["x-content-type-options"] == "nosniff"


async def test_the_socket_io_client_is_the_one_node_modules_pins(
    development: httpx.AsyncClient,
) -> None:
    response = await development.get("/ui/socket.io.esm.min.js")
    assert response.content == SOCKET_IO_CLIENT.read_bytes()
    assert SOCKET_IO_CLIENT.is_relative_to(PROJECT_ROOT / "node_modules")


async def test_the_feed_client_is_the_package_built_in_client_dist(
    development: httpx.AsyncClient,
) -> None:
    response = await development.get("/ui/client/store.js")
    assert response.content == (CLIENT_DIST / "store.js").read_bytes()
    page = (await development.get("/ui/app.js")).text
    assert 'from "/ui/client/store.js"' in page


@pytest.mark.parametrize(
    "path",
    [
        "/ui/client/",
        "/ui/client/store.d.ts",
        "/ui/client/../package.json",
        "/ui/client/%2e%2e/package.json",
        "/ui/client/contract/graphql.ts",
        "/ui/client/missing.js",
        "/ui/client/a/b/c.js",
    ],
)
async def test_only_the_built_modules_are_reachable_under_ui_client(
    development: httpx.AsyncClient, path: str
) -> None:
    assert (await development.get(path)).status_code == 404


async def test_the_page_loads_nothing_from_elsewhere_and_has_no_inline_code(
    development: httpx.AsyncClient,
) -> None:
    html = (await development.get("/")).text
    assert "http://" not in html
    assert "https://" not in html
    assert "<script>" not in html
    assert "<style" not in html
    assert " on" + "click=" not in html.lower()
    script = (await development.get("/ui/app.js")).text
    assert "innerHTML" not in script
    assert "insertAdjacentHTML" not in script


@pytest.mark.parametrize(
    "path", ["/ui/", "/ui/../server/settings.py", "/ui/index.html", "/ui/socket.io.min.js"]
)
async def test_nothing_else_under_ui_is_reachable(
    development: httpx.AsyncClient, path: str
) -> None:
    assert (await development.get(path)).status_code == 404


@pytest.mark.parametrize(("serve_ui", "status"), [(None, 404), (False, 404), (True, 200)], ids=str)
async def test_outside_development_the_page_is_served_only_when_serve_ui_says_so(
    serve_ui: bool | None, status: int
) -> None:
    settings = dataclasses.replace(BASE, app_env="production", serve_ui=serve_ui)
    async for client in client_for(settings):
        for path in PAGE:
            assert (await client.get(path)).status_code == status, path


def test_serve_ui_and_serve_schema_are_read_from_the_environment() -> None:
    env = {"DATABASE_URL": "postgresql://x", "JWT_SECRET": "s" * 40}
    assert load_settings(env).ui_enabled is False
    assert load_settings({**env, "SERVE_UI": "true"}).ui_enabled is True
    assert load_settings({**env, "SERVE_SCHEMA": "1"}).schema_published is True
    assert load_settings({**env, "APP_ENV": "development"}).ui_enabled is True
    assert load_settings({**env, "APP_ENV": "development", "SERVE_UI": "no"}).ui_enabled is False
    with pytest.raises(SettingsError, match="SERVE_UI"):
        load_settings({**env, "SERVE_UI": "maybe"})
