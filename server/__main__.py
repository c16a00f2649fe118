"""Command line: `python -m server serve | migrate | dump-schema | psql | create-user`.

`python -m server <command> --help` says what each does, with examples.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import logging.config
import os
import shutil
import sys
import tempfile
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from server.errors import BadInput, DomainError
from server.settings import DATA_DIR, Settings, SettingsError, load_settings

logger = logging.getLogger("server")
# Twice the largest Socket.IO message a client may send (realtime/sio.py), for framing overhead.
WEBSOCKET_MAX_FRAME_BYTES = 32 * 1024

# server.metrics is not imported here: prometheus_client must load after this is set.
MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _database_url(settings: Settings) -> tuple[str, Path | None]:
    """DATABASE_URL, or the embedded server's URL (started on demand) and its bin folder."""
    if settings.database_url is not None:
        return settings.database_url, None
    from server.embedded_postgres import EmbeddedPostgres

    embedded = EmbeddedPostgres(DATA_DIR / "postgres")
    url = embedded.ensure_database()
    logger.info("action=embedded_database_ready pgdata=%s", embedded.pgdata)
    return url, embedded.bin_dir


def _direct(settings: Settings, url: str) -> str:
    """LISTEN_DATABASE_URL when set (it is only with DATABASE_URL), else `url`: migrations hold
    a session-level advisory lock and run in transactions of their own, which a pooler in
    transaction mode cannot keep together."""
    return settings.listen_database_url or url


def command_migrate(settings: Settings, _args: argparse.Namespace) -> int:
    from server.migrate import migrate

    url, _ = _database_url(settings)
    print(migrate(_direct(settings, url)), end="")
    return 0


def command_dump_schema(settings: Settings, _args: argparse.Namespace) -> int:
    from server.migrate import run_dbmate

    url, bin_dir = _database_url(settings)
    run_dbmate(_direct(settings, url), ["up"], pg_bin_dir=bin_dir, dump_schema=True)
    print("db/schema.sql written")
    return 0


@contextlib.contextmanager
def metrics_folder(workers: int) -> Iterator[None]:
    """With several workers, PROMETHEUS_MULTIPROC_DIR for prometheus_client's multiprocess mode
    (server/metrics.py): the operator's folder emptied of old values, or a fresh temporary one
    removed afterwards. Set before any worker starts, hence before prometheus_client loads."""
    if workers <= 1:
        yield
        return
    configured = os.environ.get(MULTIPROC_DIR_ENV)
    if configured:
        folder = Path(configured)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):
            stale.unlink()
        yield
        return
    folder = Path(tempfile.mkdtemp(prefix="crm-metrics-"))
    os.environ[MULTIPROC_DIR_ENV] = str(folder)
    try:
        yield
    finally:
        os.environ.pop(MULTIPROC_DIR_ENV, None)
        shutil.rmtree(folder, ignore_errors=True)


def command_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from server.accounts import creates_development_user, ensure_development_user
    from server.logs import log_config
    from server.migrate import migrate
    from server.realtime.drain import serve

    url, _ = _database_url(settings)
    print(migrate(_direct(settings, url)), end="")
    if creates_development_user(settings):
        asyncio.run(ensure_development_user(url))
    # Worker processes read their settings from the environment: hand them the resolved ones.
    os.environ["DATABASE_URL"] = url
    os.environ["APP_ENV"] = settings.app_env
    os.environ["JWT_SECRET"] = settings.jwt_secret
    if settings.jwt_secret_generated:
        logger.warning("action=jwt_secret_generated detail=development secret kept in .data/")
    if args.workers > 1 and "polling" in settings.socketio_transports:
        # Each polling request of one session may reach another worker, which does not know it.
        logger.warning(
            "action=polling_with_workers workers=%d detail=set SOCKETIO_TRANSPORTS=websocket "
            "and have clients use transports ['websocket'] (docs/DEPLOYMENT.md)",
            args.workers,
        )
    with metrics_folder(args.workers):
        # uvicorn.run, with the drain on SIGTERM (server/realtime/drain.py).
        serve(
            uvicorn.Config(
                "server.app:create_app_from_environment",
                factory=True,
                host=args.host or settings.host,
                port=args.port or settings.port,
                workers=args.workers,
                # Per-message deflate doubles memory per socket and costs CPU on every message.
                ws_per_message_deflate=False,
                # uvicorn's websockets-sansio protocol with leaner per-connection state; the one
                # whose connections FanoutManager writes to directly (realtime/ws_protocol.py).
                ws="server.realtime.ws_protocol:LeanWebSocketsProtocol",
                # engine.io pings every socket already (and closes a silent one): no second ping.
                ws_ping_interval=None,
                # Refuse big client frames before buffering them: engine.io's own cap is smaller.
                ws_max_size=WEBSOCKET_MAX_FRAME_BYTES,
                # The same logging in every worker: uvicorn applies this dict in each process.
                log_config=log_config(settings),
                log_level=settings.log_level.lower(),
                lifespan="on",
                timeout_graceful_shutdown=5,
            )
        )
    return 0


def _read_password() -> str:
    """From a prompt (asked twice) on a terminal, else the first line of standard input."""
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Password again: ") != password:
            raise BadInput("the passwords differ")
        return password
    return sys.stdin.readline().rstrip("\r\n")


