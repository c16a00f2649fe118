"""Real servers and real clients for the realtime tests.

A server is `python -m server serve` in a subprocess (the production entry point: migrations,
uvicorn with ws_per_message_deflate=False, the app's lifespan) on a free port and the test
module's database, started by the project's one server runner (bench/harness.py). A client is
python-socketio's AsyncClient recording every event it receives.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import psycopg
import socketio
from psycopg import sql
from psycopg.rows import DictRow

from bench import harness as runner
from bench.harness import ensure_token_user
from bench.harness import free_port as free_port
from server.auth import issue_token
from tests.conftest import TOKEN_USER_ID, PostgresServer

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SECRET = "realtime-tests-secret-that-is-long-enough-for-hs256"
ALLOWED_ORIGIN = "http://allowed.example"
OTHER_ORIGIN = "http://elsewhere.example"
WAIT = 10.0  # the bound on every wait for an event (generous: CI machines are small)
# The server's LISTEN connection(s) on the current database, by the application name it sets.
LISTENER = (
    "SELECT pid FROM pg_stat_activity "
    "WHERE application_name = 'crm-listener' AND datname = current_database()"
)


async def eventually(check: Callable[[], bool], within: float = WAIT) -> None:
    """Poll something outside this process (a log file, an HTTP status) until it holds."""
    async with asyncio.timeout(within):
        while not check():  # noqa: ASYNC110 - nothing here can signal an event
            await asyncio.sleep(0.02)


def token(*, email: str = "ada@example.com", expires_in: int = 3600, secret: str = SECRET) -> str:
    return issue_token(
        user_id=TOKEN_USER_ID,
        email=email,
        secret=secret,
        expires_in_seconds=expires_in,
    )


def create_token_user(database_url: str) -> None:
    """The user token() signs for: a token whose user does not exist is refused. Its email is
    not the token's, so tests may still create ada@example.com themselves."""
    ensure_token_user(database_url, TOKEN_USER_ID, "token-user@example.com")


def expired_token() -> str:
    now = int(time.time())
    claims = {"sub": "u", "email": "ada@example.com", "iat": now - 120, "exp": now - 60}
    return jwt.encode(claims, SECRET, algorithm="HS256")


class ServerProcess(runner.ServerProcess):
    """The shared runner's server (url, log(), readyz(), terminate(), stop(), ...), made as these
    tests have always made it: ServerProcess(process, port, log_path)."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        super().__init__("server", process, port, log_path)


def start_server(
    database_url: str,
    log_dir: Path,
    *,
    extra_env: dict[str, str] | None = None,
    extra_args: Sequence[str] = (),
) -> ServerProcess:
    """A production-mode server on `database_url`, ready, with token()'s user created."""
    env = runner.production_environment(
        database_url, secret=SECRET, cors_origins=ALLOWED_ORIGIN, extra=extra_env
    )
    try:
        started = runner.start_app_server(
            "server", database_url, log_dir, env=env, args=extra_args, within=30.0
        )
    except runner.ServerNotReady as exc:
        raise AssertionError(str(exc)) from None
    create_token_user(database_url)  # after the server has migrated the database
    return ServerProcess(started.process, started.port, started.log_path)


@dataclass
class RecordingClient:
    """A real python-socketio client that keeps every event it receives, in order."""

    sio: socketio.AsyncClient = field(
        default_factory=lambda: socketio.AsyncClient(reconnection=False)
    )
    events: list[tuple[str, Any]] = field(default_factory=list)
    connect_errors: list[Any] = field(default_factory=list)
    connects: int = 0
    disconnects: int = 0

    def __post_init__(self) -> None:
        self._changed = asyncio.Condition()
        self.sio.on("*", self._on_event)
        self.sio.on("connect", self._on_connect)
        self.sio.on("disconnect", self._on_disconnect)
        self.sio.on("connect_error", self._on_connect_error)

    async def _record(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _on_event(self, event: str, data: Any = None) -> None:
        self.events.append((event, data))
        await self._record()

    async def _on_connect(self) -> None:
        self.connects += 1
        await self._record()

    async def _on_disconnect(self, reason: Any = None) -> None:
        self.disconnects += 1
        await self._record()

    async def _on_connect_error(self, data: Any = None) -> None:
        self.connect_errors.append(data)
        await self._record()

    async def connect(
        self,
        url: str,
        *,
        auth: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        transports: list[str] | None = None,
    ) -> None:
        await self.sio.connect(
            url,
            auth=auth,
            headers=headers or {},
            transports=transports,
            wait_timeout=WAIT,
        )

    async def wait_until(self, predicate: Callable[[], bool], within: float = WAIT) -> None:
        async def wait() -> None:
            async with self._changed:
                await self._changed.wait_for(predicate)

        await asyncio.wait_for(wait(), within)

    def named(self, name: str) -> list[Any]:
        return [data for event, data in self.events if event == name]

    async def next_event(
        self, name: str, where: Callable[[Any], bool] = lambda _: True, within: float = WAIT
    ) -> Any:
        """The first `name` event (received so far or within `within` s) that `where` accepts."""

        def found() -> bool:
            return any(where(data) for data in self.named(name))

        await self.wait_until(found, within)
        return next(data for data in self.named(name) if where(data))

    async def close(self) -> None:
        await close_client(self.sio)


async def close_client(sio: socketio.AsyncClient) -> None:
    """Disconnect if connected, and close engine.io's aiohttp session in any case: a client
    whose connect was refused, or that the server dropped, keeps it open, and the session's
    ResourceWarning would then fail whichever later test the garbage collector runs in."""
    if sio.connected:
        await sio.disconnect()
    http = sio.eio.http
    if http is not None and not http.closed:
        await http.close()


def insert_lead(
    conn: psycopg.Connection[DictRow], first: str = "Ada", last: str = "Lovelace"
) -> int:
    """A lead written with plain SQL (the triggers make its notification); its id."""
    row = conn.execute(
        'INSERT INTO leads ("firstName", "lastName") VALUES (%s, %s) RETURNING id', (first, last)
    ).fetchone()
    assert row is not None
    return int(row["id"])


def allow_connections(server: PostgresServer, database: str, allowed: bool) -> None:
    """From another database: PostgreSQL refuses to lock out the one a session is in."""
    with psycopg.connect(server.admin_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS {}").format(
                sql.Identifier(database), sql.Literal(allowed)
            )
        )
