"""10,000 idle sockets on the processes of one host: memory, connect rate, one lead to all of
them, and the lead rate the host holds.

`python -m bench.many_sockets` (about 2-3 minutes): `serve --workers 2` (WebSocket only, one
worker per core) on a throwaway database, and several node processes of Socket.IO clients
(bench/fanout_clients.mjs) that open the sockets, 50 handshakes in flight each. Then:

1. memory: the server tree's RSS before and after the sockets connect (after a warm-up round, as
   bench/memory.py does), per socket; the node clients' RSS per socket too; and the server's CPU
   over 10 idle seconds (pings);
2. connect rate: sockets / the time the slowest node process took to open its share;
3. one lead: a plain SQL INSERT, then the time until the last of the N sockets has its
   notification:created (send time stamped by the writer, receipt by node; one machine clock);
   `--single-leads` times, each on its own;
4. rates: leads per second written at each of `--rates` for `--seconds` each, every socket
   receiving every lead; a rate is held when every delivery arrived and p99 stayed under
   `--hold-p99-ms`. The run stops at the first rate not held.

All the clients come from 127.0.0.1, so the per-address cap (SOCKETIO_MAX_CONNECTIONS_PER_ADDRESS,
50 by default) is lifted for the bench's server, and the per-process cap
(SOCKETIO_MAX_CONNECTIONS) raised above the socket count. Every socket is a file descriptor in
the server and in a node process: the soft RLIMIT_NOFILE of this process is raised to its hard
limit, and the server and node processes inherit it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from bench.harness import (
    RESULTS_DIR,
    NodeClients,
    PostgresServer,
    ServerProcess,
    app_server,
    bench_token,
    cpu_seconds,
    lead_name,
    log,
    now_ms,
    rss_kib,
)

SETTLE_SECONDS = 3.0
IDLE_SECONDS = 10.0
DRAIN_STALL_SECONDS = 10.0  # no new delivery for this long: the rest is not coming
DRAIN_MAX_SECONDS = 40.0
FDS_PER_PROCESS_BESIDES_SOCKETS = 1024  # the pool, logs, the LISTEN connection, node's own


@dataclass
class Options:
    sockets: int = 10_000
    workers: int = 2
    node_processes: int = 2
    single_leads: int = 3
    rates: list[float] = field(default_factory=lambda: [0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0])
    seconds: float = 8.0
    hold_p99_ms: float = 1000.0
    output: Path | None = None


def raise_file_limit(sockets_per_process: int) -> dict[str, int]:
    """The soft limit on open files up to the hard one, for this process and its children."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = sockets_per_process + FDS_PER_PROCESS_BESIDES_SOCKETS
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise SystemExit(
            f"the hard limit on open files is {hard}; {sockets_per_process} sockets in one "
            f"process need about {needed}: raise it (ulimit -Hn, LimitNOFILE=) or use "
            "more --workers and --node-processes"
        )
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return {"soft_before": soft, "soft": resource.getrlimit(resource.RLIMIT_NOFILE)[0]}


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Settings for the server app_server starts (it passes this process's environment on),
    restored afterwards, so that a driver running other scenarios next does not inherit them."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.asynccontextmanager
async def node_fleet(count: int) -> AsyncIterator[list[NodeClients]]:
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(NodeClients.running()) for _ in range(count)]


async def call_all(
    fleet: list[NodeClients], commands: list[dict[str, Any]], within: float = 120.0
) -> list[dict[str, Any]]:
    return list(
        await asyncio.gather(
            *(
                clients.call(command, within)
                for clients, command in zip(fleet, commands, strict=True)
            )
        )
    )


