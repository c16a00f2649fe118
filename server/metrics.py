"""Prometheus metrics, served at GET /metrics (development, or METRICS_ENABLED=true).

One process: prometheus_client's default registry. Several (`serve --workers N`): every uvicorn
worker is a process behind one port, and a scrape reaches only one of them, so `serve` points
PROMETHEUS_MULTIPROC_DIR at a fresh folder before the workers start; each then keeps its values
in memory-mapped files there, and /metrics, whichever worker answers, adds up every worker's
files (prometheus_client's multiprocess mode). Gauges are "livesum": the sum over live workers;
a worker that stops removes its own (`mark_worker_stopped`).

prometheus_client picks its storage when first imported, from the environment: this module must
not be imported by `serve` before it has set PROMETHEUS_MULTIPROC_DIR.

Labels are bounded: event names are the contract's six, GraphQL operations are root field names
of the schema (server/graphql/operation.py), never text a client wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess
from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import Response

from server.background import cancel_and_wait

logger = logging.getLogger(__name__)

MULTIPROC_DIR_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
POOL_REFRESH_SECONDS: Final = 5.0

SOCKETS_CONNECTED = Gauge(
    "crm_sockets_connected",
    "Authenticated Socket.IO connections open now.",
    multiprocess_mode="livesum",
)
EVENTS_EMITTED = Counter(
    "crm_socket_events_emitted",
    "Socket.IO events sent, by event name (one per emit, whatever the number of recipients).",
    ["event"],
)
SOCKET_DELIVERIES = Counter(
    "crm_socket_deliveries",
    "Events delivered to one socket, by path: 'direct' (framed once, written straight to the "
    "socket's transport) or 'library' (through engine.io's queue: long-polling, back-pressure, "
    "binary or ack emits, or every delivery while the fast path is off).",
    ["path"],
)
SOCKET_FAST_PATH_ENABLED = Gauge(
    "crm_socket_fast_path_enabled",
    "1 when the direct-write fan-out is on; 0 when a library it reads changed (see the log).",
    multiprocess_mode="livemin",
)
HTTP_ONE_WRITE_ENABLED = Gauge(
    "crm_http_one_write_enabled",
    "1 when each HTTP response goes out in one write (server/request_context.py); 0 when "
    "uvicorn's request cycle changed (see the log) and responses take uvicorn's two writes.",
    multiprocess_mode="livemin",
)
SOCKETS_CUT_STALLED = Counter(
    "crm_sockets_cut_stalled",
    "Sockets disconnected because their engine.io queue reached 1,000 packets (stopped reading).",
)
GC_FREEZES = Counter(
    "crm_gc_freezes",
    "Times the collector froze the objects of joined sockets (reason=joins) or thawed, collected "
    "and froze again (reason=refreeze); server/collector.py.",
    ["reason"],
)
LISTENER_RECONNECTS = Counter(
    "crm_listener_reconnects",
    "Times the LISTEN connection was lost and opened again (each followed by a resync).",
)
GRAPHQL_DURATION = Histogram(
    "crm_graphql_request_duration_seconds",
    "POST /graphql latency, by operation: the root fields, sorted and joined with ','.",
    ["operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
POOL_SIZE = Gauge(
    "crm_db_pool_size",
    "Connections the database pool holds (in use or idle).",
    multiprocess_mode="livesum",
)
POOL_AVAILABLE = Gauge(
    "crm_db_pool_available",
    "Idle connections in the database pool.",
    multiprocess_mode="livesum",
)
POOL_WAITING = Gauge(
    "crm_db_pool_waiting",
    "Requests waiting for a connection from the database pool.",
    multiprocess_mode="livesum",
)


def multiprocess_mode() -> bool:
    return bool(os.environ.get(MULTIPROC_DIR_ENV))


def refresh_pool_gauges(pool: AsyncConnectionPool[Any]) -> None:
    stats = pool.get_stats()
    POOL_SIZE.set(stats.get("pool_size", 0))
    POOL_AVAILABLE.set(stats.get("pool_available", 0))
    POOL_WAITING.set(stats.get("requests_waiting", 0))


@contextlib.asynccontextmanager
async def pool_gauges(pool: AsyncConnectionPool[Any]) -> AsyncIterator[None]:
    """Keep the pool gauges fresh while the block runs: a scrape reaches one worker only, so
    every worker writes its own figures now and then rather than only when scraped."""

    async def refresh_forever() -> None:
        while True:
            refresh_pool_gauges(pool)
            await asyncio.sleep(POOL_REFRESH_SECONDS)

    forget_dead_workers()
    task = asyncio.create_task(refresh_forever(), name="pool-gauges")
    try:
        yield
    finally:
        await cancel_and_wait(task)
        mark_worker_stopped()


def forget_dead_workers() -> None:
    """Drop the live gauges of workers that died without stopping (killed, crashed): uvicorn
    starts a replacement, which calls this, so the sums stop counting the dead one's sockets."""
    directory = os.environ.get(MULTIPROC_DIR_ENV)
    if not directory:
        return
    for path in Path(directory).glob("gauge_live*_*.db"):
        pid_text = path.stem.rsplit("_", 1)[-1]
        if not pid_text.isdigit():
            continue
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            prometheus_multiprocess.mark_process_dead(int(pid_text), directory)  # type: ignore[no-untyped-call]
        except PermissionError:
            pass  # alive, another user's


def mark_worker_stopped() -> None:
    """Drop this process's live gauges from the sums (multiprocess mode only)."""
    directory = os.environ.get(MULTIPROC_DIR_ENV)
    if directory:
        prometheus_multiprocess.mark_process_dead(os.getpid(), directory)  # type: ignore[no-untyped-call]


def exposition() -> bytes:
    """The text format of every metric: this process's, or every worker's in multiprocess mode."""
    if multiprocess_mode():
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


async def metrics_endpoint(request: Request) -> Response:
    """GET /metrics. The pool gauges of the answering worker are refreshed first."""
    state = getattr(request.app.state, "crm", None)
    if state is not None:
        refresh_pool_gauges(state.pool)
    return Response(exposition(), media_type=CONTENT_TYPE_LATEST)
