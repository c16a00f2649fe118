"""Scenarios 1 and 2: fan-out to C sockets: our server, the NestJS reference, bare python-socketio.

For each server and each C, the node clients connect C sockets; then for each writer path
and rate, a writer creates N leads and every socket must receive every notification:created.
The writer stamps each lead with its send time just before sending; node subtracts it from the
receipt time (one machine clock). The writer also times each write itself (createLead's own
latency, the API while it fans out). The server's CPU seconds over the run are read from /proc,
which gives CPU per delivery: a figure that depends less on what else the machine was doing.

With the reference (bench/reference.py; GraphQL writer only: it has no triggers, so SQL inserts
make no events), both servers are up for the whole scenario and, at the largest C, `rounds`
interleaved rounds run ours, reference, reference, ours ...; `summarize_fanout` gives the
medians per server, writer, rate and C, `fanout_ratios` and `fanout_targets` what the targets
read.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
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
from bench.reference import reference_server, reference_skip_reason, reference_token

CREATE_LEAD = (
    "mutation($input: CreateLeadInput!) { createLead(input: $input) { id } }"  # one round trip
)
Write = Callable[[str, int, float, float], Awaitable[None]]
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
    # The NestJS reference beside ours (GraphQL writer), when it can be built.
    reference: bool = True
    # Interleaved rounds of every (server, C) when the reference runs; medians reported.
    rounds: int = 2


async def _graphql_writer(
    server: ServerProcess, token: str
) -> tuple[Write, Callable[[], Awaitable[None]]]:
    client = httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30.0
    )
    # httpx loads its HTTP machinery and opens the connection on its first request (~80 ms
    # here): paid now, not by the first measured lead of either server. Any answer will do.
    await client.get("/healthz")

    async def write(tag: str, seq: int, sent_ms: float, late_ms: float) -> None:
        first, last = lead_name(tag, seq, sent_ms, late_ms)
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

    async def write(tag: str, seq: int, sent_ms: float, late_ms: float) -> None:
        first, last = lead_name(tag, seq, sent_ms, late_ms)
        await conn.execute(
            'INSERT INTO leads ("firstName", "lastName") VALUES (%s, %s)', (first, last)
        )

    return write, conn.close


async def _emit_writer(server: ServerProcess) -> tuple[Write, Callable[[], Awaitable[None]]]:
    client = httpx.AsyncClient(base_url=server.url, timeout=30.0)

    async def write(tag: str, seq: int, sent_ms: float, _late_ms: float) -> None:
        response = await client.post("/emit", json=sample_payload(tag, seq, sent_ms))
        response.raise_for_status()

    return write, client.aclose


async def _write_leads(
    write: Write, tag: str, count: int, rate: float | None
) -> tuple[float, list[float]]:
    """Send `count` writes, paced at `rate` per second or back to back: the seconds it took,
    and each write's own latency in ms."""
    started = time.perf_counter()
    latencies: list[float] = []
    for seq in range(count):
        late = 0.0
        if rate:
            delay = started + seq / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                late = -delay  # the previous write returned after this one was due
        sent = time.perf_counter()
        await write(tag, seq, now_ms(), late * 1000.0)
        latencies.append((time.perf_counter() - sent) * 1000.0)
    return time.perf_counter() - started, latencies


def _percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(len(ordered) * p / 100 + 0.999999) - 1))]


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
    round_: int = 0,
) -> dict[str, Any]:
    tag = f"{label}-{path}-{'max' if rate is None else int(rate)}-c{sockets}-r{round_}"
    await clients.call({"cmd": "start", "tag": tag, "leads": leads})
    pids = server.pids()
    cpu_before, node_before = cpu_seconds(pids), cpu_seconds([clients.pid])
    write_seconds, write_ms = await _write_leads(write, tag, leads, rate)
    await _drain(clients, leads * sockets)
    report = await clients.call({"cmd": "report"})
    server_cpu = cpu_seconds(pids) - cpu_before
    node_cpu = cpu_seconds([clients.pid]) - node_before
    delivered = report["delivered"]
    result = {
        "server": label,
        "round": round_,
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
        # From when the paced writer meant to send (its lateness added back; bench/RESULTS.md
        # section 13): what a client of a server that holds its writers back waits in all.
        "scheduled_p99_ms": report.get("scheduled_p99_ms"),
        "deliveries_per_s": report["deliveries_per_s"],
        "writes_per_s": leads / write_seconds if write_seconds else None,
        "write_p50_ms": _percentile(write_ms, 50),
        "write_p99_ms": _percentile(write_ms, 99),
        "server_cpu_s": server_cpu,
        "server_cpu_us_per_delivery": server_cpu / delivered * 1e6 if delivered else None,
        "node_cpu_s": node_cpu,
    }
    log(
        f"{tag}: {delivered}/{report['expected']} p50={_ms(report['p50_ms'])} "
        f"p99={_ms(report['p99_ms'])} max={_ms(report['max_ms'])} "
        f"{result['deliveries_per_s'] or 0:,.0f} deliveries/s, "
        f"server {result['server_cpu_us_per_delivery'] or 0:.1f} us CPU/delivery, "
        f"write p99={_ms(result['write_p99_ms'])}"
    )
    return result


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}ms"


