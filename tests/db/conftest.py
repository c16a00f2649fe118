from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.db.listening import Listener


@pytest.fixture
def listener(database_url: str) -> Iterator[Listener]:
    listening = Listener(database_url)
    try:
        yield listening
    finally:
        listening.close()
