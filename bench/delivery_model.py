"""The delivery guarantee of docs/DELIVERY.md, checked against a model under concurrency.

`python -m bench.delivery_model --seconds N --writers W --clients C --seed S`

Two server processes share one database. Writers change it at the same time, through GraphQL on
either server or with plain SQL: one-row and many-row statements, several statements in one
transaction, transactions that begin early and commit (or roll back) late while others commit,
score changes, task completions, comments and, rarely, a TRUNCATE. Clients are real Socket.IO
connections; each keeps a model of the feed the way the contract tells a client to, drops its
connection at random moments, stays away a while, comes back (sometimes to the other server) and
catches up with `getNotifications(after:)`. One more client is the feed client package (client/)
in Node, whose connection is cut at random too; it keeps its feed by the package's own code and
is checked from outside (PackageClient). What must hold:

* catch-up: every row the client has not seen comes back once. No id twice across the pages of
  one catch-up; no row the client already held (save the few its cursor may not stand for,
  see Feed.uncovered); and none missing among the rows that were in the table before the
  reconnect and still are after the catch-up (the table itself is the oracle);
* order: on one uninterrupted connection, one writer's `notification:created` events follow
  its commits, and a rolled-back write never shows up anywhere;
* convergence: at quiet checkpoints during the run (some right after a TRUNCATE) and at the end,
  every connected client holds exactly the table (ids, isRead, relatedLeadId), its last unread
  count is the table's, and so is getUnreadCount on both servers; the package's store holds the
  table's newest rows, in feed order, and its unread count.

Writers tag what they write, so every notification says who wrote it and in which order: a lead
is named "w3 n17" (writer 3, its 17th tagged write), a task is titled "w3 n18 task", a comment is
signed "w3-n19@model.test", and the notification's message starts with that tag.

Every random choice comes from the seed (each writer, client and the coordinator owns a
random.Random derived from it); timing is not seeded, so a seed replays the same scenario, not
always the same interleaving. Every violation message names the seed; the exit code is 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import Any

import httpx
import psycopg
import socketio
from psycopg.rows import dict_row

from bench.feed_store import FEED_QUERY, FeedStoreProcess, difference
from bench.harness import SECRET, PostgresServer, ServerProcess, ensure_token_user, log, spawn
from server.auth import issue_token

SEED_ENV = "DELIVERY_MODEL_SEED"

# Bounds on every wait (generous: CI machines have two cores and other tests run beside us).
HTTP_WITHIN = 20.0
CONNECT_WITHIN = 10.0
READY_WITHIN = 60.0
WRITE_WITHIN = 30.0
CUT_WITHIN = 3.0  # how long a client waits for the moment it chose to disconnect at
STEP_WITHIN = 120.0  # one client transition: connect, catch up, refresh
STOP_WITHIN = 60.0
DB_WITHIN = 15.0
MAX_CATCH_UP_PAGES = 5000

CREATED = "notification:created"
UPDATED = "notification:updated"
DELETED = "notification:deleted"
BULK = "notifications:bulk-updated"
RESYNC = "notifications:resync"
UNREAD_COUNT = "notifications:unread-count"
REFETCH_EVENTS = frozenset({BULK, RESYNC})

Row = dict[str, Any]
Tag = tuple[int, int]  # (writer number, that writer's counter)

TAG = re.compile(r"^w(\d+)[ -]n(\d+)\b")
# The types whose message starts with the writer's tag (a score change names the lead, whose tag
# belongs to whoever created it).
TAGGED_TYPES = frozenset({"lead_created", "task_completed", "comment_added"})


def tag_of(row: Mapping[str, Any]) -> Tag | None:
    if row.get("type") not in TAGGED_TYPES:
        return None
    match = TAG.match(str(row.get("message", "")))
    return (int(match[1]), int(match[2])) if match else None


def default_seed() -> int:
    """DELIVERY_MODEL_SEED when set, else a new one each run."""
    configured = os.environ.get(SEED_ENV, "").strip()
    return int(configured) if configured else secrets.randbelow(2**31)


MODEL_USER_ID = "00000000-0000-4000-8000-00000000d0d0"


def token_for(email: str) -> str:
    return issue_token(
        user_id=MODEL_USER_ID,
        email=email,
        secret=SECRET,
        expires_in_seconds=6 * 3600,
    )


# --- configuration and report ----------------------------------------------------------------


@dataclass(frozen=True)
class ModelConfig:
    seconds: float = 60.0  # writers and clients at work, checkpoints included; then the final check
    writers: int = 6  # half GraphQL, half plain SQL (at least one SQL writer)
    clients: int = 6
    seed: int = 0
    # A checkpoint waits this long for every connected client to hold the table.
    quiet_within: float = 10.0
    checkpoint_every: tuple[float, float] = (9.0, 16.0)
    # Chance that a checkpoint starts with a TRUNCATE: then it is the last statement before the
    # comparison, and no later bulk refetch can hide that it was not announced.
    truncate_at_checkpoint: float = 0.4
    # One more client: the feed client package (client/) in Node, checked from outside.
    package_client: bool = True


@dataclass
class Report:
    config: ModelConfig
    log_dir: Path | None = None
    counts: Counter[str] = field(default_factory=Counter)
    violations: Counter[str] = field(default_factory=Counter)
    details: dict[str, list[str]] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    max_details_per_kind: int = 4
    max_detail_chars: int = 1500

    @property
    def ok(self) -> bool:
        return not self.violations

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] += n

    def violation(self, kind: str, where: str, detail: str) -> None:
        self.violations[kind] += 1
        shown = self.details.setdefault(kind, [])
        if len(shown) < self.max_details_per_kind:
            text = f"[seed {self.config.seed}] {kind} at {where}: {detail}"
            cut = self.max_detail_chars
            shown.append(text if len(text) <= cut else text[: cut - 3] + "...")

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def reproduce(self) -> str:
        c = self.config
        return (
            f"{SEED_ENV}={c.seed} pytest tests/model, or: python -m bench.delivery_model "
            f"--seconds {c.seconds:g} --writers {c.writers} --clients {c.clients} --seed {c.seed}"
        )

    def summary(self) -> str:
        c = self.config
        lines = [
            f"delivery model: seed {c.seed}, {c.seconds:g} s, {c.writers} writers, "
            f"{c.clients} clients, 2 servers; wall time {self.elapsed():.1f} s"
        ]
        for group in ("write", "client", "event", "checkpoint"):
            items = sorted((k, v) for k, v in self.counts.items() if k.startswith(group + "."))
            text = ", ".join(f"{k.removeprefix(group + '.')} {v}" for k, v in items)
            lines.append(f"  {group}: {text or '-'}")
        if self.ok:
            lines.append("no violation")
        else:
            total = sum(self.violations.values())
            lines.append(f"VIOLATIONS: {total} ({', '.join(sorted(self.violations))})")
            for kind, n in sorted(self.violations.items()):
                lines.append(f"  {kind}: {n}")
                lines += [f"    {text}" for text in self.details[kind]]
            if self.log_dir is not None:
                lines.append(f"server logs: {self.log_dir}")
        lines.append(f"reproduce: {self.reproduce()}")
        return "\n".join(lines)


# --- server processes ------------------------------------------------------------------------


Server = ServerProcess


def spawn_server(name: str, database_url: str, log_dir: Path) -> Server:
    """`python -m server serve` the way tests/realtime/harness.py starts it (production mode)."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "APP_ENV": "production",
        "JWT_SECRET": SECRET,
        "CORS_ORIGINS": "http://localhost:3000",
        # A line per request would cost the two small cores more than the servers' real work.
        "LOG_LEVEL": "WARNING",
    }
    return spawn(name, [sys.executable, "-m", "server", "serve"], env, log_dir)


