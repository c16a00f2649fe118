"""Realtime fixtures: one real server per test module; clients closed after each test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from tests.realtime.harness import RecordingClient, ServerProcess, start_server


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = start_server(database_url, tmp_path_factory.mktemp("server"))
    try:
        yield process
    finally:
        process.terminate()


@pytest.fixture(scope="module")
def second_server(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """Another server process on the same database, for what must hold across processes."""
    process = start_server(database_url, tmp_path_factory.mktemp("second"))
    try:
        yield process
    finally:
        process.terminate()


@pytest.fixture
async def new_client() -> AsyncIterator[Callable[[], RecordingClient]]:
    """Makes recording clients; every one is disconnected when the test ends."""
    made: list[RecordingClient] = []

    def make() -> RecordingClient:
        client = RecordingClient()
        made.append(client)
        return client

    try:
        yield make
    finally:
        for client in made:
            await client.close()


ConnectedClient = Callable[..., Awaitable[RecordingClient]]
