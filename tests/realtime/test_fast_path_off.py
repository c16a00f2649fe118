"""The direct-write fan-out fails loudly: a library that changed turns it off with a warning and
a metric, and every broadcast still arrives, in order, through python-socketio's own path."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import REGISTRY

from server.realtime import fanout
from server.realtime.fanout import FanoutManager
from server.realtime.sio import ROOM
from tests.realtime.test_fanout import InProcessServer, serving_in_process, turns

EVENTS = 20


def deliveries(path: str) -> float:
    return REGISTRY.get_sample_value("crm_socket_deliveries_total", {"path": path}) or 0.0


def fast_path_gauge() -> float | None:
    return REGISTRY.get_sample_value("crm_socket_fast_path_enabled")


async def broadcast_and_check_order(server: InProcessServer, transports: list[list[str]]) -> None:
    clients = [await server.connect(t) for t in transports]
    for n in range(EVENTS):
        await server.gateway.sio.emit("n", n, to=ROOM)
        await turns(n % 3)
    for client in clients:
        await client.wait_until(lambda c=client: len(c.named("n")) == EVENTS)
        assert client.named("n") == list(range(EVENTS))


async def test_a_library_attribute_missing_at_start_up_turns_the_fast_path_off_loudly(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # What an upgrade of uvicorn that renamed an attribute the fast path reads looks like.
    monkeypatch.setattr(
        fanout, "_PROTOCOL_ATTRIBUTES", (*fanout._PROTOCOL_ATTRIBUTES, "renamed_in_an_upgrade")
    )
    direct, library = deliveries("direct"), deliveries("library")
    with caplog.at_level(logging.WARNING, logger="server.realtime.fanout"):
        async with serving_in_process() as server:
            assert fast_path_gauge() == 0
            manager: FanoutManager = server.manager
            assert not manager.fast_path

            await broadcast_and_check_order(server, [["websocket"], ["websocket"], ["polling"]])

            assert (manager.direct_writes, manager.queued_writes) == (0, 3 * EVENTS)
    assert deliveries("direct") == direct
    assert deliveries("library") == library + 3 * EVENTS
    (warning,) = [r for r in caplog.records if "action=socket_fast_path" in r.getMessage()]
    assert "enabled=false" in warning.getMessage()
    assert "renamed_in_an_upgrade" in warning.getMessage()


async def test_a_protocol_found_lacking_at_its_first_write_turns_the_fast_path_off_loudly(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving_in_process() as server:
        manager = server.manager
        assert manager.fast_path
        assert fast_path_gauge() == 1
        # The start-up check passed; the first socket's protocol turns out to lack one.
        monkeypatch.setattr(fanout, "_PROTOCOL_ATTRIBUTES", ("renamed_in_an_upgrade",))
        library = deliveries("library")
        with caplog.at_level(logging.WARNING, logger="server.realtime.fanout"):
            await broadcast_and_check_order(server, [["websocket"], ["websocket"]])

        assert not manager.fast_path
        assert fast_path_gauge() == 0
        assert (manager.direct_writes, manager.queued_writes) == (0, 2 * EVENTS)
        assert deliveries("library") == library + 2 * EVENTS
    assert any("enabled=false" in r.getMessage() for r in caplog.records)


async def test_the_deliveries_of_each_path_are_counted() -> None:
    async with serving_in_process() as server:
        direct, library = deliveries("direct"), deliveries("library")

        await broadcast_and_check_order(server, [["websocket"], ["polling"]])

    assert deliveries("direct") - direct == EVENTS
    assert deliveries("library") - library == EVENTS
