"""A client of the proxy that keeps its feed as docs/DELIVERY.md tells clients to.

Each client sends from a loopback address of its own (127.0.0.x; Linux routes all of 127/8 to
lo), its socket and its GraphQL calls alike: the proxy's sticky hash keys on the client address,
so distinct addresses are what spread clients over the processes, and one client's requests all
hash to the same one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import httpx
import socketio

from tests.realtime.harness import WAIT, RecordingClient, token

PAGE = """
query($limit: Int, $after: String) {
  getNotifications(limit: $limit, after: $after) { id cursor }
}"""
CREATED = "notification:created"


@dataclass
class FeedClient:
    address: str
    transports: list[str] | None  # None: long-polling first, then the upgrade to WebSocket
    proxy_url: str
    socket: RecordingClient
    http: httpx.AsyncClient
    loaded: list[str] = field(default_factory=list)  # the first page
    caught_up: list[str] = field(default_factory=list)  # every catch-up page, in order
    connection_starts: list[int] = field(default_factory=list)  # indexes into socket.events
    cursor: str | None = None  # the newest cursor held

    @classmethod
    def from_address(cls, address: str, proxy_url: str, transports: list[str] | None) -> FeedClient:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0)))
        sio = socketio.AsyncClient(reconnection=False, http_session=session)
        http = httpx.AsyncClient(
            base_url=proxy_url,
            transport=httpx.AsyncHTTPTransport(local_address=address),
            headers={"Authorization": f"Bearer {token()}"},
            timeout=WAIT,
        )
        return cls(address, transports, proxy_url, RecordingClient(sio=sio), http)

    async def connect(self) -> None:
        self.connection_starts.append(len(self.socket.events))
        await self.socket.connect(
            self.proxy_url, auth={"token": token()}, transports=self.transports
        )

    async def page(self, limit: int, after: str | None = None) -> list[dict[str, str]]:
        response = await self.http.post(
            "/graphql", json={"query": PAGE, "variables": {"limit": limit, "after": after}}
        )
        body: dict[str, Any] = response.json()
        assert response.status_code == 200, body
        assert not body.get("errors"), body
        rows: list[dict[str, str]] = body["data"]["getNotifications"]
        return rows

    async def load(self) -> None:
        """Rule 1, for a feed that fits one page."""
        rows = await self.page(limit=200)
        assert 0 < len(rows) < 200, "the scenario loads before it writes"
        self.loaded = [row["id"] for row in rows]
        self.cursor = rows[0]["cursor"]

    def live(self, connection: int) -> list[str]:
        """The ids of the notification:created events one connection delivered, in order."""
        starts = [*self.connection_starts, len(self.socket.events)]
        events = self.socket.events[starts[connection] : starts[connection + 1]]
        return [data["id"] for name, data in events if name == CREATED]

    def take_newest_cursor(self) -> None:
        """Rule 2: the newest event's cursor, once the connection is gone."""
        created = self.socket.named(CREATED)
        if created:
            self.cursor = created[-1]["cursor"]

    async def catch_up(self, limit: int) -> int:
        """Rule 3: from the newest cursor, each page's first row's cursor, until a short page;
        the number of pages."""
        assert self.cursor is not None
        pages = 0
        while True:
            rows = await self.page(limit=limit, after=self.cursor)
            pages += 1
            self.caught_up += [row["id"] for row in rows]
            if rows:
                self.cursor = rows[0]["cursor"]
            if len(rows) < limit:
                return pages

    def feed(self) -> set[str]:
        """What the client shows: every row it loaded, caught up or was sent (by id, once)."""
        created = {data["id"] for data in self.socket.named(CREATED)}
        return {*self.loaded, *self.caught_up, *created}

    async def close(self) -> None:
        eio = self.socket.sio.eio
        if self.socket.sio.connected and eio.current_transport == "polling":
            # python-engineio's client waits for its long-poll to return before it calls a
            # polling session closed, and the server holds that poll until its ping interval
            # (25 s) ends: send the close and stop waiting instead.
            await eio.disconnect(abort=True)
        await self.socket.close()  # closes the aiohttp session too
        if eio.read_loop_task is not None:
            await asyncio.wait_for(eio.read_loop_task, WAIT)
        await self.http.aclose()
