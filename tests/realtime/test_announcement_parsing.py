"""Parsing tg_notifications__announce payloads (unit tests: no database needed)."""

from __future__ import annotations

from uuid import UUID

import pytest

from server.realtime.events import (
    BulkAnnouncement,
    MalformedAnnouncement,
    RowAnnouncement,
    parse_announcement,
)

ROW_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"


def test_a_one_row_payload_becomes_a_row_announcement() -> None:
    payload = f'{{"op": "update", "count": 1, "seq": 12, "id": "{ROW_ID}"}}'
    assert parse_announcement(payload) == RowAnnouncement(op="update", id=UUID(ROW_ID), seq=12)


def test_a_bulk_payload_becomes_a_bulk_announcement() -> None:
    payload = '{"op": "insert", "count": 100000, "seq": 3, "action": "bulk-create"}'
    assert parse_announcement(payload) == BulkAnnouncement(
        op="insert", count=100000, action="bulk-create", seq=3
    )


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param("", id="empty"),
        pytest.param("not json", id="not JSON"),
        pytest.param("[1, 2]", id="not an object"),
        pytest.param(f'{{"count": 1, "seq": 1, "id": "{ROW_ID}"}}', id="no op"),
        pytest.param(f'{{"op": "merge", "count": 1, "seq": 1, "id": "{ROW_ID}"}}', id="bad op"),
        pytest.param(f'{{"op": "insert", "seq": 1, "id": "{ROW_ID}"}}', id="no count"),
        pytest.param('{"op": "insert", "count": true, "seq": 1}', id="boolean count"),
        pytest.param('{"op": "insert", "count": -2, "seq": 1}', id="negative count"),
        pytest.param('{"op": "insert", "count": 0, "seq": 1}', id="zero count"),
        pytest.param(f'{{"op": "insert", "count": 1, "id": "{ROW_ID}"}}', id="no seq"),
        pytest.param('{"op": "insert", "count": 1, "seq": 1}', id="one row without id"),
        pytest.param('{"op": "insert", "count": 1, "seq": 1, "id": "x"}', id="id not a UUID"),
        pytest.param('{"op": "insert", "count": 1, "seq": 1, "id": 5}', id="id not a string"),
        pytest.param('{"op": "insert", "count": 2, "seq": 1}', id="bulk without action"),
        pytest.param('{"op": "update", "count": 2, "seq": 1, "action": "x"}', id="bad action"),
    ],
)
def test_a_malformed_payload_is_refused_with_a_reason(payload: str) -> None:
    with pytest.raises(MalformedAnnouncement):
        parse_announcement(payload)
