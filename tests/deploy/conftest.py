"""Deployment fixtures: nginx (skipped where it is not installed) and server processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.deploy.nginx import nginx_binary
from tests.realtime.harness import ServerProcess, start_server


@pytest.fixture(scope="session")
def nginx_executable() -> str:
    binary = nginx_binary()
    if binary is None:
        pytest.skip(
            "nginx is not installed: the proxy test runs Debian's nginx "
            "(`apt-get install nginx`; `make test` installs it where apt can)"
        )
    return binary


@pytest.fixture
async def three_servers(database_url: str, tmp_path: Path) -> AsyncIterator[list[ServerProcess]]:
    """Three single-worker `serve` processes on one database, started side by side, metrics on
    (each is scraped directly to see where sockets are)."""
    env = {"METRICS_ENABLED": "true"}
    started = await asyncio.gather(
        *(asyncio.to_thread(start_server, database_url, tmp_path, extra_env=env) for _ in "abc"),
        return_exceptions=True,
    )
    servers = [server for server in started if isinstance(server, ServerProcess)]
    try:
        for outcome in started:
            if isinstance(outcome, BaseException):
                raise outcome
        yield servers
    finally:
        for server in servers:
            server.terminate()
