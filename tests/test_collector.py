"""The collector policy: joined sockets' objects frozen, frozen garbage reclaimed by a refreeze."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from server.collector import CollectorPolicy


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture(autouse=True)
def thawed() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # leave the test process as it found it


def test_every_n_joins_freeze_what_exists_and_a_refreeze_reclaims_frozen_cycles() -> None:
    policy = CollectorPolicy(freeze_after_joins=3, refreeze_seconds=3600)
    first, second = Node(), Node()
    first.other, second.other = second, first  # a cycle: only the collector can free it
    gone = weakref.ref(first)

    policy.socket_joined()
    policy.socket_joined()
    assert gc.get_freeze_count() == 0  # not yet: three joins make a freeze
    policy.socket_joined()
    frozen = gc.get_freeze_count()
    assert frozen > 0

    del first, second  # the socket left: its state is garbage, but frozen
    gc.collect()
    assert gone() is not None  # no collection walks frozen objects

    assert policy.refreeze() >= 2
    assert gone() is None
    assert gc.get_freeze_count() > 0  # what is alive is frozen again


async def test_the_refreeze_runs_on_its_own_rhythm_until_stopped() -> None:
    policy = CollectorPolicy(freeze_after_joins=1_000, refreeze_seconds=0.01)
    policy.start()
    try:
        async with asyncio.timeout(5):
            while gc.get_freeze_count() == 0:  # noqa: ASYNC110 - gc has no event to wait on
                await asyncio.sleep(0.01)
    finally:
        await policy.stop()
    assert gc.get_freeze_count() > 0