def command_psql(settings: Settings, args: argparse.Namespace) -> int:
    """Open psql on the configured database (the shipped psql when none is on PATH)."""
    import shutil

    from server.database_url import password, without_password
    from server.embedded_postgres import shipped_client

    url, _ = _database_url(settings)
    shipped = shipped_client("psql")
    psql = str(shipped) if shipped is not None else shutil.which("psql")
    if psql is None:
        print("psql: not found", file=sys.stderr)
        return 1
    # The password goes in psql's environment, not its arguments (server/database_url.py).
    secret = password(url)
    if secret is not None:
        os.environ["PGPASSWORD"] = secret
    url = without_password(url)
    if settings.uses_embedded_database:
        # Keep the embedded server up while psql runs: this process owns it.
        import subprocess

        return subprocess.call([psql, url, *args.psql_args])  # noqa: S603 - psql with our URL
    os.execv(psql, [psql, url, *args.psql_args])  # noqa: S606 - replace this process with psql


def command_create_user(settings: Settings, args: argparse.Namespace) -> int:
    from server.accounts import create_user

    url, _ = _database_url(settings)
    try:
        password = _read_password()
        user = asyncio.run(
            create_user(
                url, email=args.email, password=password, reset_password=args.reset_password
            )
        )
    except DomainError as exc:
        print(f"create-user: {exc}", file=sys.stderr)
        return 1
    action = "password changed for" if args.reset_password else "created"
    print(f"user {action}: {user['email']} ({user['id']})")
    return 0


def _examples(*lines: str) -> str:
    return "examples:\n" + textwrap.indent("\n".join(lines), "  ")


def _command(
    commands: Any, name: str, summary: str, description: str, *examples: str
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=summary,
        # Raw, for the examples' line breaks: so the description is wrapped here.
        description=textwrap.fill(description, 78),
        epilog=_examples(*examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m server",
        description=textwrap.fill(
            "The CRM notification server: GraphQL and Socket.IO on one port, "
            "notifications from PostgreSQL triggers. Settings come from the environment "
            "(DATABASE_URL, JWT_SECRET, APP_ENV, ...; see README.md); with DATABASE_URL unset, an "
            "embedded PostgreSQL under .data/ is used.",
            78,
        ),
        epilog=_examples(
            "python -m server serve",
            "python -m server migrate",
            "python -m server <command> --help",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="<command>")

    serve = _command(
        commands,
        "serve",
        "migrate, then serve GraphQL and Socket.IO",
        "Apply pending migrations, then serve POST /graphql, Socket.IO at /socket.io/, "
        "/healthz, /readyz (and /metrics where enabled) on one port until SIGTERM or Ctrl-C. "
        "In development (embedded database) the user test@example.com / password is created. "
        "With --workers N, N processes share the port: set SOCKETIO_TRANSPORTS=websocket and "
        "see docs/DEPLOYMENT.md.",
        "python -m server serve",
        "python -m server serve --host 0.0.0.0 --port 8080",
        "SOCKETIO_TRANSPORTS=websocket python -m server serve --workers 4",
    )
    serve.add_argument("--host", help="listen address (default: HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default: PORT or 3001)")
    serve.add_argument("--workers", type=int, default=1, help="server processes (default: 1)")
    serve.set_defaults(handler=command_serve)

    migrate = _command(
        commands,
        "migrate",
        "apply pending migrations",
        "Apply pending database migrations (db/migrations, with dbmate) to DATABASE_URL or the "
        "embedded database, and print what was applied. Safe to repeat; run it as the release "
        "step before starting new server processes.",
        "python -m server migrate",
        "DATABASE_URL=postgresql://crm@db/crm python -m server migrate",
    )
    migrate.set_defaults(handler=command_migrate)

    dump = _command(
        commands,
        "dump-schema",
        "migrate, then rewrite db/schema.sql",
        "Apply pending migrations, then rewrite db/schema.sql with what `dbmate dump` prints "
        "for the migrated schema (commit it: a test fails when it is stale).",
        "python -m server dump-schema",
        "make schema",
    )
    dump.set_defaults(handler=command_dump_schema)

    psql = _command(
        commands,
        "psql",
        "open psql on the configured database",
        "Open psql on DATABASE_URL or the embedded database (the shipped psql when none is "
        "on PATH); every argument after `psql` goes to psql itself.",
        "python -m server psql",
        "python -m server psql -c 'TABLE notifications'",
        "python -m server psql < script.sql",
    )
    psql.add_argument("psql_args", nargs=argparse.REMAINDER, help="arguments for psql")
    psql.set_defaults(handler=command_psql)

    create = _command(
        commands,
        "create-user",
        "create a user who can sign in",
        "Create a user who can sign in. The password is asked for at a prompt, or read from "
        "the first line of standard input when that is not a terminal (for scripts).",
        "python -m server create-user ada@example.com",
        'echo "$PASSWORD" | python -m server create-user ada@example.com',
        "python -m server create-user ada@example.com --reset-password",
    )
    create.add_argument("email", help="the user's email (stored lower-case)")
    create.add_argument(
        "--reset-password",
        action="store_true",
        help="set a new password for an existing user instead",
    )
    create.set_defaults(handler=command_create_user)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["psql"] and not {"-h", "--help"} & set(arguments[1:2]):
        # Everything after `psql` is psql's own, options included.
        args = argparse.Namespace(handler=command_psql, psql_args=arguments[1:])
    else:
        args = build_parser().parse_args(arguments)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    from server.logs import log_config

    logging.config.dictConfig(log_config(settings))
    from server.embedded_postgres import EmbeddedPostgresMissing
    from server.migrate import MigrationError

    handler = args.handler
    try:
        result: int = handler(settings, args)
    # An unreachable database, a failed migration, or no database at all: one line, no traceback.
    except (MigrationError, EmbeddedPostgresMissing) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return result


if __name__ == "__main__":
    sys.exit(main())
