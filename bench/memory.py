"""Scenario 5: server RSS with 0 and with N idle sockets, hence KiB per idle socket.

RSS is the sum over the server's process tree (uvicorn's supervisor and its workers; for the
NestJS reference, node), read from /proc. A first connect/disconnect round warms up what the
first sockets allocate once (imports, caches), so the difference measures what each further
socket holds. With the reference (bench/reference.py), both servers are up and `rounds`
interleaved rounds measure ours, reference, reference, ours ...; `summarize_memory` gives
the median per server.
"""

from __future__ import annotations

import asyncio
import statistics
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
from bench.reference import reference_server, reference_skip_reason, reference_token

SETTLE_SECONDS = 3.0


@dataclass
class MemoryOptions:
    sockets: int
    workers: int
    baseline: bool
    log_dir: Path
    reference: bool = True
    rounds: int = 2


async def _measure(
    server: ServerProcess, label: str, sockets: int, token: str | None = None
) -> dict[str, Any]:
    token = token or bench_token()
    async with NodeClients.running() as clients:
        await clients.call({"cmd": "connect", "url": server.url, "token": token, "count": 20})
        await clients.call({"cmd": "disconnect"})
        await asyncio.sleep(SETTLE_SECONDS)
        idle = server.rss_kib()
        await clients.call({"cmd": "connect", "url": server.url, "token": token, "count": sockets})
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


async def _ours(postgres: PostgresServer, options: MemoryOptions) -> dict[str, Any]:
    with (
        postgres.throwaway_database("memory") as database_url,
        app_server(database_url, workers=options.workers, log_dir=options.log_dir) as server,
    ):
        return await _measure(server, f"app-w{options.workers}", options.sockets)


async def _reference(postgres: PostgresServer, options: MemoryOptions) -> dict[str, Any]:
    with reference_server(postgres.admin_url, log_dir=options.log_dir) as server:
        token = reference_token(server.database_url)
        return await _measure(server, "reference", options.sockets, token)


async def run_memory(postgres: PostgresServer, options: MemoryOptions) -> list[dict[str, Any]]:
    """Each round starts each server afresh (RSS does not shrink after sockets leave), the
    order alternating: ours, reference, reference, ours ..."""
    results = []
    if options.baseline:
        with bare_server(options.log_dir) as server:
            results.append(await _measure(server, "bare", options.sockets))
    reason = reference_skip_reason() if options.reference else "not asked for"
    if reason is not None and options.reference:
        log(f"memory: without the reference: {reason}")
    measures = [_ours] if reason is not None else [_ours, _reference]
    for round_ in range(options.rounds if reason is None else 1):
        for measure in measures if round_ % 2 == 0 else measures[::-1]:
            row = await measure(postgres, options)
            results.append({**row, "round": round_})
    return results


def summarize_memory(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median KiB per idle socket per server over its rounds, with the range."""
    by_server: dict[str, list[float]] = {}
    for row in results:
        by_server.setdefault(row["server"], []).append(row["kib_per_socket"])
    return [
        {
            "server": server,
            "rounds": len(values),
            "kib_per_socket": statistics.median(values),
            "kib_per_socket_range": [min(values), max(values)],
        }
        for server, values in by_server.items()
    ]


def memory_targets(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 12, point 5: ours ≤ 32 KiB per idle socket, the reference beside it."""
    summary = {entry["server"]: entry for entry in summarize_memory(results)}
    reference = summary.get("reference")
    beside = f" (reference {reference['kib_per_socket']:.1f} KiB)" if reference else ""
    return [
        {
            "target": f"{server}: ≤ 32 KiB per idle socket",
            "figure": f"{entry['kib_per_socket']:.1f} KiB{beside}",
            "met": entry["kib_per_socket"] <= 32,
        }
        for server, entry in summary.items()
        if server not in ("bare", "reference")
    ]
