"""Runs dbmate with the settings in dbmate.yml, so no setting is written twice."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import yaml

from server.settings import PROJECT_ROOT

DBMATE_CONFIG = PROJECT_ROOT / "dbmate.yml"
DBMATE_BINARY = PROJECT_ROOT / "node_modules" / ".bin" / "dbmate"
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
    url: str, *arguments: str, dump_schema: bool = False, schema_file: Path | None = None
) -> list[str]:
    if not DBMATE_BINARY.exists():
        raise MigrationError(f"{DBMATE_BINARY} is missing: run `make install` (npm ci) first")
    # Paths in dbmate.yml are relative to the project; the table name is not a path.
    settings = {
        key: value if key == "migrations_table" else str(PROJECT_ROOT / value)
        for key, value in load_dbmate_config().items()
    }
    if schema_file is not None:
        settings["schema_file"] = str(schema_file)
    command = [str(DBMATE_BINARY), "--url", dbmate_url(url)]
    for key, value in settings.items():
        command += [_CONFIG_FLAGS[key], value]
    if not dump_schema:
        command.append("--no-dump-schema")
    return [*command, *arguments]


def run_dbmate(
    url: str,
    arguments: Sequence[str],
    *,
    pg_bin_dir: Path | None = None,
    dump_schema: bool = False,
    schema_file: Path | None = None,
) -> str:
    """Run dbmate; `pg_bin_dir` puts a matching pg_dump first on PATH for `dump`."""
    env = dict(os.environ)
    if pg_bin_dir is not None:
        env["PATH"] = f"{pg_bin_dir}{os.pathsep}{env.get('PATH', '')}"
    elif dump_schema and shutil.which("pg_dump") is None:
        raise MigrationError("dumping the schema needs pg_dump on PATH")
    result = subprocess.run(  # noqa: S603 - a fixed binary with arguments we build
        dbmate_command(url, *arguments, dump_schema=dump_schema, schema_file=schema_file),
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
        check=False,
    )
    if result.returncode != 0:
        raise MigrationError(f"dbmate {' '.join(arguments)} failed:\n{result.stderr.strip()}")
    return result.stdout


def migrate(url: str) -> str:
    """Apply pending migrations; what dbmate printed is returned for the log."""
    return run_dbmate(url, ["up"])
