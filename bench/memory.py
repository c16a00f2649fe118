"""Scenario 5: server RSS with 0 and with N idle sockets, hence KiB per idle socket.

RSS is the sum over the server's process tree (uvicorn's supervisor and its workers), read from
/proc. A first connect/disconnect round warms up what the first sockets allocate once (imports,
caches), so the difference measures what each further socket holds.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import (
    NodeClients,
    PostgresServer,
    ServerProcess,
    app_server,
    bare_server,
    bench_token,
    log,
)

SETTLE_SECONDS = 3.0


@dataclass
class MemoryOptions:
    sockets: int
    workers: int
    baseline: bool
    log_dir: Path


async def _measure(server: ServerProcess, label: str, sockets: int) -> dict[str, Any]:
    async with NodeClients.running() as clients:
        await clients.call(
            {"cmd": "connect", "url": server.url, "token": bench_token(), "count": 20}
        )
        await clients.call({"cmd": "disconnect"})
        await asyncio.sleep(SETTLE_SECONDS)
        idle = server.rss_kib()
        await clients.call(
            {"cmd": "connect", "url": server.url, "token": bench_token(), "count": sockets}
        )
        await asyncio.sleep(SETTLE_SECONDS)
        loaded = server.rss_kib()
        await clients.call({"cmd": "disconnect"})
    per_socket = (loaded - idle) / sockets
    log(f"memory {label}: {idle:,} KiB idle, {loaded:,} KiB with {sockets} sockets")
    log(f"memory {label}: {per_socket:.1f} KiB per idle socket")
    return {
        "server": label,
        "sockets": sockets,
        "rss_kib_0": idle,
        "rss_kib_n": loaded,
        "kib_per_socket": per_socket,
    }


async def run_memory(postgres: PostgresServer, options: MemoryOptions) -> list[dict[str, Any]]:
    results = []
    if options.baseline:
        with bare_server(options.log_dir) as server:
            results.append(await _measure(server, "bare", options.sockets))
    with (
        postgres.throwaway_database("memory") as database_url,
        app_server(database_url, workers=options.workers, log_dir=options.log_dir) as server,
    ):
        results.append(await _measure(server, f"app-w{options.workers}", options.sockets))
    return results
