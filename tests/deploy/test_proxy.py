"""Three server processes behind nginx, configured as docs/DEPLOYMENT.md (a) says; one is killed.

Clients come from addresses of their own, so the sticky hash (`hash $remote_addr consistent`)
spreads them: three on each process, one long-polling, one WebSocket and one that upgrades. A
plain SQL writer keeps writing; one process gets SIGKILL. Its clients reconnect through the
proxy, which sends them to the others, and catch up with getNotifications(after:); then every
client's feed must equal the table exactly. nginx's passive health check (max_fails,
fail_timeout) must take the dead process out: requests keep succeeding, and its error log says
it disabled that upstream.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.deploy.feed import FeedClient
from tests.deploy.nginx import Nginx, start_nginx
from tests.realtime.harness import WAIT, ServerProcess, eventually

TRANSPORTS: tuple[list[str] | None, ...] = (["polling"], ["websocket"], None)
CANDIDATE_ADDRESSES = [f"127.0.0.{n}" for n in range(2, 200)]
WRITE_EVERY = 0.02  # seconds between the writer's statements
MISSED_WRITES = 15  # statements written after the kill before the dead process's clients return
CATCH_UP_LIMIT = 7  # small, so catch-up takes several pages
PROBES = 10
DISABLED = "upstream server temporarily disabled"


def served_line(nginx: Nginx, path: str) -> str | None:
    """The access log line of the one request for `path` (nginx logs after it answers)."""
    lines = [line for line in nginx.access_log() if f'"GET {path} HTTP/1.1"' in line]
    assert len(lines) <= 1, lines
    return lines[0] if lines else None


def upstream_ports(line: str) -> list[int]:
    """The upstreams nginx tried for one request, in order (the last one answered)."""
    match = re.search(r"upstream=\[([^]]*)\]", line)
    assert match is not None, line
    return [int(address.rsplit(":", 1)[1]) for address in match.group(1).split(", ")]


async def get_from(nginx: Nginx, address: str, path: str) -> tuple[int, str]:
    """GET `path` through the proxy from `address`; the status and the access log line."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    async with httpx.AsyncClient(transport=transport, timeout=WAIT) as http:
        status = (await http.get(f"{nginx.url}{path}")).status_code
    await eventually(lambda: served_line(nginx, path) is not None)
    line = served_line(nginx, path)
    assert line is not None
    return status, line


async def addresses_per_process(
    nginx: Nginx, servers: list[ServerProcess], count: int
) -> dict[int, list[str]]:
    """`count` client addresses that the proxy's hash sends to each process (by port)."""
    chosen: dict[int, list[str]] = {server.port: [] for server in servers}
    for address in CANDIDATE_ADDRESSES:
        status, line = await get_from(nginx, address, f"/healthz?where={address}")
        assert status == 200, line
        port = upstream_ports(line)[-1]
        if len(chosen[port]) < count:
            chosen[port].append(address)
        if all(len(addresses) == count for addresses in chosen.values()):
            return chosen
    raise AssertionError(f"{len(CANDIDATE_ADDRESSES)} addresses did not reach every process")


def sockets_on(server: ServerProcess) -> int:
    """crm_sockets_connected of one process, scraped directly (never through the proxy)."""
    text = httpx.get(f"{server.url}/metrics", timeout=WAIT).text
    match = re.search(r"^crm_sockets_connected (\S+)$", text, re.MULTILINE)
    assert match is not None, text
    return int(float(match.group(1)))


class Writer:
    """A plain SQL writer, as any other service would be: one lead per statement, so every
    notification comes as a notification:created (a bulk statement's event has no rows)."""

    def __init__(self, database_url: str) -> None:
        self._database_url = database_url
        self._stop = asyncio.Event()
        self.statements = 0
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async with await psycopg.AsyncConnection.connect(
            self._database_url, autocommit=True
        ) as conn:
            while not self._stop.is_set():
                await conn.execute(
                    'INSERT INTO leads ("firstName", "lastName") VALUES (%s, %s)',
                    ("Proxy", str(self.statements)),
                )
                self.statements += 1
                await asyncio.sleep(WRITE_EVERY)

    async def stop(self) -> None:
        """Ends the writing after the statement in progress; again, nothing more."""
        self._stop.set()
        await self._task


def notification_ids(database_url: str) -> list[str]:
    with psycopg.connect(database_url) as conn:
        return [str(row[0]) for row in conn.execute("SELECT id FROM notifications")]


def assert_no_duplicates(ids: list[str], what: str) -> None:
    twice = [id_ for id_, times in Counter(ids).items() if times > 1]
    assert not twice, f"{what}: {len(twice)} ids more than once"