async def wait_ready(server: Server, http: httpx.AsyncClient) -> None:
    deadline = time.monotonic() + READY_WITHIN
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.process.returncode}")
        with contextlib.suppress(httpx.TransportError):
            if (await http.get(f"{server.url}/readyz", timeout=2.0)).status_code == 200:
                return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{server.name} not ready within {READY_WITHIN}s; see {server.log_path}")


@contextlib.asynccontextmanager
async def running_servers(
    database_url: str, log_dir: Path, http: httpx.AsyncClient
) -> AsyncIterator[list[Server]]:
    """Two servers on one database, stopped (SIGTERM, then SIGKILL) whatever happens."""
    servers: list[Server] = []
    try:
        for name in ("s0", "s1"):
            servers.append(spawn_server(name, database_url, log_dir))
        for server in servers:
            await wait_ready(server, http)
        yield servers
    finally:
        for server in servers:
            server.stop()


# --- GraphQL ---------------------------------------------------------------------------------

FIELDS = "id type message isRead relatedLeadId createdAt cursor"
FEED_BEFORE = (
    "query($limit: Int!, $before: String) { getNotifications(limit: $limit, before: $before) "
    f"{{ {FIELDS} }} }}"
)
FEED_AFTER = (
    "query($limit: Int!, $after: String!) { getNotifications(limit: $limit, after: $after) "
    f"{{ {FIELDS} }} }}"
)
UNREAD = "{ getUnreadCount }"
SOME_IDS = "query($u: Boolean) { getNotifications(limit: 30, unreadOnly: $u) { id } }"
CREATE_LEAD = "mutation($i: CreateLeadInput!) { createLead(input: $i) { id } }"
UPDATE_LEAD = "mutation($id: Int!, $i: UpdateLeadInput!) { updateLead(id: $id, input: $i) { id } }"
DELETE_LEAD = "mutation($id: Int!) { deleteLead(id: $id) }"
CREATE_TASK = "mutation($l: Int!, $t: String!) { createTask(leadId: $l, title: $t) { id } }"
COMPLETE_TASK = "mutation($id: Int!) { completeTask(id: $id) { id } }"
ADD_COMMENT = "mutation($l: Int!, $b: String!) { addComment(leadId: $l, body: $b) { id } }"
MARK_READ = "mutation($id: String!) { markAsRead(id: $id) { id } }"
MARK_ALL_READ = "mutation { markAllAsRead }"
DELETE_NOTIFICATION = "mutation($id: String!) { deleteNotification(id: $id) }"


class GraphQLFailure(Exception):
    def __init__(self, codes: list[str], message: str) -> None:
        super().__init__(f"{','.join(codes)}: {message}")
        self.codes = codes

    @property
    def transient(self) -> bool:
        """Expected under this load: another writer deleted the lead or notification first, or
        the database gave up on a statement (a deadlock with a TRUNCATE, say)."""
        return set(self.codes) <= {"NOT_FOUND", "SERVICE_UNAVAILABLE"}


class Api:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def call(
        self, server: Server, query: str, variables: dict[str, Any] | None, token: str
    ) -> dict[str, Any]:
        response = await self.http.post(
            f"{server.url}/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {token}"},
        )
        try:
            body = response.json()
        except ValueError:
            raise GraphQLFailure([f"HTTP_{response.status_code}"], response.text[:200]) from None
        errors = body.get("errors")
        if errors:
            codes = [str(e.get("extensions", {}).get("code")) for e in errors]
            raise GraphQLFailure(codes, str(errors[0].get("message")))
        data: dict[str, Any] = body["data"]
        return data


# --- the table, as the oracle ------------------------------------------------------------------


@dataclass
class Table:
    rows: dict[str, tuple[bool, int | None]]  # id -> (isRead, relatedLeadId)
    unread: int


async def read_table(conn: psycopg.AsyncConnection[Any]) -> Table:
    async with asyncio.timeout(DB_WITHIN):
        cur = await conn.execute('SELECT id::text, "isRead", "relatedLeadId" FROM notifications')
        rows = {r[0]: (r[1], r[2]) for r in await cur.fetchall()}
        cur = await conn.execute('SELECT count(*) FROM notifications WHERE NOT "isRead"')
        row = await cur.fetchone()
    return Table(rows, int(row[0]) if row else 0)


async def present_ids(conn: psycopg.AsyncConnection[Any]) -> set[str]:
    async with asyncio.timeout(DB_WITHIN):
        cur = await conn.execute("SELECT id::text FROM notifications")
        return {r[0] for r in await cur.fetchall()}


async def row_exists(conn: psycopg.AsyncConnection[Any], row_id: str) -> bool:
    async with asyncio.timeout(DB_WITHIN):
        cur = await conn.execute("SELECT 1 FROM notifications WHERE id = %s::uuid", (row_id,))
        return await cur.fetchone() is not None


async def describe_rows(conn: psycopg.AsyncConnection[Any], ids: list[str]) -> str:
    async with asyncio.timeout(DB_WITHIN):
        cur = await conn.execute(
            'SELECT id::text, message, "createdAt" FROM notifications WHERE id = ANY(%s::uuid[])'
            ' ORDER BY "createdAt" DESC',
            (ids,),
        )
        found = await cur.fetchall()
    return "; ".join(f"{r[1]!r} createdAt {r[2].isoformat()} id {r[0]}" for r in found)


# --- coordination ----------------------------------------------------------------------------


class Gate:
    """Writers and client transitions pass through it; a checkpoint closes it and waits until
    nobody is inside, so the comparison runs on a database nobody writes to."""

    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._busy = 0

    @contextlib.asynccontextmanager
    async def step(self) -> AsyncIterator[None]:
        while not self._open.is_set():
            await self._open.wait()
        self._busy += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._busy -= 1
            if self._busy == 0:
                self._idle.set()

    @contextlib.asynccontextmanager
    async def closed(self, within: float) -> AsyncIterator[bool]:
        """Closed while inside; yields False when some step did not finish in time."""
        self._open.clear()
        try:
            try:
                async with asyncio.timeout(within):
                    await self._idle.wait()
                quiet = True
            except TimeoutError:
                quiet = False
            yield quiet
        finally:
            self._open.set()

    def open(self) -> None:
        self._open.set()


class LeadPool:
    """Lead ids that writers may change; some are stale (deleted, truncated): that is fine."""

    def __init__(self) -> None:
        self._ids: deque[int] = deque(maxlen=300)

    def add(self, ids: list[int]) -> None:
        self._ids.extend(ids)

    def remove(self, lead_id: int) -> None:
        with contextlib.suppress(ValueError):
            self._ids.remove(lead_id)

    def clear(self) -> None:
        self._ids.clear()

    def pick(self, rng: Random) -> int | None:
        return rng.choice(self._ids) if self._ids else None


