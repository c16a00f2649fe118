"""The feed client's tests: the built package in Node, against real server processes."""

from __future__ import annotations

import pytest

from tests.client.build import build_client

# One real server per test module, the same fixture the realtime tests use.
from tests.realtime.conftest import server as server  # a fixture: pytest finds it by name


@pytest.fixture(scope="module", autouse=True)
def built_client() -> None:
    build_client()
