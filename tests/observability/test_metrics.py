"""GET /metrics on real servers: what each metric counts, who may scrape, several workers."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import socketio
from prometheus_client.parser import text_string_to_metric_families
from psycopg.rows import DictRow

from server.app import create_app
from server.metrics import forget_dead_workers
from server.settings import Settings
from tests.realtime.harness import (
    RecordingClient,
    ServerProcess,
    eventually,
    start_server,
    token,
)
from tests.realtime.test_listener_recovery import listener_pids

NewClient = Callable[[], RecordingClient]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(server: ServerProcess) -> Samples:
    response = httpx.get(f"{server.url}/metrics", timeout=5.0)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def metric(server: ServerProcess, name: str, **labels: str) -> float:
    return value(scrape(server), name, **labels)


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A production server that serves /metrics because METRICS_ENABLED says so."""
    process = start_server(
        database_url, tmp_path_factory.mktemp("metrics"), extra_env={"METRICS_ENABLED": "true"}
    )
    try:
        yield process
    finally:
        process.terminate()


async def test_the_socket_gauge_counts_a_socket_while_it_is_connected(
    server: ServerProcess, new_client: NewClient
) -> None:
    assert metric(server, "crm_sockets_connected") == 0
    client = new_client()
    await client.connect(server.url, auth={"token": token()})

    await eventually(lambda: metric(server, "crm_sockets_connected") == 1)
    await client.close()
    await eventually(lambda: metric(server, "crm_sockets_connected") == 0)


async def test_a_refused_handshake_is_not_counted_as_a_connected_socket(
    server: ServerProcess, new_client: NewClient
) -> None:
    client = new_client()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(server.url, auth={"token": "not-a-token"})

    assert metric(server, "crm_sockets_connected") == 0


async def test_a_sql_insert_counts_one_created_event(
    server: ServerProcess, new_client: NewClient, committed_db: psycopg.Connection[DictRow]
) -> None:
    client = new_client()
    await client.connect(server.url, auth={"token": token()})
    before = metric(server, "crm_socket_events_emitted_total", event="notification:created")

    committed_db.execute("""INSERT INTO leads ("firstName", "lastName") VALUES ('Ada', 'L')""")
    await client.next_event("notification:created")

    await eventually(
        lambda: (
            metric(server, "crm_socket_events_emitted_total", event="notification:created")
            == before + 1
        )
    )


async def test_deliveries_are_counted_by_path_and_the_fast_path_reports_itself_on(
    server: ServerProcess, new_client: NewClient, committed_db: psycopg.Connection[DictRow]
) -> None:
    websocket, polling = new_client(), new_client()
    await websocket.connect(server.url, auth={"token": token()}, transports=["websocket"])
    await polling.connect(server.url, auth={"token": token()}, transports=["polling"])
    before = scrape(server)
    assert value(before, "crm_socket_fast_path_enabled") == 1

    committed_db.execute("""INSERT INTO leads ("firstName", "lastName") VALUES ('Ada', 'P')""")
    await websocket.next_event("notification:created")
    await polling.next_event("notification:created")

    def grew(path: str) -> float:
        after = value(scrape(server), "crm_socket_deliveries_total", path=path)
        return after - value(before, "crm_socket_deliveries_total", path=path)

    # One event each; unread counts may follow on both paths too, so at least one.
    await eventually(lambda: grew("direct") >= 1 and grew("library") >= 1)


def test_a_graphql_request_is_timed_under_its_root_fields_never_its_operation_name(
    server: ServerProcess,
) -> None:
    name = "crm_graphql_request_duration_seconds_count"
    before = scrape(server)
    headers = {"Authorization": f"Bearer {token()}"}
    queries = [
        "query ClientChosenName { getUnreadCount }",
        "{ getUnreadCount }",
        "query Two { leads { id } getUnreadCount }",
        "{ noSuchField }",
        "{ this is not graphql",
    ]
    for query in queries:
        httpx.post(f"{server.url}/graphql", json={"query": query}, headers=headers, timeout=5.0)
    httpx.post(f"{server.url}/graphql", content=b"not json", headers=headers, timeout=5.0)

    after = scrape(server)
    grew = {
        dict(labels)["operation"]: after[(sample, labels)] - before.get((sample, labels), 0.0)
        for sample, labels in after
        if sample == name
    }
    assert {op: n for op, n in grew.items() if n} == {
        "getUnreadCount": 2,
        "getUnreadCount,leads": 1,
        "invalid": 2,
        "unknown": 1,
    }
    assert not any("ClientChosenName" in op or "Two" in op for op in grew)


