"""The feed client package (client/, built into client/dist) as a client of real servers: one
store in a Node process (bench/feed_store.mjs), and how to compare it with the table.

tests/client drives it through faults; bench.delivery_model runs one beside its model clients.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parent / "feed_store.mjs"
ANSWER_WITHIN = 10.0

# The table's feed, newest first: what a store's items must be a prefix of.
FEED_QUERY = """SELECT id::text AS id, "isRead", message, "relatedLeadId" FROM notifications
                ORDER BY "createdAt" DESC, id DESC"""
COMPARED = ("id", "isRead", "message", "relatedLeadId")


def node() -> str:
    path = shutil.which("node")
    if path is None:
        raise RuntimeError("node is not on PATH: `make install` needs Node.js and npm")
    return path


@dataclass
class FeedStoreProcess:
    """One store; `request` sends a command and returns its answer, `events` is what it reported
    by itself ({"event": "connection", "state": ...}, {"event": "loaded"}, ...)."""

    process: asyncio.subprocess.Process
    page_size: int
    events: list[dict[str, Any]] = field(default_factory=list)
    _answers: dict[int, asyncio.Future[Any]] = field(default_factory=dict)
    _next_seq: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _reader: asyncio.Task[None] | None = None

    @classmethod
    async def start(
        cls, url: str, token: str, page_size: int, max_seconds: float = 120.0
    ) -> FeedStoreProcess:
        process = await asyncio.create_subprocess_exec(
            node(),
            str(SCRIPT),
            url,
            token,
            str(page_size),
            str(max_seconds),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        store = cls(process, page_size)
        store._reader = asyncio.create_task(store._read())
        return store

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            line = json.loads(raw)
            if "seq" in line:
                answer = self._answers.pop(line["seq"])
                if line["ok"]:
                    answer.set_result(line["result"])
                else:
                    answer.set_exception(RuntimeError(f"store: {line['error']}"))
            else:
                self.events.append(line)
                self._changed.set()
        for answer in self._answers.values():
            answer.set_exception(RuntimeError("the store's process ended"))

    async def request(self, cmd: str, **args: Any) -> Any:
        assert self.process.stdin is not None
        self._next_seq += 1
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._answers[self._next_seq] = answer
        self.process.stdin.write(json.dumps({"seq": self._next_seq, "cmd": cmd, **args}).encode())
        self.process.stdin.write(b"\n")
        await self.process.stdin.drain()
        return await asyncio.wait_for(answer, ANSWER_WITHIN)

    async def wait_until(self, predicate: Callable[[], bool], within: float) -> None:
        """Until `predicate` holds over the events the store has reported."""
        async with asyncio.timeout(within):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def wait_for_event(self, wanted: dict[str, Any], within: float) -> None:
        await self.wait_until(lambda: wanted in self.events, within)

    def count(self, event: dict[str, Any]) -> int:
        return self.events.count(event)

    async def live_and_loaded(self, within: float) -> None:
        await self.wait_for_event({"event": "connection", "state": "live"}, within)
        await self.wait_for_event({"event": "loaded"}, within)

    async def close(self) -> None:
        if self.process.stdin is not None and not self.process.stdin.is_closing():
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        if self._reader is not None:
            await self._reader


def difference(
    snapshot: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], unread: int, page_size: int
) -> str | None:
    """None when the store shows what the table holds: its newest rows, in order, as many as it
    holds (at least a page; all of them when it says there are no older ones), the same unread
    count, and no refetch failing; else both sides, short."""
    held = len(snapshot["items"])
    shown = len(rows) if not snapshot["hasOlder"] else max(held, min(page_size, len(rows)))
    store = [tuple(item[k] for k in COMPARED) for item in snapshot["items"]]
    table = [tuple(row[k] for k in COMPARED) for row in rows[:shown]]
    if store == table and snapshot["unreadCount"] == unread and snapshot["error"] is None:
        return None

    def brief(items: list[tuple[Any, ...]]) -> str:
        return " ".join(f"{i[2][:12]}{'' if i[1] else '*'}" for i in items[:40])

    return (
        f"store: {snapshot['unreadCount']} unread, {held} rows, hasOlder={snapshot['hasOlder']}, "
        f"error={snapshot['error']}: {brief(store)}\n"
        f"table: {unread} unread, {len(rows)} rows: {brief(table)}\n"
        f"socket events: {snapshot.get('received', '')[-3000:]}"
    )
