"""The feed client's tests: the built package in Node, against real server processes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.client.build import build_client
from tests.realtime.harness import ServerProcess, start_server


@pytest.fixture(scope="module", autouse=True)
def built_client() -> None:
    build_client()


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = start_server(database_url, tmp_path_factory.mktemp("server"))
    try:
        yield process
    finally:
        process.terminate()