def shares(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def node_rss_kib(fleet: list[NodeClients]) -> int:
    return sum(rss_kib(clients.pid) for clients in fleet)


async def connect(server: ServerProcess, fleet: list[NodeClients], sockets: int) -> float:
    """Opens `sockets` across the fleet at once; the wall-clock seconds it took."""
    started = time.perf_counter()
    await call_all(
        fleet,
        [
            {"cmd": "connect", "url": server.url, "token": bench_token(), "count": count}
            for count in shares(sockets, len(fleet))
        ],
        within=600.0,
    )
    return time.perf_counter() - started


async def measure_memory_and_connect(
    server: ServerProcess, fleet: list[NodeClients], sockets: int
) -> dict[str, Any]:
    await connect(server, fleet, 20 * len(fleet))  # warm-up: what the first sockets allocate
    await call_all(fleet, [{"cmd": "disconnect"}] * len(fleet))
    await asyncio.sleep(SETTLE_SECONDS)
    server_idle, node_idle = server.rss_kib(), node_rss_kib(fleet)
    seconds = await connect(server, fleet, sockets)
    log(f"{sockets:,} sockets connected in {seconds:.1f} s ({sockets / seconds:,.0f}/s)")
    await asyncio.sleep(SETTLE_SECONDS)
    server_loaded, node_loaded = server.rss_kib(), node_rss_kib(fleet)
    per_socket = (server_loaded - server_idle) / sockets
    log(
        f"server RSS {server_idle:,} -> {server_loaded:,} KiB: {per_socket:.1f} KiB per socket; "
        f"node clients {(node_loaded - node_idle) / sockets:.1f} KiB per socket"
    )
    # What idle sockets cost: engine.io pings each one every 25 s, and the client answers.
    pids = server.pids()
    cpu_before = cpu_seconds(pids)
    await asyncio.sleep(IDLE_SECONDS)
    idle_cpu_share = (cpu_seconds(pids) - cpu_before) / IDLE_SECONDS
    log(f"idle: the server uses {idle_cpu_share:.1%} of one core with {sockets:,} sockets")
    return {
        "sockets": sockets,
        "idle_cpu_share_of_one_core": idle_cpu_share,
        "connect_seconds": seconds,
        "connects_per_s": sockets / seconds,
        "server_rss_kib_idle": server_idle,
        "server_rss_kib_loaded": server_loaded,
        "server_kib_per_socket": per_socket,
        "worker_rss_kib": {str(pid): rss_kib(pid) for pid in server.pids()},
        "node_kib_per_socket": (node_loaded - node_idle) / sockets,
    }


class SqlWriter:
    """Leads written with plain SQL, each stamped with its send time (bench.harness.lead_name)."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._conn = conn

    async def write(self, tag: str, seq: int) -> None:
        first, last = lead_name(tag, seq, now_ms())
        await self._conn.execute(
            'INSERT INTO leads ("firstName", "lastName") VALUES (%s, %s)', (first, last)
        )

    async def write_at(self, tag: str, leads: int, rate: float) -> float:
        """`leads` writes paced at `rate` per second; the seconds from the first to the last."""
        started = time.perf_counter()
        for seq in range(leads):
            delay = started + seq / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await self.write(tag, seq)
        return time.perf_counter() - started


async def drain(fleet: list[NodeClients], expected: int) -> None:
    started = last_progress = time.monotonic()
    delivered = -1
    while time.monotonic() - started < DRAIN_MAX_SECONDS:
        statuses = await call_all(fleet, [{"cmd": "status"}] * len(fleet))
        now_delivered = sum(status["delivered"] for status in statuses)
        if now_delivered >= expected:
            return
        if now_delivered != delivered:
            delivered, last_progress = now_delivered, time.monotonic()
        elif time.monotonic() - last_progress > DRAIN_STALL_SECONDS:
            return
        await asyncio.sleep(0.05)


async def one_run(
    server: ServerProcess,
    fleet: list[NodeClients],
    writer: SqlWriter,
    *,
    tag: str,
    leads: int,
    rate: float,
) -> dict[str, Any]:
    """`leads` leads at `rate`; what every node process saw, merged (worst p99 of the parts)."""
    started = await call_all(fleet, [{"cmd": "start", "tag": tag, "leads": leads}] * len(fleet))
    expected = sum(answer["expected"] for answer in started)
    pids = server.pids()
    server_cpu, node_cpu = cpu_seconds(pids), cpu_seconds([c.pid for c in fleet])
    loadavg = os.getloadavg()[0]
    write_seconds = await writer.write_at(tag, leads, rate)
    await drain(fleet, expected)
    reports = await call_all(fleet, [{"cmd": "report"}] * len(fleet))
    delivered = sum(report["delivered"] for report in reports)
    server_cpu = cpu_seconds(pids) - server_cpu
    return {
        "tag": tag,
        "leads": leads,
        "rate": rate,
        "write_seconds": write_seconds,
        "loadavg_before": loadavg,
        "expected": expected,
        "delivered": delivered,
        "duplicates": sum(report["duplicates"] for report in reports),
        "p50_ms": max(report["p50_ms"] or 0.0 for report in reports),
        "p99_ms": max(report["p99_ms"] or 0.0 for report in reports),
        "last_receipt_ms": max(report["max_ms"] or 0.0 for report in reports),
        "server_cpu_s": server_cpu,
        "server_cpu_us_per_delivery": server_cpu / delivered * 1e6 if delivered else None,
        "node_cpu_s": cpu_seconds([c.pid for c in fleet]) - node_cpu,
    }


def held(run: dict[str, Any], hold_p99_ms: float) -> bool:
    """Every socket got every lead, and the slowest 1% within the bound: the host kept up."""
    return bool(run["delivered"] == run["expected"] and run["p99_ms"] <= hold_p99_ms)


async def run_many_sockets(postgres: PostgresServer, options: Options) -> dict[str, Any]:
    per_node = -(-options.sockets // options.node_processes)
    per_worker = -(-options.sockets // options.workers)  # about: the kernel spreads accept()s
    limits = raise_file_limit(max(per_node, per_worker))
    log(f"open files: soft limit {limits['soft_before']} -> {limits['soft']} (inherited)")
    log_dir = RESULTS_DIR / "logs"
    result: dict[str, Any] = {
        "options": {**asdict(options), "output": None},
        "limits": limits,
        "loadavg_before": os.getloadavg(),
    }
    server_settings = {
        "SOCKETIO_MAX_CONNECTIONS": str(options.sockets + 1000),
        "SOCKETIO_TRANSPORTS": "websocket",  # serve --workers N needs it
    }
    with (
        environment(server_settings),
        postgres.throwaway_database("sockets") as database_url,
        app_server(database_url, workers=options.workers, log_dir=log_dir) as server,
    ):
        async with (
            node_fleet(options.node_processes) as fleet,
            await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn,
        ):
            writer = SqlWriter(conn)
            result["memory"] = await measure_memory_and_connect(server, fleet, options.sockets)
            await writer.write("warm", 0)  # the pool's and the listener's first-use costs
            await asyncio.sleep(2.0)

            singles = []
            for n in range(options.single_leads):
                run = await one_run(server, fleet, writer, tag=f"one{n}", leads=1, rate=1.0)
                log(
                    f"one lead to {options.sockets:,} sockets: {run['delivered']:,} delivered, "
                    f"last receipt after {run['last_receipt_ms']:.0f} ms"
                )
                singles.append(run)
                await asyncio.sleep(1.0)
            result["one_lead"] = singles
            result["one_lead_last_receipt_ms_median"] = statistics.median(
                run["last_receipt_ms"] for run in singles
            )

            rates = []
            for rate in options.rates:
                leads = max(1, round(rate * options.seconds))
                run = await one_run(
                    server, fleet, writer, tag=f"rate{rate:g}", leads=leads, rate=rate
                )
                run["held"] = held(run, options.hold_p99_ms)
                rates.append(run)
                log(
                    f"{rate:g} leads/s x {options.sockets:,} sockets: "
                    f"{run['delivered']:,}/{run['expected']:,} delivered, "
                    f"p50 {run['p50_ms']:.0f} ms, p99 {run['p99_ms']:.0f} ms, "
                    f"server {run['server_cpu_us_per_delivery'] or 0:.1f} us CPU/delivery"
                    f"{'' if run['held'] else '  (not held)'}"
                )
                if not run["held"]:
                    break
                await asyncio.sleep(2.0)
            result["rates"] = rates
            held_rates = [run["rate"] for run in rates if run["held"]]
            result["held_leads_per_s"] = max(held_rates) if held_rates else None
            await call_all(fleet, [{"cmd": "disconnect"}] * len(fleet))
    return result


def parse_args(argv: list[str]) -> Options:
    defaults = Options()
    parser = argparse.ArgumentParser(
        prog="python -m bench.many_sockets",
        description=(
            "N idle sockets on `serve --workers W` (one host): server memory per socket, "
            "connect rate, one lead to all (time until the last receipt), and the lead rate "
            "held with every delivery and p99 under a bound."
        ),
    )
    parser.add_argument("--sockets", type=int, default=defaults.sockets)
    parser.add_argument("--workers", type=int, default=defaults.workers)
    parser.add_argument(
        "--node-processes", type=int, default=defaults.node_processes, help="client processes"
    )
    parser.add_argument("--single-leads", type=int, default=defaults.single_leads)
    parser.add_argument(
        "--rates",
        type=lambda text: [float(part) for part in text.split(",")],
        default=defaults.rates,
        help="leads per second, tried in order until one is not held (default 0.5,1,1.5,2,3,4,6,8)",
    )
    parser.add_argument("--seconds", type=float, default=defaults.seconds, help="per rate")
    parser.add_argument("--hold-p99-ms", type=float, default=defaults.hold_p99_ms)
    parser.add_argument("--output", type=Path, help="JSON (bench/results/many-sockets-<ts>.json)")
    args = parser.parse_args(argv)
    if args.sockets < 1 or args.workers < 1 or args.node_processes < 1:
        parser.error("--sockets, --workers and --node-processes must be at least 1")
    return Options(
        sockets=args.sockets,
        workers=args.workers,
        node_processes=args.node_processes,
        single_leads=args.single_leads,
        rates=args.rates,
        seconds=args.seconds,
        hold_p99_ms=args.hold_p99_ms,
        output=args.output,
    )


def main(argv: list[str]) -> None:
    options = parse_args(argv)
    postgres = PostgresServer.from_environment()
    started = time.monotonic()
    result = asyncio.run(run_many_sockets(postgres, options))
    result["postgres"] = {"kind": postgres.kind, "version": postgres.version()}
    result["cpus"] = os.cpu_count()
    result["seconds"] = time.monotonic() - started
    output = options.output or RESULTS_DIR / f"many-sockets-{time.strftime('%Y%m%dT%H%M%S')}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2))
    log(f"done in {result['seconds']:.0f} s; {output}")


if __name__ == "__main__":
    main(sys.argv[1:])