def test_the_pool_gauges_report_the_pool(server: ServerProcess) -> None:
    samples = scrape(server)

    assert value(samples, "crm_db_pool_size") >= 2  # min_size connections open at start-up
    assert 0 <= value(samples, "crm_db_pool_available") <= value(samples, "crm_db_pool_size")
    assert ("crm_db_pool_waiting", frozenset()) in samples


async def test_a_killed_listener_counts_one_reconnect(
    server: ServerProcess, committed_db: psycopg.Connection[DictRow]
) -> None:
    before = metric(server, "crm_listener_reconnects_total")
    (pid,) = listener_pids(committed_db)

    committed_db.execute("SELECT pg_terminate_backend(%s)", (pid,))

    await eventually(lambda: metric(server, "crm_listener_reconnects_total") == before + 1)
    await eventually(lambda: server.readyz() == 200)


def settings(app_env: str, metrics_enabled: bool | None) -> Settings:
    return Settings(
        app_env="development" if app_env == "development" else "production",
        host="127.0.0.1",
        port=0,
        database_url="postgresql://unused",
        jwt_secret="metrics-tests-secret-that-is-long-enough-for-hs256",
        jwt_expires_in_seconds=3600,
        cors_origins=("http://localhost:3000",),
        metrics_enabled=metrics_enabled,
    )


@pytest.mark.parametrize(
    ("app_env", "metrics_enabled", "status"),
    [
        ("development", None, 200),
        ("production", None, 404),
        ("production", True, 200),
        ("development", False, 404),
    ],
)
async def test_metrics_are_served_in_development_and_in_production_only_when_enabled(
    app_env: str, metrics_enabled: bool | None, status: int
) -> None:
    app = create_app(settings(app_env, metrics_enabled), "postgresql://unused")  # no lifespan
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/metrics")

    assert response.status_code == status


async def test_with_several_workers_every_scrape_adds_up_every_worker(
    database_url: str, tmp_path: Path, new_client: NewClient
) -> None:
    server = start_server(
        database_url,
        tmp_path,
        extra_env={"METRICS_ENABLED": "true", "SOCKETIO_TRANSPORTS": "websocket"},
        extra_args=["--workers", "2"],
    )
    try:
        # Each worker opens its own pool (min_size 2): the sum is 4, whichever worker answers.
        await eventually(lambda: all(metric(server, "crm_db_pool_size") == 4 for _ in range(6)))
        clients = [new_client() for _ in range(3)]
        for client in clients:
            await client.connect(server.url, auth={"token": token()}, transports=["websocket"])
        await eventually(
            lambda: all(metric(server, "crm_sockets_connected") == 3 for _ in range(6))
        )
        for client in clients:
            await client.close()
        await eventually(
            lambda: all(metric(server, "crm_sockets_connected") == 0 for _ in range(6))
        )
    finally:
        assert server.terminate() == 0
    assert "action=polling_with_workers" not in server.log()


def test_a_replacement_worker_drops_the_live_gauges_of_a_worker_that_died(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead_pid = subprocess.Popen(["true"])  # a pid that has surely exited
    dead_pid.wait()
    files = {
        "dead_gauge": tmp_path / f"gauge_livesum_{dead_pid.pid}.db",
        "dead_counter": tmp_path / f"counter_{dead_pid.pid}.db",
        "own_gauge": tmp_path / f"gauge_livesum_{os.getpid()}.db",
    }
    for path in files.values():
        path.write_bytes(b"")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))

    forget_dead_workers()

    assert not files["dead_gauge"].exists()
    assert files["dead_counter"].exists()  # counters of a dead worker still add up
    assert files["own_gauge"].exists()