@dataclass
class _Target:
    """One server under test: how to reach it, its writers, the token its sockets send."""

    server: ServerProcess
    label: str
    token: str
    writers: dict[str, tuple[Write, Callable[[], Awaitable[None]]]]


async def _runs_at(
    clients: NodeClients, target: _Target, sockets: int, options: FanoutOptions, round_: int
) -> list[dict[str, Any]]:
    """Connect `sockets` sockets to one server, run every writer at both rates, disconnect."""
    results: list[dict[str, Any]] = []
    answer = await clients.call(
        {"cmd": "connect", "url": target.server.url, "token": target.token, "count": sockets}
    )
    log(f"{target.label}: {sockets} sockets connected in {answer['ms']:.0f} ms")
    # Let the connect burst (unread counts, log lines) settle before measuring.
    await asyncio.sleep(1.0)
    leads = min(options.leads, max(20, options.max_deliveries // sockets))
    try:
        for path, (write, _close) in target.writers.items():
            # Warm-up, unmeasured: pool connections, first-request costs.
            await _write_leads(write, f"warm{sockets}r{round_}", 5, None)
            await asyncio.sleep(0.5)
            for rate in (options.rate, None):
                result = await _one_run(
                    clients,
                    target.server,
                    write,
                    label=target.label,
                    path=path,
                    sockets=sockets,
                    leads=leads,
                    rate=rate,
                    round_=round_,
                )
                results.append(result)
                await asyncio.sleep(0.5)
    finally:
        await clients.call({"cmd": "disconnect"})
        await asyncio.sleep(1.0)
    return results


async def _rounds(
    targets: list[_Target], options: FanoutOptions, rounds: int
) -> list[dict[str, Any]]:
    """`rounds` rounds at the largest C, each server once per round, the order alternating;
    smaller Cs (no target compares them with the reference) once, the first server only."""
    results: list[dict[str, Any]] = []
    largest = max(options.clients)
    async with NodeClients.running() as clients:
        for sockets in options.clients:
            at = targets if sockets == largest else targets[:1]
            for round_ in range(rounds if sockets == largest else 1):
                order = at if round_ % 2 == 0 else list(reversed(at))
                for target in order:
                    results += await _runs_at(clients, target, sockets, options, round_)
    return results


@contextlib.contextmanager
def _maybe_reference(postgres: PostgresServer, options: FanoutOptions) -> Iterator[Any]:
    """The reference server when asked for and buildable, else None (the reason logged)."""
    if not options.reference or "graphql" not in options.paths:
        yield None
        return
    reason = reference_skip_reason()
    if reason is not None:
        log(f"fanout: without the reference: {reason}")
        yield None
        return
    with reference_server(postgres.admin_url, log_dir=options.log_dir) as server:
        yield server


async def _close_writers(targets: list[_Target]) -> None:
    for target in targets:
        for _write, close in target.writers.values():
            await close()


async def run_fanout(postgres: PostgresServer, options: FanoutOptions) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    if options.baseline:
        with bare_server(options.log_dir) as server:
            bare = _Target(server, "bare", bench_token(), {"http-emit": await _emit_writer(server)})
            try:
                results += await _rounds([bare], options, 1)
            finally:
                await _close_writers([bare])
    if not options.paths:
        return results
    with (
        postgres.throwaway_database("fanout") as database_url,
        app_server(database_url, workers=options.workers, log_dir=options.log_dir) as server,
        _maybe_reference(postgres, options) as reference,
    ):
        ours = _Target(server, f"app-w{options.workers}", bench_token(), {})
        targets = [ours]
        try:
            if "graphql" in options.paths:
                ours.writers["graphql"] = await _graphql_writer(server, ours.token)
            if "sql" in options.paths:
                ours.writers["sql"] = await _sql_writer(database_url)
            if reference is not None:
                token = reference_token(reference.database_url)
                writer = await _graphql_writer(reference, token)
                targets.append(_Target(reference, "reference", token, {"graphql": writer}))
            results += await _rounds(targets, options, options.rounds if reference else 1)
        finally:
            await _close_writers(targets)
    return results


_SUMMARY_FIGURES = (
    "deliveries_per_s",
    "p50_ms",
    "p99_ms",
    "scheduled_p99_ms",
    "write_p50_ms",
    "write_p99_ms",
    "server_cpu_us_per_delivery",
    "delivered_ratio",
)


def summarize_fanout(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Medians over rounds per (server, writer, rate, C), with how many rounds and their range."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in results:
        key = (row["server"], row["path"], row["rate"], row["clients"])
        groups.setdefault(key, []).append(row)
    summary = []
    for (server, path, rate, clients), rows in groups.items():
        entry: dict[str, Any] = {
            "server": server,
            "path": path,
            "rate": rate,
            "clients": clients,
            "rounds": len(rows),
        }
        for figure in _SUMMARY_FIGURES:
            values = [row[figure] for row in rows if row.get(figure) is not None]
            entry[figure] = statistics.median(values) if values else None
            entry[f"{figure}_range"] = [min(values), max(values)] if values else None
        summary.append(entry)
    return summary


def fanout_ratios(summary: list[dict[str, Any]], clients: int = 1000) -> dict[str, Any]:
    """Ours (GraphQL writer) against the reference at `clients` sockets: the issue's targets."""

    def pick(server_prefix: str, rate: Any) -> dict[str, Any] | None:
        for entry in summary:
            if (
                entry["server"].startswith(server_prefix)
                and entry["path"] == "graphql"
                and entry["rate"] == rate
                and entry["clients"] == clients
            ):
                return entry
        return None

    ratios: dict[str, Any] = {"clients": clients}
    rates = {entry["rate"] for entry in summary if entry["rate"] != "max"}
    paced = next(iter(rates), None)
    ours_max, ref_max = pick("app", "max"), pick("reference", "max")
    if ours_max and ref_max and ours_max["deliveries_per_s"] and ref_max["deliveries_per_s"]:
        ratios["max_deliveries_per_s"] = {
            "ours": ours_max["deliveries_per_s"],
            "reference": ref_max["deliveries_per_s"],
            "ratio": ours_max["deliveries_per_s"] / ref_max["deliveries_per_s"],
            "ours_cpu_us": ours_max["server_cpu_us_per_delivery"],
            "reference_cpu_us": ref_max["server_cpu_us_per_delivery"],
        }
    ours_paced, ref_paced = pick("app", paced), pick("reference", paced)
    if ours_paced and ref_paced:
        ratios["paced"] = {
            "rate": paced,
            "ours_p99_ms": ours_paced["p99_ms"],
            "reference_p99_ms": ref_paced["p99_ms"],
            "ours_scheduled_p99_ms": ours_paced.get("scheduled_p99_ms"),
            "reference_scheduled_p99_ms": ref_paced.get("scheduled_p99_ms"),
            "ours_write_p99_ms": ours_paced["write_p99_ms"],
            "reference_write_p99_ms": ref_paced["write_p99_ms"],
        }
    return ratios


# Issue 12, point 4: max deliveries/s at 1,000 sockets at least this many times the reference's.
FANOUT_RATIO_TARGET = 1.5


def fanout_targets(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 12's fan-out targets against the reference (rows as bench/report.py's targets)."""
    summary = summarize_fanout(results)
    if not any(entry["server"] == "reference" for entry in summary):
        return []
    most = max(entry["clients"] for entry in summary)
    ratios = fanout_ratios(summary, most)
    checks: list[dict[str, Any]] = []
    top = ratios.get("max_deliveries_per_s")
    if top:
        checks.append(
            {
                "target": f"fan-out max deliveries/s at C={most} "
                f"≥ {FANOUT_RATIO_TARGET}x reference",
                "figure": f"{top['ours']:,.0f} vs {top['reference']:,.0f}/s = {top['ratio']:.2f}x "
                f"(server CPU {top['ours_cpu_us']:.1f} vs {top['reference_cpu_us']:.1f} "
                "µs/delivery)",
                "met": top["ratio"] >= FANOUT_RATIO_TARGET,
            }
        )
    paced = ratios.get("paced")
    if paced:
        rate = paced["rate"]
        for name, ours, ref in (
            ("p99 send → receipt", paced["ours_p99_ms"], paced["reference_p99_ms"]),
            ("createLead p99", paced["ours_write_p99_ms"], paced["reference_write_p99_ms"]),
        ):
            if ours is not None and ref is not None:
                figure = f"{ours:.0f} vs {ref:.0f} ms"
                scheduled = (paced["ours_scheduled_p99_ms"], paced["reference_scheduled_p99_ms"])
                if name.startswith("p99 send") and None not in scheduled:
                    figure += (
                        f" (from the scheduled send, the writer's wait included: "
                        f"{scheduled[0]:.0f} vs {scheduled[1]:.0f} ms)"
                    )
                checks.append(
                    {
                        "target": f"{name} at C={most}x{rate:g}/s ≤ reference",
                        "figure": figure,
                        "met": ours <= ref,
                    }
                )
    return checks