class Run:
    """What writers, clients and the coordinator share."""

    def __init__(
        self,
        config: ModelConfig,
        servers: list[Server],
        database_url: str,
        report: Report,
        api: Api,
    ) -> None:
        self.config = config
        self.servers = servers
        self.database_url = database_url
        self.report = report
        self.api = api
        self.gate = Gate()
        self.stopping = asyncio.Event()
        self.leads = LeadPool()
        self.rolled_back: set[Tag] = set()
        self.started = time.monotonic()

    def clock(self) -> str:
        return f"t={time.monotonic() - self.started:.1f}s"

    async def pause(self, seconds: float) -> None:
        """Sleep, cut short when the run stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    def check_not_rolled_back(self, row: Mapping[str, Any], where: str) -> None:
        tag = tag_of(row)
        if tag is not None and tag in self.rolled_back:
            self.report.violation(
                "rolled_back_write_seen",
                where,
                f"{row.get('message')!r} (id {row.get('id')}) was written by a transaction "
                "that rolled back",
            )


async def connect_db(url: str) -> psycopg.AsyncConnection[Any]:
    conn = await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=10)
    # A backstop: no statement of this run should wait longer (lock waits included).
    await conn.execute("SET statement_timeout = '30s'")
    return conn


# --- writers ---------------------------------------------------------------------------------

Op = Callable[[], Awaitable[None]]


class Writer:
    """One independent writer: its own random.Random, one operation at a time, so the order of
    its commits is the order of its counter."""

    kind = "writer"

    def __init__(self, run: Run, number: int) -> None:
        self.run = run
        self.number = number
        self.name = f"w{number}"
        self.rng = Random(f"{run.config.seed}:writer:{number}")
        self.counter = 0

    def next_tag(self) -> str:
        self.counter += 1
        return f"n{self.counter}"

    def operations(self) -> dict[Op, float]:
        raise NotImplementedError

    async def open(self) -> None:
        """Set up before the first operation."""

    async def close(self) -> None:
        """Release what open() took."""

    async def handle(self, op: Op, exc: Exception) -> None:
        raise exc

    async def work(self) -> None:
        await self.open()
        try:
            while not self.run.stopping.is_set():
                async with self.run.gate.step():
                    if self.run.stopping.is_set():
                        break
                    await self.one_operation()
                await self.run.pause(self.rng.uniform(0.05, 0.4))
        finally:
            await self.close()

    async def one_operation(self) -> None:
        ops = self.operations()
        op = self.rng.choices(list(ops), weights=list(ops.values()))[0]
        try:
            async with asyncio.timeout(WRITE_WITHIN):
                await op()
            self.run.report.count(f"write.{self.kind}.{op.__name__}")
        except (TimeoutError, httpx.TransportError):
            self.run.report.count(f"write.{self.kind}.timeout_or_transport_error")
            await self.handle(op, TimeoutError())
        except Exception as exc:
            await self.handle(op, exc)


class GraphQLWriter(Writer):
    kind = "graphql"

    def __init__(self, run: Run, number: int) -> None:
        super().__init__(run, number)
        self.token = token_for(f"{self.name}@model.test")

    def operations(self) -> dict[Op, float]:
        return {
            self.create_lead: 30,
            self.change_score: 14,
            self.complete_task: 10,
            self.comment: 14,
            self.mark_read: 12,
            self.mark_all_read: 2,
            self.delete_notification: 10,
            self.delete_lead: 2,
        }

    async def call(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        server = self.rng.choice(self.run.servers)
        return await self.run.api.call(server, query, variables, token or self.token)

    async def handle(self, op: Op, exc: Exception) -> None:
        if isinstance(exc, GraphQLFailure) and exc.transient:
            self.run.report.count(f"write.graphql.{'_'.join(exc.codes).lower()}")
        elif isinstance(exc, GraphQLFailure):
            self.run.report.violation("graphql_error", f"{self.name} {op.__name__}", str(exc))
        elif not isinstance(exc, TimeoutError):
            raise exc

    async def create_lead(self) -> None:
        data = await self.call(
            CREATE_LEAD, {"i": {"firstName": self.name, "lastName": self.next_tag()}}
        )
        self.run.leads.add([int(data["createLead"]["id"])])

    async def change_score(self) -> None:
        lead = self.run.leads.pick(self.rng)
        if lead is None:
            return await self.create_lead()
        score = self.rng.randint(0, 1000)
        await self.call(UPDATE_LEAD, {"id": lead, "i": {"score": score}})

    async def complete_task(self) -> None:
        lead = self.run.leads.pick(self.rng)
        if lead is None:
            return await self.create_lead()
        title = f"{self.name} {self.next_tag()} task"
        task = await self.call(CREATE_TASK, {"l": lead, "t": title})
        await self.call(COMPLETE_TASK, {"id": task["createTask"]["id"]})

    async def comment(self) -> None:
        lead = self.run.leads.pick(self.rng)
        if lead is None:
            return await self.create_lead()
        # addComment signs with the caller's email, so the tag travels in the token.
        author = token_for(f"{self.name}-{self.next_tag()}@model.test")
        await self.call(ADD_COMMENT, {"l": lead, "b": "model comment"}, token=author)

    async def some_notification(self, unread: bool) -> str | None:
        rows = (await self.call(SOME_IDS, {"u": unread}))["getNotifications"]
        return str(self.rng.choice(rows)["id"]) if rows else None

    async def mark_read(self) -> None:
        notification = await self.some_notification(unread=True)
        if notification is not None:
            await self.call(MARK_READ, {"id": notification})

    async def mark_all_read(self) -> None:
        await self.call(MARK_ALL_READ)

    async def delete_notification(self) -> None:
        notification = await self.some_notification(unread=False)
        if notification is not None:
            await self.call(DELETE_NOTIFICATION, {"id": notification})

    async def delete_lead(self) -> None:
        lead = self.run.leads.pick(self.rng)
        if lead is not None:
            self.run.leads.remove(lead)
            await self.call(DELETE_LEAD, {"id": lead})


class SqlWriter(Writer):
    """Plain SQL on its own connection, like any other service writing to the database."""

    kind = "sql"

    def __init__(self, run: Run, number: int) -> None:
        super().__init__(run, number)
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self.new_leads: list[int] = []  # inserted by the current operation, not yet committed

    @property
    def conn(self) -> psycopg.AsyncConnection[Any]:
        assert self._conn is not None
        return self._conn

    def operations(self) -> dict[Op, float]:
        return {
            self.one_lead: 16,
            self.many_leads: 4,
            self.transaction: 12,
            self.late_commit: 12,
            self.late_rollback: 6,
            self.change_score: 8,
            self.change_many_scores: 2,
            self.complete_task: 9,
            self.comment: 9,
            self.toggle_read: 5,
            self.truncate_notifications: 0.25,
            self.truncate_leads: 0.15,
        }

    async def open(self) -> None:
        self._conn = await connect_db(self.run.database_url)

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()

    async def one_operation(self) -> None:
        self.new_leads = []
        await super().one_operation()
        self.run.leads.add(self.new_leads)

    async def handle(self, op: Op, exc: Exception) -> None:
        # Nothing was committed by a failed statement or transaction (deadlocks with TRUNCATE,
        # a lead deleted meanwhile): count it, keep going on a fresh connection if it broke.
        self.new_leads = []
        if isinstance(exc, psycopg.Error | TimeoutError):
            self.run.report.count(f"write.sql.failed_{type(exc).__name__}")
            if isinstance(exc, TimeoutError) or self.conn.broken or self.conn.closed:
                await self.close()
                await self.open()
            return
        raise exc

    # One statement each; the operations below combine them.

    async def insert_leads(self, n: int) -> None:
        names = [(self.name, self.next_tag()) for _ in range(n)]
        values = ", ".join(["(%s, %s)"] * n)
        cur = await self.conn.execute(
            f'INSERT INTO leads ("firstName", "lastName") VALUES {values} RETURNING id',
            [part for name in names for part in name],
        )
        self.new_leads += [int(r[0]) for r in await cur.fetchall()]

    async def insert_comment(self) -> None:
        author = f"{self.name}-{self.next_tag()}@model.test"
        # INSERT ... SELECT: a lead deleted meanwhile makes no row, not an error.
        await self.conn.execute(
            'INSERT INTO comments ("leadId", body, "authorEmail") '
            "SELECT id, 'model comment', %s FROM leads WHERE id = %s",
            (author, self.run.leads.pick(self.rng)),
        )

    async def insert_completed_task(self) -> None:
        title = f"{self.name} {self.next_tag()} task"
        lead = self.run.leads.pick(self.rng)
        if self.rng.random() < 0.5:
            await self.conn.execute(
                'INSERT INTO tasks ("leadId", title, "completedAt") '
                "SELECT id, %s, now() FROM leads WHERE id = %s",
                (title, lead),
            )
            return
        cur = await self.conn.execute(
            'INSERT INTO tasks ("leadId", title) SELECT id, %s FROM leads WHERE id = %s '
            "RETURNING id",
            (title, lead),
        )
        task = await cur.fetchone()
        if task is not None:
            await self.conn.execute(
                'UPDATE tasks SET "completedAt" = now() WHERE id = %s', (task[0],)
            )

    async def update_score(self) -> None:
        await self.conn.execute(
            "UPDATE leads SET score = %s WHERE id = %s",
            (self.rng.randint(0, 1000), self.run.leads.pick(self.rng)),
        )

    async def any_statement(self) -> None:
        statements: dict[Op, float] = {
            lambda: self.insert_leads(1): 4,
            self.insert_comment: 2,
            self.insert_completed_task: 2,
            self.update_score: 1,
        }
        await self.rng.choices(list(statements), weights=list(statements.values()))[0]()

    # Operations.

    async def one_lead(self) -> None:
        await self.insert_leads(1)

    async def many_leads(self) -> None:
        await self.insert_leads(self.rng.randint(2, 4))  # one statement: one bulk event

    async def transaction(self) -> None:
        async with self.conn.transaction():
            for _ in range(self.rng.randint(2, 4)):
                await self.any_statement()

    async def late_commit(self) -> None:
        await self.late(rollback=False)

    async def late_rollback(self) -> None:
        await self.late(rollback=True)

    async def late(self, *, rollback: bool) -> None:
        """Begin early (now(), hence "createdAt", is fixed at BEGIN), write, sleep while other
        writers commit, then commit late: these rows land behind rows already delivered."""
        first_tag = self.counter + 1
        try:
            async with self.conn.transaction() as tx:
                await self.run.pause(self.rng.uniform(0.0, 0.8))
                for _ in range(self.rng.randint(1, 3)):
                    await self.any_statement()
                await self.run.pause(self.rng.uniform(0.2, 2.5))
                if rollback:
                    raise psycopg.Rollback(tx)
        finally:
            if rollback:
                self.run.rolled_back.update(
                    (self.number, n) for n in range(first_tag, self.counter + 1)
                )
                self.new_leads = []

    async def change_score(self) -> None:
        await self.update_score()

    async def change_many_scores(self) -> None:
        leads = [self.run.leads.pick(self.rng) for _ in range(3)]
        # One UPDATE of several leads: one INSERT of several notifications, one bulk event.
        await self.conn.execute(
            "UPDATE leads SET score = score + 1 WHERE id = ANY(%s)",
            ([lead for lead in leads if lead is not None],),
        )

    async def complete_task(self) -> None:
        await self.insert_completed_task()

    async def comment(self) -> None:
        await self.insert_comment()

    async def toggle_read(self) -> None:
        # Back to unread now and then, so the unread count also goes up.
        await self.conn.execute(
            'UPDATE notifications SET "isRead" = NOT "isRead" '
            "WHERE id = (SELECT id FROM notifications ORDER BY random() LIMIT 1)"
        )

    async def truncate_notifications(self) -> None:
        await self.conn.execute("TRUNCATE notifications")

    async def truncate_leads(self) -> None:
        await self.conn.execute("TRUNCATE leads CASCADE")
        self.run.leads.clear()


# --- clients ---------------------------------------------------------------------------------


def notification_row(data: Mapping[str, Any]) -> Row:
    """What the model keeps of a notification (an event payload or a GraphQL row)."""
    keys = ("id", "type", "message", "isRead", "relatedLeadId", "createdAt", "cursor")
    return {key: data.get(key) for key in keys}


def feed_key(row: Row) -> tuple[str, str]:
    # ISO 8601 strings of one fixed width sort like the times; uuid text sorts like uuid.
    return (str(row["createdAt"]), str(row["id"]))


@dataclass
class Feed:
    """The client's model: what it would show, the newest cursor it holds, its unread count."""

    rows: dict[str, Row] = field(default_factory=dict)
    cursor: str | None = None
    cursor_from: str = "no cursor yet"  # the row that cursor came with, for violation messages
    cursor_from_page: bool = False  # from a page (load, refetch, catch-up), not an event
    count: int | None = None
    # Held rows that the newest cursor may not stand for, which a catch-up may rightly return
    # once more: rows from page 2 onwards of a full load that were not yet in the table when
    # page 1 (whose first row gives the cursor) was read; and every row held when the cursor
    # moves to an event that may be older than the page the client last read (see
    # ModelClient.before_event_cursor).
    uncovered: set[str] = field(default_factory=set)

    def take_cursor(self, row: Row, how: str, *, page: bool) -> None:
        self.cursor = str(row["cursor"])
        self.cursor_from = f"{how} {row['message']!r} createdAt {row['createdAt']}"
        self.cursor_from_page = page

    def remove(self, row_id: str) -> None:
        self.rows.pop(row_id, None)
        self.uncovered.discard(row_id)