@pytest.mark.timeout(120)
async def test_clients_of_a_killed_process_reconnect_through_nginx_and_catch_up_exactly(
    nginx_executable: str,
    three_servers: list[ServerProcess],
    database_url: str,
    tmp_path: Path,
) -> None:
    nginx_dir = tmp_path / "nginx"
    nginx_dir.mkdir()
    nginx = start_nginx(nginx_executable, nginx_dir, [server.port for server in three_servers])
    clients: list[FeedClient] = []
    writer: Writer | None = None
    try:
        spread = await addresses_per_process(nginx, three_servers, len(TRANSPORTS))
        # A first row, so that every client's first page has a cursor to catch up from.
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("""INSERT INTO leads ("firstName", "lastName") VALUES ('Seed', 'Row')""")
        by_port: dict[int, list[FeedClient]] = {}
        for port, addresses in spread.items():
            by_port[port] = []
            for address, transports in zip(addresses, TRANSPORTS, strict=True):
                client = FeedClient.from_address(address, nginx.url, transports)
                clients.append(client)
                by_port[port].append(client)
                await client.connect()
                await client.load()
        # The hash put three sockets on each process, whichever transport they use.
        for server in three_servers:
            assert await asyncio.to_thread(sockets_on, server) == len(TRANSPORTS)

        writer = Writer(database_url)
        for client in clients:
            await client.socket.wait_until(lambda c=client: len(c.live(0)) >= 10)

        victim, survivors = three_servers[1], [three_servers[0], three_servers[2]]
        victim.process.kill()  # SIGKILL: no goodbye to its sockets, nothing flushed
        victim.process.wait(timeout=WAIT)
        written_at_kill = writer.statements
        orphans = by_port[victim.port]
        others = [client for client in clients if client not in orphans]
        for client in orphans:
            await client.socket.wait_until(lambda c=client: c.socket.disconnects == 1)
        await eventually(lambda: writer.statements >= written_at_kill + MISSED_WRITES)

        # Requests from the dead process's clients keep succeeding: nginx tries it, fails over,
        # and after max_fails failures leaves it out.
        probes = []
        for n in range(PROBES):
            address = orphans[n % len(orphans)].address
            status, line = await get_from(nginx, address, f"/readyz?probe={n}")
            assert status == 200, line
            probes.append(upstream_ports(line))
        assert all(tried[-1] in {s.port for s in survivors} for tried in probes), probes
        assert any(victim.port not in tried for tried in probes), probes
        assert re.search(
            rf"{DISABLED} .*upstream: \"http://127.0.0.1:{victim.port}/", nginx.error_log()
        )

        # Reconnect through the proxy (the same address, so the same hash), then catch up.
        for client in orphans:
            client.take_newest_cursor()
            await client.connect()
            pages = await client.catch_up(CATCH_UP_LIMIT)
            assert len(client.caught_up) >= MISSED_WRITES
            assert pages > 1
        for client in orphans:
            await client.socket.wait_until(lambda c=client: len(c.live(1)) >= 10)
        surviving_sockets = [await asyncio.to_thread(sockets_on, s) for s in survivors]
        assert sum(surviving_sockets) == len(clients), surviving_sockets

        await writer.stop()
        table = notification_ids(database_url)
        expected = set(table)
        assert len(table) == len(expected) == writer.statements + 1  # and the first row
        for client in clients:
            try:
                await client.socket.wait_until(lambda c=client: c.feed() >= expected)
            except TimeoutError:
                raise AssertionError(
                    f"{client.address} {client.transports}: {len(expected - client.feed())} of "
                    f"{len(expected)} rows never arrived"
                ) from None

        for client in others:  # never disconnected: every row live, once
            assert client.socket.disconnects == 0
            assert len(client.connection_starts) == 1
            assert_no_duplicates(client.live(0), f"{client.address} live")
            assert client.feed() == expected
        for client in orphans:
            before = set(client.loaded) | set(client.live(0))
            assert_no_duplicates(client.live(0), f"{client.address} live before the kill")
            assert_no_duplicates(client.caught_up, f"{client.address} catch-up")
            assert not before & set(client.caught_up), f"{client.address}: caught up a row it had"
            assert_no_duplicates(client.live(1), f"{client.address} live after reconnecting")
            assert client.feed() == expected, (
                f"{client.address}: {len(expected - client.feed())} missing, "
                f"{len(client.feed() - expected)} not in the table"
            )

        # The documented proxy keeps /metrics private.
        async with httpx.AsyncClient(timeout=WAIT) as http:
            assert (await http.get(f"{nginx.url}/metrics")).status_code == 404
    finally:
        if writer is not None:
            await writer.stop()
        for client in clients:
            await client.close()
        nginx.stop()
