"""What the scenarios stand on: a throwaway database, server processes, the node clients, RSS.

The server runner here (`ServerProcess`, `spawn`, `wait_ready`, `start_app_server`) is the one
runner of the project: tests/realtime/harness.py builds on it, so benchmarks and tests start
`python -m server serve` the same way. bench never imports tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import httpx
import psycopg
from psycopg import sql

from server.auth import issue_token
from server.embedded_postgres import EmbeddedPostgres, client_bin_dir
from server.migrate import run_dbmate
from server.serialization import NotificationPayload, notification_payload
from server.settings import DATA_DIR, PROJECT_ROOT

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
SECRET = "bench-secret-that-is-long-enough-for-hs256-signatures"
READY_WITHIN = 60.0


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


BENCH_USER_ID = "00000000-0000-4000-8000-00000000b0b0"


def ensure_token_user(database_url: str, user_id: str, email: str) -> None:
    """The user a benchmark's tokens are signed for: a token whose user does not exist (or was
    deleted) is refused. It cannot sign in (no password hashes to 'no sign-in')."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            """INSERT INTO users (id, email, "passwordHash") VALUES (%s, %s, 'no sign-in')
               ON CONFLICT DO NOTHING""",
            (user_id, email),
        )


def bench_token() -> str:
    return issue_token(
        user_id=BENCH_USER_ID,
        email="bench@example.com",
        secret=SECRET,
        expires_in_seconds=3600,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


# --- database --------------------------------------------------------------------------------


@dataclass
class PostgresServer:
    """Where throwaway databases are made: DATABASE_URL's server, or the embedded one."""

    admin_url: str
    kind: str

    @classmethod
    def from_environment(cls) -> PostgresServer:
        configured = os.environ.get("DATABASE_URL")
        if configured:
            return cls(configured, "DATABASE_URL")
        embedded = EmbeddedPostgres(DATA_DIR / "postgres")
        return cls(embedded.url("postgres"), "embedded")

    def version(self) -> str:
        with psycopg.connect(self.admin_url) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return str(row[0]) if row else "?"

    def settings(self) -> dict[str, str]:
        names = ("fsync", "synchronous_commit", "shared_buffers", "max_connections")
        with psycopg.connect(self.admin_url) as conn:
            return {name: str(conn.execute(f"SHOW {name}").fetchone()[0]) for name in names}  # type: ignore[index]

    @contextlib.contextmanager
    def throwaway_database(self, purpose: str) -> Iterator[str]:
        """A migrated database of its own, dropped afterwards whatever happens."""
        name = f"crm_bench_{purpose}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        url = with_database(self.admin_url, name)
        try:
            run_dbmate(url, ["up"])
            yield url
        finally:
            with psycopg.connect(self.admin_url, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


def pgbench_path() -> Path:
    return client_bin_dir() / "pgbench"


def libpq_env(url: str) -> dict[str, str]:
    """PGHOST/PGPORT/PGUSER/PGDATABASE/PGPASSWORD for client programs (pgbench)."""
    parts = urlsplit(url)
    env: dict[str, str] = {}
    query = dict(parse_qsl(parts.query))
    host = query.get("host") or parts.hostname
    if host:
        env["PGHOST"] = host
    if parts.port:
        env["PGPORT"] = str(parts.port)
    if parts.username:
        env["PGUSER"] = parts.username
    if parts.password:
        env["PGPASSWORD"] = parts.password
    env["PGDATABASE"] = parts.path.lstrip("/")
    return env


# --- processes -------------------------------------------------------------------------------


def process_tree(root: int) -> list[int]:
    """`root` and every descendant (uvicorn's supervisor spawns its workers)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: the fields follow the last ")".
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry.name)] = int(fields[1])
    tree, frontier = [root], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        tree += children
        frontier += children
    return tree


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])
    return total / ticks


@dataclass
class ServerProcess:
    """A server in a subprocess on its own port, everything it prints in `log_path`."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def readyz(self) -> int:
        return httpx.get(f"{self.url}/readyz", timeout=2.0).status_code

    def pids(self) -> list[int]:
        return process_tree(self.process.pid)

    def rss_kib(self) -> int:
        return sum(rss_kib(pid) for pid in self.pids())

    def stop(self) -> None:
        """SIGTERM, then SIGKILL to the whole tree (uvicorn's workers too) after 15 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._kill_tree()

    def terminate(self, timeout: float = 10.0) -> int:
        """SIGTERM, then the exit code; kills (and fails) a server that does not stop in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill_tree()
            raise AssertionError(f"{self.name} did not exit within {timeout}s of SIGTERM") from None

    def _kill_tree(self) -> None:
        for pid in reversed(self.pids()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(timeout=5)


class ServerNotReady(RuntimeError):
    """The server exited, or did not answer in time; the message ends with its log's tail."""

    def __init__(self, server: ServerProcess, what: str) -> None:
        tail = "\n".join(server.log().splitlines()[-40:]) if server.log_path.exists() else ""
        super().__init__(f"{server.name} {what}; log {server.log_path}:\n{tail}")


def wait_ready(server: ServerProcess, path: str = "/readyz", within: float = READY_WITHIN) -> None:
    """Until `path` answers 200; a server that exits or stays unready is stopped and raises."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise ServerNotReady(server, f"exited with {server.process.returncode}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{server.url}{path}", timeout=2.0).status_code == 200:
                return
        time.sleep(0.05)
    server.stop()
    raise ServerNotReady(server, f"not ready within {within}s")


_wait_ready = wait_ready  # the name the scenarios used before the runner was shared


def spawn(name: str, command: list[str], env: dict[str, str], log_dir: Path) -> ServerProcess:
    """`command --port <free port>`, its output in `log_dir`; not waited for."""
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}-{port}.log"
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            [*command, "--port", str(port)],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return ServerProcess(name, process, port, log_path)


def production_environment(
    database_url: str, *, secret: str, cors_origins: str, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """This process's environment, with what `python -m server serve` needs in production."""
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "APP_ENV": "production",
        "JWT_SECRET": secret,
        "CORS_ORIGINS": cors_origins,
        **(extra or {}),
    }


def start_app_server(
    name: str,
    database_url: str,
    log_dir: Path,
    *,
    env: dict[str, str],
    args: Sequence[str] = (),
    within: float = READY_WITHIN,
) -> ServerProcess:
    """`python -m server serve [args]` (the production entry point: migrations, uvicorn, the
    app's lifespan) on a free port, once /readyz answers 200 (database and LISTEN up)."""
    server = spawn(name, [sys.executable, "-m", "server", "serve", *args], env, log_dir)
    wait_ready(server, "/readyz", within)
    return server


@contextlib.contextmanager
def app_server(database_url: str, *, workers: int, log_dir: Path) -> Iterator[ServerProcess]:
    """`python -m server serve --workers N`: the production entry point, on `database_url`."""
    ensure_token_user(database_url, BENCH_USER_ID, "bench@example.com")
    env = production_environment(
        database_url,
        secret=SECRET,
        cors_origins="http://localhost:3000",
        # Per-connection and per-request log lines are the server's normal cost; keep them.
        # Every benchmark client comes from 127.0.0.1: lift the per-address cap (default 50).
        extra={"SOCKETIO_MAX_CONNECTIONS_PER_ADDRESS": "1000000"},
    )
    server = start_app_server(
        f"app-w{workers}", database_url, log_dir, env=env, args=["--workers", str(workers)]
    )
    try:
        if workers > 1:
            # /readyz answered from one worker; give the others their start-up too.
            deadline = time.monotonic() + READY_WITHIN
            while len(server.pids()) < workers + 1 and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(1.0)
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def bare_server(log_dir: Path) -> Iterator[ServerProcess]:
    server = spawn("bare", [sys.executable, "-m", "bench.bare_server"], dict(os.environ), log_dir)
    try:
        wait_ready(server, "/readyz")
        yield server
    finally:
        server.stop()


# --- the node clients ------------------------------------------------------------------------


class NodeClients:
    """bench/fanout_clients.mjs: C official Socket.IO clients, driven over stdin/stdout."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls) -> AsyncIterator[NodeClients]:
        process = await asyncio.create_subprocess_exec(
            "node",
            str(BENCH_DIR / "fanout_clients.mjs"),
            cwd=PROJECT_ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 24,
        )
        clients = cls(process)
        try:
            yield clients
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(clients.call({"cmd": "exit"}), 10)
            if process.returncode is None:
                process.kill()
            await process.wait()

    @property
    def pid(self) -> int:
        return self._process.pid

    async def call(self, command: dict[str, Any], within: float = 120.0) -> dict[str, Any]:
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        self._process.stdin.write((json.dumps(command) + "\n").encode())
        await self._process.stdin.drain()
        line = await asyncio.wait_for(self._process.stdout.readline(), within)
        if not line:
            raise RuntimeError(f"node clients exited during {command['cmd']}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"node clients: {command['cmd']}: {answer['error']}")
        return answer


async def run_node_json(script: str, options: dict[str, Any], within: float) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        "node",
        str(BENCH_DIR / script),
        json.dumps(options),
        cwd=PROJECT_ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), within)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        raise RuntimeError(f"node {script} exited with {process.returncode}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


def sample_payload(tag: str, seq: int, sent_ms: float) -> NotificationPayload:
    """What our server sends for a lead, built by the server's own serialiser (same size)."""
    first, last = lead_name(tag, seq, sent_ms)
    now = datetime.now(UTC)
    return notification_payload(
        {
            "id": uuid.uuid4(),
            "type": "lead_created",
            "title": "New Lead Created",
            "message": f"{first} {last} added to pipeline",
            "isRead": False,
            "relatedLeadId": seq + 1,
            "createdAt": now,
            "updatedAt": now,
            "commitSeq": 104233,
            "insertSeq": 1042330,
        },
        cursor_secret=SECRET,
    )


def lead_name(tag: str, seq: int, sent_ms: float, late_ms: float = 0.0) -> tuple[str, str]:
    """The node side reads tag, sequence, send time and lateness back from "<first> <last>"."""
    return f"bench-{tag}", f"{seq}@{sent_ms:.3f}+{late_ms:.3f}"


def now_ms() -> float:
    """The machine's real-time clock, as node's performance.timeOrigin + performance.now()."""
    return time.time() * 1000.0
