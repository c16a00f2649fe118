"""Runs dbmate with the settings in dbmate.yml, so no setting is written twice."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import yaml

from server.database_url import without_password
from server.settings import PROJECT_ROOT

DBMATE_CONFIG = PROJECT_ROOT / "dbmate.yml"
DBMATE_BINARY = PROJECT_ROOT / "node_modules" / ".bin" / "dbmate"
MIGRATION_LOCK = 4352631887303  # this project's advisory lock key for "migrating"
_CONFIG_FLAGS = {
    "migrations_dir": "--migrations-dir",
    "schema_file": "--schema-file",
    "migrations_table": "--migrations-table",
}


class MigrationError(RuntimeError):
    """dbmate failed; the message carries what it printed."""


def load_dbmate_config(path: Path = DBMATE_CONFIG) -> dict[str, str]:
    raw: Any = yaml.safe_load(path.read_text())
    if not isinstance(raw, dict) or set(raw) != set(_CONFIG_FLAGS):
        raise MigrationError(f"{path} must set exactly {sorted(_CONFIG_FLAGS)}")
    return {key: str(value) for key, value in raw.items()}


def dbmate_url(url: str) -> str:
    """dbmate's spelling of a libpq URL: a Unix socket is `socket=`, not `host=`.

    dbmate (lib/pq) also asks for TLS unless told otherwise; like libpq's default we let the
    URL decide, and fall back to no TLS when it does not say.
    """
    parts = urlsplit(url)
    query = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        query.append(("socket" if key == "host" and value.startswith("/") else key, value))
    if not any(key == "sslmode" for key, _ in query):
        query.append(("sslmode", "disable"))
    scheme = "postgres" if parts.scheme in ("postgres", "postgresql") else parts.scheme
    return urlunsplit((scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def dbmate_command(
    *arguments: str,
    dump_schema: bool = False,
    schema_file: Path | None = None,
    migrations_dir: Path | None = None,
) -> list[str]:
    """dbmate's arguments, without the URL: it reads DATABASE_URL from its environment
    (`dbmate_environment`), so the password never shows in any process's arguments."""
    if not DBMATE_BINARY.exists():
        raise MigrationError(f"{DBMATE_BINARY} is missing: run `make install` (npm ci) first")
    # Paths in dbmate.yml are relative to the project; the table name is not a path.
    settings = {
        key: value if key == "migrations_table" else str(PROJECT_ROOT / value)
        for key, value in load_dbmate_config().items()
    }
    if schema_file is not None:
        settings["schema_file"] = str(schema_file)
    if migrations_dir is not None:
        settings["migrations_dir"] = str(migrations_dir)
    command = [str(DBMATE_BINARY)]
    for key, value in settings.items():
        command += [_CONFIG_FLAGS[key], value]
    if not dump_schema:
        command.append("--no-dump-schema")
    return [*command, *arguments]


def dbmate_environment(url: str, *, pg_bin_dir: Path | None = None) -> dict[str, str]:
    """This process's environment plus dbmate's DATABASE_URL (and pg_dump first on PATH)."""
    env = dict(os.environ)
    env["DATABASE_URL"] = dbmate_url(url)
    if pg_bin_dir is not None:
        env["PATH"] = f"{pg_bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_dbmate(
    url: str,
    arguments: Sequence[str],
    *,
    pg_bin_dir: Path | None = None,
    dump_schema: bool = False,
    schema_file: Path | None = None,
    migrations_dir: Path | None = None,
) -> str:
    """Run dbmate; `pg_bin_dir` puts a matching pg_dump first on PATH for `dump`."""
    if pg_bin_dir is None and dump_schema and shutil.which("pg_dump") is None:
        raise MigrationError("dumping the schema needs pg_dump on PATH")
    command = dbmate_command(
        *arguments, dump_schema=dump_schema, schema_file=schema_file, migrations_dir=migrations_dir
    )
    result = subprocess.run(  # noqa: S603 - a fixed binary with arguments we build
        command,
        capture_output=True,
        text=True,
        env=dbmate_environment(url, pg_bin_dir=pg_bin_dir),
        cwd=PROJECT_ROOT,
        check=False,
    )
    if result.returncode != 0:
        raise MigrationError(f"dbmate {' '.join(arguments)} failed:\n{result.stderr.strip()}")
    return result.stdout


class DatabaseUnreachable(MigrationError):
    """The database did not answer at start-up: one line that says where and what to check."""

    def __init__(self, url: str, detail: str) -> None:
        super().__init__(
            f"cannot reach the database at {without_password(url)}: {detail}; check that "
            "PostgreSQL runs there and accepts connections, and DATABASE_URL's host, port, "
            "database, user and password"
        )


def migrate(url: str) -> str:
    """Apply pending migrations; what dbmate printed is returned for the log.

    Several processes may start at once on an empty database: an advisory lock lets one
    migrate while the others wait, and then find nothing pending. The lock belongs to this
    session, so `url` must reach PostgreSQL itself, never a pooler in transaction mode
    (LISTEN_DATABASE_URL; `python -m server` passes it).
    """
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise DatabaseUnreachable(url, detail) from exc
    with conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        return run_dbmate(url, ["up"])  # the lock goes with the connection
