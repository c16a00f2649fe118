"""Scenarios 1 and 2: fan-out to C sockets, our server and the bare python-socketio baseline.

For each server and each C, the node clients connect C sockets once; then for each writer path
and rate, a writer creates N leads and every socket must receive every notification:created.
The writer stamps each lead with its send time just before sending; node subtracts it from the
receipt time (one machine clock). The server's CPU seconds over the run are read from /proc,
which gives CPU per delivery: a figure that does not depend on what else the machine was doing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg

from bench.harness import (
    NodeClients,
    PostgresServer,
    ServerProcess,
    app_server,
    bare_server,
    bench_token,
    cpu_seconds,
    lead_name,
    log,
    now_ms,
    sample_payload,
)

CREATE_LEAD = (
    "mutation($input: CreateLeadInput!) { createLead(input: $input) { id } }"  # one round trip
)
Write = Callable[[str, int, float], Awaitable[None]]
DRAIN_STALL_SECONDS = 10.0  # no new delivery for this long after the last write: give up
DRAIN_MAX_SECONDS = 60.0


@dataclass
class FanoutOptions:
    clients: list[int]
    leads: int
    rate: float
    workers: int
    paths: list[str]  # "graphql", "sql"
    baseline: bool
    log_dir: Any
    # Per run, at most this many deliveries (leads x sockets): at 1,000 sockets the default run
    # writes 150 leads (3 s at 50/s), enough for the percentiles and the rate, instead of a
    # backlog that a loaded 2-core machine takes minutes to drain.
    max_deliveries: int = 150_000


async def _graphql_writer(server: ServerProcess) -> tuple[Write, Callable[[], Awaitable[None]]]:
    client = httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {bench_token()}"}, timeout=30.0
    )

    async def write(tag: str, seq: int, sent_ms: float) -> None:
        first, last = lead_name(tag, seq, sent_ms)
        response = await client.post(
            "/graphql",
            json={
                "query": CREATE_LEAD,
                "variables": {"input": {"firstName": first, "lastName": last}},
            },
        )
        body = response.json()
        if response.status_code != 200 or body.get("errors"):
            raise RuntimeError(f"createLead failed: {response.status_code} {body}")

    return write, client.aclose


async def _sql_writer(database_url: str) -> tuple[Write, Callable[[], Awaitable[None]]]:
    conn = await psycopg.AsyncConnection.connect(database_url, autocommit=True)

    async def write(tag: str, seq: int, sent_ms: float) -> None:
        first, last = lead_name(tag, seq, sent_ms)
        await conn.execute(
            'INSERT INTO leads ("firstName", "lastName") VALUES (%s, %s)', (first, last)
        )

    return write, conn.close


async def _emit_writer(server: ServerProcess) -> tuple[Write, Callable[[], Awaitable[None]]]:
    client = httpx.AsyncClient(base_url=server.url, timeout=30.0)

    async def write(tag: str, seq: int, sent_ms: float) -> None:
        response = await client.post("/emit", json=sample_payload(tag, seq, sent_ms))
        response.raise_for_status()

    return write, client.aclose


async def _write_leads(write: Write, tag: str, count: int, rate: float | None) -> float:
    """Send `count` writes, paced at `rate` per second or back to back; the seconds it took."""
    started = time.perf_counter()
    for seq in range(count):
        if rate:
            delay = started + seq / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        await write(tag, seq, now_ms())
    return time.perf_counter() - started


async def _drain(clients: NodeClients, expected: int) -> None:
    started = last_progress = time.monotonic()
    delivered = -1
    while time.monotonic() - started < DRAIN_MAX_SECONDS:
        status = await clients.call({"cmd": "status"})
        if status["delivered"] >= expected:
            return
        if status["delivered"] != delivered:
            delivered, last_progress = status["delivered"], time.monotonic()
        elif time.monotonic() - last_progress > DRAIN_STALL_SECONDS:
            return
        await asyncio.sleep(0.1)


async def _one_run(
    clients: NodeClients,
    server: ServerProcess,
    write: Write,
    *,
    label: str,
    path: str,
    sockets: int,
    leads: int,
    rate: float | None,
) -> dict[str, Any]:
    tag = f"{label}-{path}-{'max' if rate is None else int(rate)}-c{sockets}"
    await clients.call({"cmd": "start", "tag": tag, "leads": leads})
    pids = server.pids()
    cpu_before, node_before = cpu_seconds(pids), cpu_seconds([clients.pid])
    write_seconds = await _write_leads(write, tag, leads, rate)
    await _drain(clients, leads * sockets)
    report = await clients.call({"cmd": "report"})
    server_cpu = cpu_seconds(pids) - cpu_before
    node_cpu = cpu_seconds([clients.pid]) - node_before
    delivered = report["delivered"]
    result = {
        "server": label,
        "path": path,
        "rate": "max" if rate is None else rate,
        "clients": sockets,
        "leads": leads,
        "expected": report["expected"],
        "delivered": delivered,
        "delivered_ratio": delivered / report["expected"] if report["expected"] else None,
        "duplicates": report["duplicates"],
        "p50_ms": report["p50_ms"],
        "p95_ms": report["p95_ms"],
        "p99_ms": report["p99_ms"],
        "max_ms": report["max_ms"],
        "deliveries_per_s": report["deliveries_per_s"],
        "writes_per_s": leads / write_seconds if write_seconds else None,
        "server_cpu_s": server_cpu,
        "server_cpu_us_per_delivery": server_cpu / delivered * 1e6 if delivered else None,
        "node_cpu_s": node_cpu,
    }
    log(
        f"{tag}: {delivered}/{report['expected']} p50={_ms(report['p50_ms'])} "
        f"p99={_ms(report['p99_ms'])} max={_ms(report['max_ms'])} "
        f"{result['deliveries_per_s'] or 0:,.0f} deliveries/s, "
        f"server {result['server_cpu_us_per_delivery'] or 0:.1f} us CPU/delivery"
    )
    return result


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}ms"


async def _runs_for_server(
    server: ServerProcess,
    *,
    label: str,
    writers: dict[str, tuple[Write, Callable[[], Awaitable[None]]]],
    options: FanoutOptions,
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    async with NodeClients.running() as clients:
        for sockets in options.clients:
            answer = await clients.call(
                {"cmd": "connect", "url": server.url, "token": bench_token(), "count": sockets}
            )
            log(f"{label}: {sockets} sockets connected in {answer['ms']:.0f} ms")
            # Let the connect burst (unread counts, log lines) settle before measuring.
            await asyncio.sleep(1.0)
            leads = min(options.leads, max(20, options.max_deliveries // sockets))
            for path, (write, _close) in writers.items():
                # Warm-up, unmeasured: pool connections, first-request costs.
                await _write_leads(write, f"warm{sockets}", 5, None)
                await asyncio.sleep(0.5)
                for rate in (options.rate, None):
                    results.append(
                        await _one_run(
                            clients,
                            server,
                            write,
                            label=label,
                            path=path,
                            sockets=sockets,
                            leads=leads,
                            rate=rate,
                        )
                    )
                    await asyncio.sleep(0.5)
            await clients.call({"cmd": "disconnect"})
            await asyncio.sleep(1.0)
    return results


async def run_fanout(postgres: PostgresServer, options: FanoutOptions) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    if options.baseline:
        with bare_server(options.log_dir) as server:
            writers = {"http-emit": await _emit_writer(server)}
            try:
                results += await _runs_for_server(
                    server, label="bare", writers=writers, options=options
                )
            finally:
                for _write, close in writers.values():
                    await close()
    if not options.paths:
        return results
    with (
        postgres.throwaway_database("fanout") as database_url,
        app_server(database_url, workers=options.workers, log_dir=options.log_dir) as server,
    ):
        writers = {}
        if "graphql" in options.paths:
            writers["graphql"] = await _graphql_writer(server)
        if "sql" in options.paths:
            writers["sql"] = await _sql_writer(database_url)
        try:
            results += await _runs_for_server(
                server, label=f"app-w{options.workers}", writers=writers, options=options
            )
        finally:
            for _write, close in writers.values():
                await close()
    return results
