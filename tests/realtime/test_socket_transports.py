"""SOCKETIO_TRANSPORTS: websocket alone, for several processes behind one port."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from server.app import create_app
from server.settings import SettingsError, load_settings
from tests.realtime.harness import RecordingClient, start_server, token

NewClient = Callable[[], RecordingClient]
POLLING_HANDSHAKE = "/socket.io/?EIO=4&transport=polling"


@pytest.mark.parametrize(("transports", "status"), [(None, 200), ("websocket", 400)])
async def test_a_polling_handshake_is_refused_when_only_websocket_is_allowed(
    transports: str | None, status: int
) -> None:
    settings = load_settings(
        {
            "APP_ENV": "production",
            "JWT_SECRET": "transports-tests-secret-long-enough-hs256",
            **({"SOCKETIO_TRANSPORTS": transports} if transports else {}),
        }
    )
    app = create_app(settings, "postgresql://unused")  # the handshake needs no database
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get(POLLING_HANDSHAKE)

    assert response.status_code == status


@pytest.mark.parametrize("text", ["websockets", "polling,carrier-pigeon", ","])
def test_an_unknown_transport_is_a_configuration_error(text: str) -> None:
    with pytest.raises(SettingsError, match="SOCKETIO_TRANSPORTS"):
        load_settings({"APP_ENV": "development", "SOCKETIO_TRANSPORTS": text})


async def test_a_websocket_client_connects_and_receives_events_when_only_websocket_is_allowed(
    database_url: str, tmp_path: Path, new_client: NewClient
) -> None:
    server = start_server(database_url, tmp_path, extra_env={"SOCKETIO_TRANSPORTS": "websocket"})
    client = new_client()
    try:
        await client.connect(server.url, auth={"token": token()}, transports=["websocket"])
        assert (await client.next_event("notifications:unread-count"))["count"] >= 0
        async with httpx.AsyncClient(base_url=server.url, timeout=5.0) as http:
            assert (await http.get(POLLING_HANDSHAKE)).status_code == 400
    finally:
        await client.close()
        server.terminate()
