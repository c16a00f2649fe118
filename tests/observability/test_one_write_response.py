"""Each HTTP response leaves in one transport write (server/request_context.py), through uvicorn's
real HTTP protocols; and when uvicorn's request cycle is not what the trick needs, the process
says so at start-up and takes uvicorn's two writes instead."""

from __future__ import annotations

import asyncio
import types
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from prometheus_client import REGISTRY
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from server import request_context
from server.request_context import RequestIdMiddleware, check_one_write, one_write_problems

BODY = b'{"data":{"ok":true}}'


async def tiny_app(scope: Scope, receive: Receive, send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(BODY)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": BODY})


class RecordingTransport(asyncio.Transport):
    """What uvicorn's protocol writes, call by call (a unit test: no socket)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.body_written = asyncio.Event()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))
        if BODY in b"".join(self.writes):
            self.body_written.set()

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass


async def writes_of_one_response(protocol_class: type[Any], app: Any) -> list[bytes]:
    config = uvicorn.Config(app=app, lifespan="off", log_level="warning", access_log=False)
    config.load()
    protocol = protocol_class(config=config, server_state=ServerState(), app_state={})
    transport = RecordingTransport()
    protocol.connection_made(transport)
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n")
    await asyncio.wait_for(transport.body_written.wait(), 5)
    protocol.connection_lost(None)
    return [write for write in transport.writes if write]  # h11 ends a message with b""


@pytest.fixture
def one_write_checked() -> Iterator[None]:
    """The switch and its gauge as start-up leaves them, whatever a test did to them (listed
    before monkeypatch, it checks again after monkeypatch's changes are undone)."""
    yield
    check_one_write()


def gauge() -> float | None:
    return REGISTRY.get_sample_value("crm_http_one_write_enabled")


@pytest.mark.parametrize("protocol_class", [HttpToolsProtocol, H11Protocol])
async def test_head_and_body_leave_in_one_write_with_the_request_id(
    protocol_class: type[Any], one_write_checked: None
) -> None:
    assert one_write_problems() == []
    assert check_one_write() is True
    assert gauge() == 1

    writes = await writes_of_one_response(protocol_class, RequestIdMiddleware(tiny_app))

    assert len(writes) == 1, writes
    head, _, body = writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"x-request-id: " in head.lower()
    assert body == BODY


@pytest.mark.parametrize("protocol_class", [HttpToolsProtocol, H11Protocol])
async def test_without_the_middleware_uvicorn_writes_head_and_body_apart(
    protocol_class: type[Any],
) -> None:
    """What the trick saves: the same response, uvicorn alone, is two writes."""
    writes = await writes_of_one_response(protocol_class, tiny_app)
    assert len(writes) == 2, writes
    assert writes[1] == BODY


async def test_a_changed_request_cycle_is_named_and_turns_the_trick_off_loudly(
    one_write_checked: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class WritesLines:
        def __init__(self, transport: Any) -> None:
            self.transport = transport

        async def send(self, message: Any) -> None:
            self.transport.writelines([b"head", b"body"])

    changed = types.ModuleType("uvicorn.protocols.http.changed_impl")
    changed.RequestResponseCycle = WritesLines  # type: ignore[attr-defined]
    monkeypatch.setitem(__import__("sys").modules, changed.__name__, changed)
    monkeypatch.setattr(
        request_context,
        "UVICORN_HTTP_MODULES",
        (*request_context.UVICORN_HTTP_MODULES, changed.__name__),
    )

    assert one_write_problems() == [
        "uvicorn.protocols.http.changed_impl.RequestResponseCycle.send no longer calls write alone"
    ]
    with caplog.at_level("WARNING", logger="server.request_context"):
        assert check_one_write() is False
    assert gauge() == 0
    assert "action=http_one_write enabled=false" in caplog.text
    # Responses still go out, in uvicorn's own two writes.
    writes = await writes_of_one_response(HttpToolsProtocol, RequestIdMiddleware(tiny_app))
    assert len(writes) == 2, writes
    assert writes[1] == BODY