@dataclass
class Loaded:
    rows: dict[str, Row]
    first: Row | None
    uncovered: set[str]
    limit: int
    pages: int


class Inbox:
    """Events received on one connection and not applied yet, in order."""

    def __init__(self) -> None:
        self.items: deque[tuple[str, Any]] = deque()
        self._ready = asyncio.Event()

    def put(self, item: tuple[str, Any]) -> None:
        self.items.append(item)
        self._ready.set()

    async def get(self) -> tuple[str, Any]:
        while not self.items:
            self._ready.clear()
            await self._ready.wait()
        return self.items.popleft()

    def older_created_waiting(self, created_at: str) -> bool:
        return any(e == CREATED and str(d["createdAt"]) < created_at for e, d in self.items)


class ClientFailure(Exception):
    """A connection or a read that failed: the client drops its connection and comes back."""


class Connection:
    """One Socket.IO connection of a client, from connect to disconnect."""

    def __init__(self, client: ModelClient, server: Server, number: int) -> None:
        self.client = client
        self.server = server
        self.name = f"{client.name}#{number}@{server.name}"
        self.sio = socketio.AsyncClient(reconnection=False)
        self.inbox = Inbox()
        self.cut = False  # nothing received from here on is applied
        self.closing = False
        self.lost = asyncio.Event()  # the server ended it, or a read failed
        self.stop_after_created = False  # disconnect once a created event has been applied
        self.worst_moment = False  # ... one with an older created event right behind it
        self.created_ids: set[str] = set()
        self.last_counter: dict[int, int] = {}
        # Rows the last load or catch-up returned: their created events, waiting in the inbox,
        # are skipped, cursor and all (the page's cursor already stands for them, and an
        # event's may stand for less).
        self.just_returned: set[str] = set()
        self.took_event_cursor = False
        self.sio.on("*", self.on_event)
        self.sio.on("disconnect", self.on_disconnect)

    async def connect(self, token: str, transports: list[str] | None) -> None:
        try:
            async with asyncio.timeout(CONNECT_WITHIN + 2):
                await self.sio.connect(
                    self.server.url,
                    auth={"token": token},
                    transports=transports,
                    wait_timeout=CONNECT_WITHIN,
                )
        except (TimeoutError, socketio.exceptions.ConnectionError) as exc:
            raise ClientFailure(f"connect to {self.server.name}: {exc!r}") from exc

    async def close(self) -> None:
        self.cut = True
        if self.closing:
            return
        self.closing = True
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await self.sio.disconnect()
        # engine.io closes its aiohttp session only on a disconnect that runs to its end (not
        # one cut by the timeout, or after the server dropped us): close it whatever happened.
        http = self.sio.eio.http
        if http is not None and not http.closed:
            with contextlib.suppress(Exception):
                await http.close()

    def on_disconnect(self, *_reason: Any) -> None:
        if not self.closing:
            self.client.run.report.count("client.dropped_by_server")
            self.lost.set()

    def on_event(self, event: str, data: Any = None) -> None:
        # Synchronous on purpose: python-socketio runs one task per message, and a handler that
        # never awaits sees the messages in the order they arrived.
        if self.cut:
            return
        self.client.run.report.count(f"event.{event}")
        if event == UNREAD_COUNT:
            self.client.feed.count = int(data["count"])
            return
        if event == CREATED:
            self.check_created(data)
        self.inbox.put((event, data))

    def check_created(self, data: Mapping[str, Any]) -> None:
        run = self.client.run
        where = f"{self.name} {run.clock()}"
        row_id = str(data["id"])
        if row_id in self.created_ids:
            run.report.violation("created_twice", where, f"{data['message']!r} id {row_id}")
            return
        self.created_ids.add(row_id)
        run.check_not_rolled_back(data, where)
        tag = tag_of(data)
        if tag is None:
            return
        writer, n = tag
        last = self.last_counter.get(writer)
        if last is not None and n <= last:
            run.report.violation(
                "writer_order",
                where,
                f"w{writer} n{n} ({data['message']!r}) arrived after w{writer} n{last}: "
                "that writer committed them in the other order",
            )
        self.last_counter[writer] = max(n, last or 0)


