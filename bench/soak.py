"""`python -m bench.soak --minutes N`: N minutes of mixed load on one real server, then a report.

Not part of CI. What runs, all at once, against `python -m server serve` on a throwaway database:

* writers: GraphQL (createLead, addComment, markAsRead) and direct SQL (INSERT INTO leads), each
  statement one row, so every notification is exactly one `notification:created` event;
* readers: getNotifications(limit: 20) and getUnreadCount;
* watchers: sockets connected for the whole run, which record every event they receive;
* churners: sockets that connect, wait for their unread count, and disconnect, over and over.

Reported, per minute and in total: errors by kind, GraphQL p50/p99, write-to-event p99 (GraphQL
creates, seen by a watcher), socket connects and failures, server RSS; at the end, loss: the
notifications in the table that a watcher never received, and resyncs. Every loop is bounded by
the deadline; the whole run stops by itself. Results go to bench/results/soak-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import socketio

from bench.harness import RESULTS_DIR, PostgresServer, app_server, bench_token, log

CREATE = "mutation($i: CreateLeadInput!) { createLead(input: $i) { id } }"
COMMENT = "mutation($l: Int!, $b: String!) { addComment(leadId: $l, body: $b) { id } }"
MARK = "mutation($id: String!) { markAsRead(id: $id) { id isRead } }"
FEED = "{ getNotifications(limit: 20) { id isRead cursor } }"
COUNT = "{ getUnreadCount }"


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@dataclass
class Minute:
    requests: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    event_latencies_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    sql_writes: int = 0
    connects: int = 0
    connect_failures: int = 0
    rss_kib: list[int] = field(default_factory=list)


class Soak:
    def __init__(self, url: str, database_url: str, minutes: float) -> None:
        self.url = url
        self.database_url = database_url
        self.started = time.monotonic()
        self.deadline = self.started + minutes * 60
        self.minutes: dict[int, Minute] = defaultdict(Minute)
        self.token = bench_token()
        # GraphQL-created lead name -> the time its create answered, for event latency.
        self.sent_at: dict[str, float] = {}
        self.lead_ids: list[int] = []
        self.notification_ids: list[str] = []

    def minute(self) -> Minute:
        return self.minutes[int((time.monotonic() - self.started) // 60)]

    def running(self) -> bool:
        return time.monotonic() < self.deadline

    async def gql(self, client: httpx.AsyncClient, query: str, variables: Any = None) -> Any:
        minute = self.minute()
        started = time.perf_counter()
        try:
            response = await client.post(
                "/graphql",
                json={"query": query, "variables": variables or {}},
                headers={"Authorization": f"Bearer {self.token}"},
            )
            body = response.json()
        except Exception as exc:
            minute.errors[f"transport:{type(exc).__name__}"] += 1
            return None
        minute.requests += 1
        minute.latencies_ms.append((time.perf_counter() - started) * 1000)
        for error in body.get("errors") or []:
            minute.errors[str(error.get("extensions", {}).get("code"))] += 1
        return body.get("data")

    async def graphql_writer(self, seed: int) -> None:
        rng = random.Random(seed)
        async with httpx.AsyncClient(base_url=self.url, timeout=30.0) as client:
            sequence = 0
            while self.running():
                sequence += 1
                choice = rng.random()
                if choice < 0.6 or not self.lead_ids:
                    name = f"w{seed}-{sequence}"
                    data = await self.gql(
                        client, CREATE, {"i": {"firstName": name, "lastName": "Soak"}}
                    )
                    if data:
                        self.sent_at[f"{name} Soak added to pipeline"] = time.monotonic()
                        self.lead_ids.append(data["createLead"]["id"])
                elif choice < 0.8:
                    await self.gql(
                        client, COMMENT, {"l": rng.choice(self.lead_ids), "b": f"c{sequence}"}
                    )
                elif self.notification_ids:
                    await self.gql(client, MARK, {"id": rng.choice(self.notification_ids)})
                await asyncio.sleep(0.05)

    async def sql_writer(self) -> None:
        async with await psycopg.AsyncConnection.connect(
            self.database_url, autocommit=True
        ) as conn:
            sequence = 0
            while self.running():
                sequence += 1
                try:
                    await conn.execute(
                        """INSERT INTO leads ("firstName", "lastName") VALUES (%s, 'Sql')""",
                        (f"s{sequence}",),
                    )
                    self.minute().sql_writes += 1
                except psycopg.Error as exc:
                    self.minute().errors[f"sql:{type(exc).__name__}"] += 1
                await asyncio.sleep(0.1)

    async def reader(self, query: str) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=30.0) as client:
            while self.running():
                data = await self.gql(client, query)
                if data and "getNotifications" in data:
                    self.notification_ids = [row["id"] for row in data["getNotifications"]]
                await asyncio.sleep(0.05)

    async def watcher(self, seen: set[str], events: dict[str, int]) -> None:
        sio = socketio.AsyncClient(reconnection=False)

        async def on_any(event: str, data: Any = None) -> None:
            events[event] += 1
            if event == "notification:created":
                seen.add(data["id"])
                sent = self.sent_at.pop(data["message"], None)
                if sent is not None:
                    self.minute().event_latencies_ms.append((time.monotonic() - sent) * 1000)

        sio.on("*", on_any)
        await sio.connect(self.url, auth={"token": self.token}, transports=["websocket"])
        try:
            # Until the deadline, then the last events of the run.
            await asyncio.sleep(max(0.0, self.deadline - time.monotonic()) + 3.0)
        finally:
            await sio.disconnect()

    async def churner(self) -> None:
        while self.running():
            sio = socketio.AsyncClient(reconnection=False)
            counted = asyncio.Event()
            sio.on("notifications:unread-count", lambda _data=None, done=counted: done.set())
            try:
                await sio.connect(
                    self.url,
                    auth={"token": self.token},
                    transports=["websocket"],
                    wait_timeout=10,
                )
                await asyncio.wait_for(counted.wait(), 10)
                self.minute().connects += 1
            except Exception as exc:
                self.minute().connect_failures += 1
                self.minute().errors[f"socket:{type(exc).__name__}"] += 1
            finally:
                with contextlib.suppress(Exception):
                    await sio.disconnect()
            await asyncio.sleep(0.1)

    async def sampler(self, rss: Any) -> None:
        while self.running():
            self.minute().rss_kib.append(rss())
            await asyncio.sleep(5.0)


def summarise(soak: Soak, seen: list[set[str]], table_ids: set[str]) -> dict[str, Any]:
    per_minute = []
    for index in sorted(soak.minutes):
        m = soak.minutes[index]
        per_minute.append(
            {
                "minute": index + 1,
                "requests": m.requests,
                "sql_writes": m.sql_writes,
                "p50_ms": percentile(m.latencies_ms, 0.5),
                "p99_ms": percentile(m.latencies_ms, 0.99),
                "event_p99_ms": percentile(m.event_latencies_ms, 0.99),
                "errors": dict(m.errors),
                "socket_connects": m.connects,
                "socket_connect_failures": m.connect_failures,
                "rss_mib": round(statistics.mean(m.rss_kib) / 1024, 1) if m.rss_kib else None,
            }
        )
    lost = [len(table_ids - ids) for ids in seen]
    rss = [r for index in sorted(soak.minutes) for r in soak.minutes[index].rss_kib]
    return {
        "per_minute": per_minute,
        "notifications_in_table": len(table_ids),
        "lost_per_watcher": lost,
        "errors_total": sum(sum(m.errors.values()) for m in soak.minutes.values()),
        "requests_total": sum(m.requests for m in soak.minutes.values()),
        "rss_first_mib": round(rss[0] / 1024, 1) if rss else None,
        "rss_last_mib": round(rss[-1] / 1024, 1) if rss else None,
        "rss_max_mib": round(max(rss) / 1024, 1) if rss else None,
    }


async def run(minutes: float, log_dir: Path) -> dict[str, Any]:
    postgres = PostgresServer.from_environment()
    with (
        postgres.throwaway_database("soak") as database_url,
        app_server(database_url, workers=1, log_dir=log_dir) as server,
    ):
        soak = Soak(server.url, database_url, minutes)
        seen: list[set[str]] = [set(), set()]
        events: list[dict[str, int]] = [defaultdict(int), defaultdict(int)]
        watchers = [asyncio.create_task(soak.watcher(seen[i], events[i])) for i in range(2)]
        await asyncio.sleep(1.0)  # watchers connected before the first write
        log(f"soak: {minutes} min against {server.url}")
        workers = [
            soak.graphql_writer(1),
            soak.graphql_writer(2),
            soak.sql_writer(),
            soak.reader(FEED),
            soak.reader(COUNT),
            soak.churner(),
            soak.churner(),
            soak.sampler(server.rss_kib),
        ]
        async with asyncio.timeout(minutes * 60 + 60):
            await asyncio.gather(*workers)
            await asyncio.gather(*watchers)
        with psycopg.connect(database_url) as conn:
            table_ids = {str(row[0]) for row in conn.execute("SELECT id FROM notifications")}
        result = summarise(soak, seen, table_ids)
        result["events_per_watcher"] = [dict(e) for e in events]
        result["minutes"] = minutes
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0, help="how long (default: 10)")
    args = parser.parse_args(argv)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    result = asyncio.run(run(args.minutes, RESULTS_DIR / "logs"))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"soak-{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    for row in result["per_minute"]:
        print(json.dumps(row))
    totals = {k: v for k, v in result.items() if k != "per_minute"}
    print(json.dumps(totals))
    log(f"soak: results in {path}")
    lost = any(result["lost_per_watcher"])
    return 1 if lost else 0


if __name__ == "__main__":
    raise SystemExit(main())
