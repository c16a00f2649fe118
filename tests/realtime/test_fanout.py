"""The direct-write broadcast (server/realtime/fanout.py): valid frames, none lost or reordered."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import DictRow
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from server.realtime.fanout import text_frame
from tests.realtime.harness import RecordingClient, start_server, token

LEADS = 40


def parse(frame: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(frame)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        parsed: Frame = done.value
        return parsed
    raise AssertionError("the frame is incomplete")


@pytest.mark.parametrize("length", [0, 1, 125, 126, 65535, 65536, 200_000])
def test_a_text_frame_parses_back_to_its_payload_at_every_length_encoding(length: int) -> None:
    payload = ("é" * length).encode()[:length]
    frame = parse(text_frame(payload))
    assert frame.opcode is Opcode.TEXT
    assert frame.fin
    assert not frame.rsv1
    assert frame.data == payload


async def test_websocket_and_upgraded_clients_get_every_event_once_in_commit_order(
    database_url: str, tmp_path: Path
) -> None:
    server = start_server(database_url, tmp_path)
    clients: list[RecordingClient] = []
    try:
        # Three that can be written to directly, one that came through long-polling (library path).
        for transports in (["websocket"], ["websocket"], ["websocket"], None):
            client = RecordingClient()
            clients.append(client)
            await client.connect(server.url, auth={"token": token()}, transports=transports)
            await client.next_event("notifications:unread-count")
        lead_ids = []
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.row_factory = psycopg.rows.dict_row
            for n in range(LEADS):
                row: DictRow | None = conn.execute(
                    'INSERT INTO leads ("firstName", "lastName") VALUES (%s, %s) RETURNING id',
                    ("Order", str(n)),
                ).fetchone()
                assert row is not None
                lead_ids.append(row["id"])
        for client in clients:
            await client.wait_until(lambda c=client: len(c.named("notification:created")) >= LEADS)
            received = [event["relatedLeadId"] for event in client.named("notification:created")]
            assert received == lead_ids
    finally:
        for client in clients:
            await client.close()
        server.terminate()
    stats = re.search(r"action=socket_writes direct=(\d+) queued=(\d+)", server.log())
    assert stats is not None
    assert int(stats.group(1)) >= 3 * LEADS  # the websocket-only clients were written directly
    assert int(stats.group(2)) >= LEADS  # and the upgraded one went through the library