class ModelClient:
    """A client that follows the contract to the letter, and checks what it is given."""

    def __init__(self, run: Run, number: int) -> None:
        self.run = run
        self.name = f"c{number}"
        self.rng = Random(f"{run.config.seed}:client:{number}")
        self.token = token_for(f"{self.name}@model.test")
        self.feed = Feed()
        self.conn: Connection | None = None
        self.processor: asyncio.Task[None] | None = None
        self.oracle: psycopg.AsyncConnection[Any] | None = None
        self.connections = 0
        self.history: deque[str] = deque(maxlen=6)

    @property
    def connected(self) -> bool:
        conn = self.conn
        return conn is not None and not conn.cut and not conn.lost.is_set()

    @property
    def db(self) -> psycopg.AsyncConnection[Any]:
        assert self.oracle is not None
        return self.oracle

    def note(self, text: str) -> None:
        self.history.append(f"{self.run.clock()} {text}")

    def recent(self) -> str:
        return " | ".join(self.history)

    async def start(self) -> None:
        self.oracle = await connect_db(self.run.database_url)

    async def stop(self) -> None:
        if self.conn is not None:
            await self.drop(self.conn)
        if self.oracle is not None:
            await self.oracle.close()

    # The life of a client: connected a while, away a while, back (maybe on the other server).

    async def live(self) -> None:
        while not self.run.stopping.is_set():
            await self.stay_connected(
                self.rng.choice((self.rng.uniform(0.2, 2.0), self.rng.uniform(2.0, 8.0)))
            )
            if self.run.stopping.is_set():
                return
            async with self.run.gate.step():
                await self.disconnect(self.rng.choice(("now", "after-created", "worst-moment")))
            await self.run.pause(
                self.rng.choice((self.rng.uniform(0.05, 0.5), self.rng.uniform(0.5, 4.0)))
            )
            if self.run.stopping.is_set():
                return
            async with self.run.gate.step():
                await self.open(self.next_server())

    def next_server(self) -> Server:
        last = self.conn.server if self.conn is not None else None
        if last is not None and self.rng.random() < 0.5:
            return last
        other = [s for s in self.run.servers if s is not last]
        return self.rng.choice(other or self.run.servers)

    async def stay_connected(self, seconds: float) -> None:
        conn = self.conn
        if conn is None:
            return
        lost = asyncio.ensure_future(conn.lost.wait())
        stopping = asyncio.ensure_future(self.run.stopping.wait())
        try:
            await asyncio.wait(
                {lost, stopping}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            lost.cancel()
            stopping.cancel()

    async def disconnect(self, mode: str) -> None:
        """Drop the connection: at once, or right after applying a created event (the worst
        moment: one with an older created event waiting behind it, which is then never seen)."""
        conn = self.conn
        if conn is None:
            return
        processor = self.processor
        if mode != "now" and processor is not None and not processor.done():
            conn.worst_moment = mode == "worst-moment"
            conn.stop_after_created = True
            await asyncio.wait({processor}, timeout=CUT_WITHIN)
            conn.worst_moment = False  # not found in time: any created event will do
            if not processor.done():
                await asyncio.wait({processor}, timeout=CUT_WITHIN)
        self.run.report.count(f"client.disconnect_{mode}")
        self.note(f"disconnect {mode} (cursor from {self.feed.cursor_from})")
        await self.drop(conn)

    async def drop(self, conn: Connection) -> None:
        conn.cut = True
        if self.processor is not None:
            self.processor.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.processor
            self.processor = None
        await conn.close()

    async def open(self, server: Server) -> None:
        """Connect, load or catch up (events wait in the inbox meanwhile), then apply events."""
        self.connections += 1
        conn = Connection(self, server, self.connections)
        if self.conn is not None and self.conn.server is not server:
            self.run.report.count("client.reconnect_to_other_server")
        self.conn = conn
        try:
            async with asyncio.timeout(STEP_WITHIN):
                transports = self.rng.choice((["websocket"], None))
                await conn.connect(self.token, transports)
                before = await present_ids(self.db)
                if self.feed.cursor is None:
                    how = await self.first_load(conn)
                else:
                    how = await self.catch_up(conn)
                after = await present_ids(self.db)
                await self.check_nothing_missing(conn, before & after, how)
        except (ClientFailure, GraphQLFailure, httpx.TransportError, TimeoutError) as exc:
            self.client_failed(conn, "open", exc)
            await self.drop(conn)
            return
        self.note(f"open {conn.name}: {how}")
        self.processor = asyncio.create_task(self.process(conn), name=f"{conn.name} events")

    def client_failed(self, conn: Connection, what: str, exc: Exception) -> None:
        if isinstance(exc, GraphQLFailure) and not exc.transient:
            self.run.report.violation("client_graphql_error", f"{conn.name} {what}", str(exc))
        else:
            self.run.report.count(f"client.failed_{what}_{type(exc).__name__}")
        self.note(f"{what} failed: {exc!r}")
        conn.lost.set()

    # Reading the feed.

    async def page(
        self, conn: Connection, query: str, variables: dict[str, Any], purpose: str
    ) -> list[Row]:
        data = await self.run.api.call(conn.server, query, variables, self.token)
        page = [notification_row(row) for row in data["getNotifications"]]
        where = f"{conn.name} {purpose} {self.run.clock()}"
        limit = variables["limit"]
        if len(page) > limit:
            self.run.report.violation("page_too_long", where, f"{len(page)} rows for {limit}")
        # Feed order is stated for `before:` pages; "newest first" of an `after:` page that
        # holds late commits may mean commit order, so it is not checked.
        keys = [feed_key(row) for row in page]
        if query is FEED_BEFORE and keys != sorted(set(keys), reverse=True):
            self.run.report.violation("page_not_in_feed_order", where, f"{keys}")
        for row in page:
            self.run.check_not_rolled_back(row, where)
        return page

    def full_load_limit(self) -> int:
        roll = self.rng.random()
        return self.rng.randint(3, 25) if roll < 0.15 else 50 if roll < 0.35 else 200

    def catch_up_limit(self) -> int:
        roll = self.rng.random()
        return (
            self.rng.randint(1, 5) if roll < 0.6 else self.rng.randint(6, 20) if roll < 0.85 else 50
        )

    async def load_feed(self, conn: Connection, purpose: str, *, for_cursor: bool = True) -> Loaded:
        """The whole feed: pages with `before:` until fewer than `limit` come back."""
        limit = self.full_load_limit()
        # Read before page 1, so page 1's cursor surely stands for these rows.
        present = await present_ids(self.db) if for_cursor else set()
        rows: dict[str, Row] = {}
        first_page: list[Row] = []
        before: str | None = None
        pages = 0
        while True:
            variables = {"limit": limit, "before": before}
            page = await self.page(conn, FEED_BEFORE, variables, purpose)
            pages += 1
            if pages == 1:
                first_page = page
            repeated = [row for row in page if row["id"] in rows]
            if repeated:
                self.run.report.violation(
                    "feed_page_repeated_row",
                    f"{conn.name} {purpose} page {pages}",
                    f"{[r['message'] for r in repeated]} came back on a later `before:` page",
                )
            rows.update((row["id"], row) for row in page)
            if len(page) < limit or len(repeated) == len(page):
                break
            before = page[-1]["cursor"]
        on_first = {row["id"] for row in first_page}
        uncovered = {i for i in rows if i not in on_first and i not in present}
        first = first_page[0] if first_page else None
        return Loaded(rows, first, uncovered, limit, pages)

    def take_whole_feed(self, loaded: Loaded, how: str) -> None:
        self.feed.rows = loaded.rows
        self.feed.uncovered = loaded.uncovered
        if loaded.first is not None:  # an empty feed leaves the cursor where it was
            self.feed.take_cursor(loaded.first, how, page=True)

    async def first_load(self, conn: Connection) -> str:
        loaded = await self.load_feed(conn, "first load")
        self.take_whole_feed(loaded, "first load")
        conn.just_returned = set(loaded.rows)
        self.run.report.count("client.first_load")
        return f"first load: limit {loaded.limit}, {loaded.pages} pages, {len(loaded.rows)} rows"

    async def catch_up(self, conn: Connection) -> str:
        """`after:` the newest cursor held, continuing from each page's first row, until fewer
        than `limit` come back; then refresh (never add) the rows held from before."""
        feed = self.feed
        held = set(feed.rows) - feed.uncovered
        limit = self.catch_up_limit()
        started_from = feed.cursor_from
        returned: set[str] = set()
        pages = 0
        complete = False
        while True:
            variables = {"limit": limit, "after": feed.cursor}
            page = await self.page(conn, FEED_AFTER, variables, "catch-up")
            pages += 1
            self.take_catch_up_page(conn, page, held, returned, pages, limit)
            if len(page) < limit:
                if page:
                    feed.take_cursor(page[0], "catch-up page", page=True)
                complete = True
                break
            moved = page[0]["cursor"] != feed.cursor
            feed.take_cursor(page[0], "catch-up page", page=True)
            if not moved or pages >= MAX_CATCH_UP_PAGES:
                self.run.report.violation(
                    "catch_up_endless",
                    conn.name,
                    f"page {pages} (limit {limit}) full and the cursor "
                    + ("did not move" if not moved else "still moving"),
                )
                break
        conn.just_returned = returned
        if complete:
            # The server answered "nothing more after this cursor": whatever it did not return
            # is covered by it from now on.
            feed.uncovered.clear()
        await self.refresh_held(conn)
        self.run.report.count("client.catch_up")
        self.run.report.count("client.catch_up_pages", pages)
        self.run.report.count("client.catch_up_rows", len(returned))
        return f"catch-up from {started_from}: limit {limit}, {pages} pages, {len(returned)} rows"

    def take_catch_up_page(
        self,
        conn: Connection,
        page: list[Row],
        held: set[str],
        returned: set[str],
        number: int,
        limit: int,
    ) -> None:
        """Adds the page's rows, checking "none twice"."""
        where = f"{conn.name} catch-up page {number} (limit {limit}) {self.run.clock()}"
        for row in page:
            if row["id"] in returned:
                self.run.report.violation(
                    "catch_up_repeated_row",
                    where,
                    f"{row['message']!r} id {row['id']} on two pages",
                )
            elif row["id"] in held:
                self.run.report.violation(
                    "catch_up_returned_held_row",
                    where,
                    f"{row['message']!r} createdAt {row['createdAt']} was held before the "
                    f"disconnect (cursor from {self.feed.cursor_from})",
                )
            if row["id"] in self.feed.uncovered:
                self.run.report.count("client.catch_up_returned_uncovered_row")
            returned.add(row["id"])
            self.feed.rows[row["id"]] = row

    async def refresh_held(self, conn: Connection) -> None:
        """Read state may have changed and rows may be gone while away: update or remove the
        rows held, never add one (a row the catch-up missed must stay missing, to be seen)."""
        loaded = await self.load_feed(conn, "refresh", for_cursor=False)
        for row_id in list(self.feed.rows):
            fresh = loaded.rows.get(row_id)
            if fresh is None:
                self.feed.remove(row_id)
            else:
                self.feed.rows[row_id] = fresh

    async def check_nothing_missing(self, conn: Connection, expected: set[str], how: str) -> None:
        """Rows in the table before the connect and still there after the catch-up had no
        event on this connection: the load or catch-up alone had to bring them."""
        missing = sorted(expected - set(self.feed.rows))
        if not missing:
            return
        kind = "catch_up_missed_row" if how.startswith("catch-up") else "first_load_missed_row"
        examples = await describe_rows(self.db, missing[:4])
        self.run.report.violation(
            kind,
            f"{conn.name} {self.run.clock()}",
            f"{len(missing)} rows committed before the reconnect and still there were not "
            f"returned ({how}); e.g. {examples}; history: {self.recent()}",
        )
        # Reported once: a refetch (the first thing this connection's events do) puts the
        # model right, so later checks do not report the same rows again.
        conn.inbox.put((RESYNC, {}))
        self.run.report.count("client.repaired_after_missed_rows")

    # Applying events.

    async def process(self, conn: Connection) -> None:
        try:
            while True:
                event, data = await conn.inbox.get()
                if event in REFETCH_EVENTS:
                    await self.refetch(conn, event)
                    continue
                if event == CREATED and str(data["id"]) in conn.just_returned:
                    conn.just_returned.discard(str(data["id"]))
                    self.run.report.count("client.created_event_deduplicated")
                    continue
                if event == CREATED:
                    await self.before_event_cursor(conn, str(data["id"]))
                self.apply(event, data)
                if event == CREATED and self.should_cut_here(conn, data):
                    conn.cut = True
                    return
        except (GraphQLFailure, httpx.TransportError, TimeoutError) as exc:
            self.client_failed(conn, "refetch", exc)
        except Exception as exc:  # a fault of this model, not of the server: still fail
            self.run.report.violation("model_error", conn.name, repr(exc))
            conn.lost.set()

    async def before_event_cursor(self, conn: Connection, row_id: str) -> None:
        """Mark held rows the coming event's cursor may not stand for.

        Events carry no order a client can compare, and an event can be older than what the
        client read last: its row was deleted before a page was read, the page showed the row
        before its event came, or the other server's listener lags behind the one the client
        came from. Then rows held may have committed after that event, and a catch-up from its
        cursor may rightly return them again. The table tells: a row that still exists and is
        not held committed after everything the client holds (else a page or an earlier event
        would have brought it). Later events on one connection follow commit order, so only
        the first one on a connection, and the first after a page, needs looking at.
        """
        feed = self.feed
        first = not conn.took_event_cursor
        conn.took_event_cursor = True
        if row_id in feed.rows:
            self.run.report.count("client.created_event_for_a_row_held")
        elif not (first or feed.cursor_from_page) or await row_exists(self.db, row_id):
            return
        else:
            self.run.report.count("client.created_event_maybe_older_than_held_rows")
        feed.uncovered = set(feed.rows)

    def should_cut_here(self, conn: Connection, data: Mapping[str, Any]) -> bool:
        if not conn.stop_after_created:
            return False
        if not conn.worst_moment:
            return True
        found = conn.inbox.older_created_waiting(str(data["createdAt"]))
        if found:
            self.run.report.count("client.cut_before_an_older_created_event")
        return found

    async def refetch(self, conn: Connection, event: str) -> None:
        # Every event already received describes the table as it was before this read: the
        # refetch supersedes them (applying them afterwards could bring back an older state).
        conn.inbox.items.clear()
        async with asyncio.timeout(STEP_WITHIN):
            loaded = await self.load_feed(conn, f"refetch on {event}")
        self.take_whole_feed(loaded, "refetch")
        conn.just_returned = set(loaded.rows)
        self.run.report.count("client.refetch")

    def apply(self, event: str, data: Mapping[str, Any]) -> None:
        feed = self.feed
        row_id = str(data["id"])
        if event == CREATED:
            feed.rows[row_id] = notification_row(data)
            feed.uncovered.discard(row_id)
            feed.take_cursor(feed.rows[row_id], "created event", page=False)
        elif event == UPDATED:
            if row_id in feed.rows:  # replace the row; never add one from an update
                feed.rows[row_id] = notification_row(data)
        elif event == DELETED:
            feed.remove(row_id)

    # Comparing with the table.

    def differences(self, table: Table) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        mine = {i: (r["isRead"], r["relatedLeadId"]) for i, r in self.feed.rows.items()}
        missing = sorted(table.rows.keys() - mine.keys())
        extra = sorted(mine.keys() - table.rows.keys())
        changed = sorted(i for i in mine.keys() & table.rows.keys() if mine[i] != table.rows[i])
        if missing or extra or changed:
            text = (
                f"{len(missing)} missing, {len(extra)} not in the table, {len(changed)} with "
                f"another isRead/relatedLeadId (table {len(table.rows)} rows, client "
                f"{len(mine)})"
            )
            if extra:
                text += (
                    f"; e.g. not in the table: {[self.feed.rows[i]['message'] for i in extra[:3]]}"
                )
            if changed:
                i = changed[0]
                message = self.feed.rows[i]["message"]
                text += f"; e.g. {message!r}: client {mine[i]}, table {table.rows[i]}"
            problems.append(("feed_diverged", text))
        if self.feed.count != table.unread:
            problems.append(
                ("unread_count_wrong", f"last unread-count {self.feed.count}, table {table.unread}")
            )
        return problems


# --- the run ---------------------------------------------------------------------------------


class PackageClient:
    """The feed client package (client/) as an app uses it: one store in a Node process
    (bench/feed_store.py) on one server, its connection cut at random moments (it reconnects and
    catches up by itself). It keeps its feed by the package's own code, so it is checked from
    outside: at every checkpoint its feed and unread count must equal the table's."""

    PAGE_SIZE = 20  # small, so that catch-up and refetches read several pages

    def __init__(self, run: Run) -> None:
        self.run = run
        self.rng = Random(f"{run.config.seed}:package")
        self.server = self.rng.choice(run.servers)
        self._store: FeedStoreProcess | None = None
        self._oracle: psycopg.AsyncConnection[Any] | None = None

    @property
    def name(self) -> str:
        return f"package@{self.server.name}"

    async def start(self) -> None:
        self._oracle = await connect_db(self.run.database_url)
        self._store = await FeedStoreProcess.start(
            self.server.url,
            token_for("package@model.test"),
            self.PAGE_SIZE,
            max_seconds=self.run.config.seconds + STOP_WITHIN + 600,
        )
        await self._store.live_and_loaded(CONNECT_WITHIN)

    async def live(self) -> None:
        assert self._store is not None
        while not self.run.stopping.is_set():
            await self.run.pause(self.rng.uniform(0.3, 5.0))
            if self.run.stopping.is_set():
                return
            async with self.run.gate.step():
                await self._store.request("dropConnection")
            self.run.report.count("client.package_dropped")

    async def difference(self) -> str | None:
        """None when the store holds what the table holds; else both, short."""
        assert self._store is not None
        assert self._oracle is not None
        snapshot = await self._store.request("snapshot")  # never waits: the caller polls
        async with asyncio.timeout(DB_WITHIN):
            cur = self._oracle.cursor(row_factory=dict_row)
            rows = await (await cur.execute(FEED_QUERY)).fetchall()
        unread = sum(1 for row in rows if not row["isRead"])
        return difference(snapshot, rows, unread, self.PAGE_SIZE)

    async def stop(self) -> None:
        if self._store is not None:
            await self._store.close()
        if self._oracle is not None:
            await self._oracle.close()


class Coordinator:
    def __init__(self, run: Run) -> None:
        self.run = run
        config = run.config
        self.rng = Random(f"{config.seed}:coordinator")
        sql_writers = max(1, config.writers // 2)
        self.writers: list[Writer] = [
            GraphQLWriter(run, n) for n in range(config.writers - sql_writers)
        ] + [SqlWriter(run, n) for n in range(config.writers - sql_writers, config.writers)]
        self.clients = [ModelClient(run, n) for n in range(config.clients)]
        self.package = PackageClient(run) if config.package_client else None
        self.tasks: list[asyncio.Task[None]] = []
        self._db: psycopg.AsyncConnection[Any] | None = None

    @property
    def db(self) -> psycopg.AsyncConnection[Any]:
        assert self._db is not None
        return self._db

    async def execute(self) -> None:
        run = self.run
        self._db = await connect_db(run.database_url)
        for client in self.clients:
            await client.start()
        await asyncio.gather(*(c.open(self.rng.choice(run.servers)) for c in self.clients))
        if self.package is not None:
            await self.package.start()
        self.tasks = [self.watched(w.work(), w.name) for w in self.writers]
        self.tasks += [self.watched(c.live(), c.name) for c in self.clients]
        if self.package is not None:
            self.tasks.append(self.watched(self.package.live(), self.package.name))
        deadline = time.monotonic() + run.config.seconds
        number = 0
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(left, self.rng.uniform(*run.config.checkpoint_every)))
            if deadline - time.monotonic() > 3:
                number += 1
                truncate = self.rng.random() < run.config.truncate_at_checkpoint
                await self.checkpoint(f"checkpoint {number}", truncate=truncate)
        await self.finish()

    def watched(self, work: Awaitable[None], name: str) -> asyncio.Task[None]:
        async def guarded() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a fault of this model, not of the server: still fail
                self.run.report.violation("model_error", name, f"{exc!r}")
                raise

        return asyncio.create_task(guarded(), name=name)

    async def checkpoint(self, label: str, *, truncate: bool) -> None:
        run = self.run
        async with run.gate.closed(within=STOP_WITHIN) as quiet:
            if not quiet:
                run.report.count("checkpoint.not_quiet_in_time")
            if truncate:
                label += f" (after {await self.truncate()})"
            await self.converge(label)
            run.report.count("checkpoint.done")

    async def truncate(self) -> str:
        statement = self.rng.choice(("TRUNCATE notifications", "TRUNCATE leads CASCADE"))
        await self.db.execute(statement)
        if "leads" in statement:
            self.run.leads.clear()
        self.run.report.count("checkpoint.truncate")
        return statement

    async def converge(self, label: str) -> None:
        """Wait (bounded) until every connected client holds the table; report who does not,
        then make those refetch so that later checks start from a clean model."""
        clients = [c for c in self.clients if c.connected]
        diverged = await self.wait_converged(clients, lambda _: True)
        for client, problems in diverged.items():
            for kind, text in problems:
                self.run.report.violation(
                    kind,
                    f"{label} {client.conn.name if client.conn else client.name}",
                    f"{text}; history: {client.recent()}",
                )
        await self.check_get_unread_count(label)
        await self.check_package(label)
        if diverged:
            await self.repair(label, list(diverged))

    async def wait_converged(
        self, clients: list[ModelClient], which: Callable[[str], bool]
    ) -> dict[ModelClient, list[tuple[str, str]]]:
        deadline = time.monotonic() + self.run.config.quiet_within
        while True:
            table = await read_table(self.db)
            diverged = {}
            for client in clients:
                problems = [p for p in client.differences(table) if which(p[0])]
                if problems and client.connected:
                    diverged[client] = problems
            if not diverged or time.monotonic() >= deadline:
                return diverged
            await asyncio.sleep(0.25)

    async def check_package(self, label: str) -> None:
        """The package's store holds the table within quiet_within (it refetches by itself)."""
        if self.package is None:
            return
        deadline = time.monotonic() + self.run.config.quiet_within
        while (problem := await self.package.difference()) is not None:
            if time.monotonic() >= deadline:
                self.run.report.violation(
                    "package_feed_diverged", f"{label} {self.package.name}", problem
                )
                return
            await asyncio.sleep(0.25)
        self.run.report.count("checkpoint.package_equal")

    async def check_get_unread_count(self, label: str) -> None:
        table = await read_table(self.db)
        for server in self.run.servers:
            data = await self.run.api.call(server, UNREAD, None, token_for("checker@model.test"))
            if data["getUnreadCount"] != table.unread:
                self.run.report.violation(
                    "get_unread_count_wrong",
                    f"{label} {server.name}",
                    f"getUnreadCount {data['getUnreadCount']}, table {table.unread}",
                )

    async def repair(self, label: str, clients: list[ModelClient]) -> None:
        for client in clients:
            if client.conn is not None:
                client.conn.inbox.put((RESYNC, {}))  # the client's own refetch path
                data = await self.run.api.call(client.conn.server, UNREAD, None, client.token)
                client.feed.count = int(data["getUnreadCount"])
        left = await self.wait_converged(clients, lambda kind: kind == "feed_diverged")
        for client, problems in left.items():
            self.run.report.violation(
                "repair_failed", f"{label} {client.name}", f"even after a refetch: {problems}"
            )

    async def finish(self) -> None:
        run = self.run
        run.stopping.set()
        run.gate.open()
        _, pending = await asyncio.wait(self.tasks, timeout=STOP_WITHIN)
        for task in pending:
            run.report.violation("model_error", task.get_name(), "did not stop in time")
            task.cancel()
        await asyncio.gather(*(self.reconnect_for_the_end(c) for c in self.clients))
        await self.converge("final")
        await self.check_table_has_no_rolled_back_rows()
        # Every run ends with a TRUNCATE as the very last statement: nothing after it can hide
        # whether it was announced.
        statement = await self.truncate()
        await self.converge(f"final, after {statement}")
        for server in run.servers:
            if server.process.poll() is not None:
                run.report.violation(
                    "server_exited", server.name, f"exit code {server.process.returncode}"
                )

    async def reconnect_for_the_end(self, client: ModelClient) -> None:
        if client.connected:
            return
        if client.conn is not None:
            await client.drop(client.conn)
        await client.open(self.rng.choice(self.run.servers))
        if not client.connected:
            self.run.report.violation(
                "client_could_not_reconnect", client.name, f"history: {client.recent()}"
            )

    async def check_table_has_no_rolled_back_rows(self) -> None:
        async with asyncio.timeout(DB_WITHIN):
            cur = await self.db.execute("SELECT id::text, type::text, message FROM notifications")
            rows = await cur.fetchall()
        for row_id, kind, message in rows:
            self.run.check_not_rolled_back(
                {"id": row_id, "type": kind, "message": message}, "final table"
            )

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for client in self.clients:
            with contextlib.suppress(Exception):
                await client.stop()
        if self.package is not None:
            with contextlib.suppress(Exception):
                await self.package.stop()
        if self._db is not None:
            await self._db.close()


async def run_model(config: ModelConfig, database_url: str, log_dir: Path) -> Report:
    """Start two servers on `database_url` (migrated), run the model, stop everything."""
    ensure_token_user(database_url, MODEL_USER_ID, "model@model.test")
    report = Report(config, log_dir=log_dir)
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    async with (
        httpx.AsyncClient(timeout=HTTP_WITHIN, limits=limits) as http,
        running_servers(database_url, log_dir, http) as servers,
    ):
        run = Run(config, servers, database_url, report, Api(http))
        coordinator = Coordinator(run)
        try:
            await coordinator.execute()
        finally:
            await coordinator.close()
    return report


# --- command line ----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> ModelConfig:
    parser = argparse.ArgumentParser(
        prog="python -m bench.delivery_model",
        description="Check the delivery guarantee against a model: concurrent writers, clients "
        "that drop and catch up, two servers. Uses a throwaway database on DATABASE_URL's "
        "server (or the embedded one). Exits 1 on a violation.",
    )
    parser.add_argument("--seconds", type=float, default=300.0, help="length of the run")
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seed", type=int, default=None, help=f"default: ${SEED_ENV} or random")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else default_seed()
    return ModelConfig(seconds=args.seconds, writers=args.writers, clients=args.clients, seed=seed)


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    log(f"delivery model: seed {config.seed}")
    log_dir = Path(tempfile.mkdtemp(prefix="delivery-model-"))
    with PostgresServer.from_environment().throwaway_database("model") as url:
        report = asyncio.run(run_model(config, url, log_dir))
    print(report.summary(), flush=True)
    if report.ok:
        shutil.rmtree(log_dir, ignore_errors=True)
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
