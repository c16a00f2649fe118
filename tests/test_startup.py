"""Start-up with real processes: several at once on an empty database, no password in any
process's arguments, and one clear line when the database cannot be reached."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest

from server.migrate import dbmate_command
from server.settings import PROJECT_ROOT, SettingsError, load_settings
from tests.child_python import run_python
from tests.conftest import PostgresServer
from tests.realtime.harness import SECRET, free_port

PASSWORD = f"pw-{uuid.uuid4().hex}"  # trust authentication ignores it; nobody may see it
MIGRATIONS = sorted(p.name for p in (PROJECT_ROOT / "db" / "migrations").glob("*.sql"))


def with_password(url: str) -> str:
    parts = urlsplit(url)
    user = parts.username or "postgres"
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{user}:{PASSWORD}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@pytest.fixture
def empty_database(postgres_server: PostgresServer) -> Iterator[str]:
    name = f"crm_empty_{uuid.uuid4().hex[:12]}"
    url = postgres_server.create_database(name)
    try:
        yield with_password(url)
    finally:
        postgres_server.drop_database(name)


def environment(database_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "JWT_SECRET": SECRET,
        "APP_ENV": "production",
    }


def run_server(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m server ARGS` to its end (60 s at most), its output kept."""
    return run_python("-m", "server", *args, env=env)


def command_lines() -> list[str]:
    """Every process's arguments, as `ps` would show them."""
    lines = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            lines.append(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:  # the process ended meanwhile
            continue
    return lines


def test_three_servers_started_together_on_an_empty_database_migrate_it_once(
    empty_database: str, tmp_path: Path
) -> None:
    ports = [free_port() for _ in range(3)]
    logs = [(tmp_path / f"{port}.log").open("wb") for port in ports]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "server", "serve", "--port", str(port)],
            cwd=PROJECT_ROOT,
            env=environment(empty_database),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for port, log in zip(ports, logs, strict=True)
    ]
    try:
        deadline = time.monotonic() + 60
        ready: set[int] = set()
        while ready != set(ports) and time.monotonic() < deadline:
            for port, process in zip(ports, processes, strict=True):
                assert process.poll() is None, (tmp_path / f"{port}.log").read_text()
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                        ready.add(port)
                except httpx.TransportError:
                    pass
            time.sleep(0.1)
        assert ready == set(ports)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=20)
        for log in logs:
            log.close()
    with psycopg.connect(empty_database) as conn:
        rows = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    assert [row[0] for row in rows] == [name.split("_", 1)[0] for name in MIGRATIONS]


def test_no_process_shows_the_database_password_in_its_arguments(empty_database: str) -> None:
    assert PASSWORD not in " ".join(dbmate_command("up"))
    migrating = subprocess.Popen(
        [sys.executable, "-m", "server", "migrate"],
        cwd=PROJECT_ROOT,
        env=environment(empty_database),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    saw_dbmate = False
    leaked: list[str] = []
    while migrating.poll() is None:  # bounded: migrating an empty database takes a second
        lines = command_lines()
        saw_dbmate = saw_dbmate or any("dbmate" in line and " up" in line for line in lines)
        leaked += [line for line in lines if PASSWORD in line]
        time.sleep(0.002)
    output = migrating.communicate(timeout=60)[0].decode()
    assert migrating.returncode == 0, output
    assert saw_dbmate, "dbmate was never seen running: the check proved nothing"
    assert leaked == []


def test_an_unreachable_database_gives_one_clear_line_and_a_non_zero_exit() -> None:
    url = f"postgresql://crm:{PASSWORD}@127.0.0.1:{free_port()}/crm"
    result = run_server("serve", env=environment(url))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert PASSWORD not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    shown = url.replace(f":{PASSWORD}@", "@")
    assert lines[0].startswith(f"error: cannot reach the database at {shown}: "), lines[0]
    assert "check that PostgreSQL runs there" in lines[0]


def test_migrate_goes_to_the_direct_url_when_the_pool_goes_through_a_pooler(
    empty_database: str,
) -> None:
    """DATABASE_URL may name PgBouncer in transaction mode; migrations (a session advisory lock,
    their own transactions) use LISTEN_DATABASE_URL. Here DATABASE_URL reaches nothing at all."""
    env = {
        **environment(f"postgresql://crm@127.0.0.1:{free_port()}/crm"),
        "LISTEN_DATABASE_URL": empty_database,
        "DATABASE_POOL_MODE": "transaction",
    }
    result = run_server("migrate", env=env)
    assert result.returncode == 0, result.stderr
    with psycopg.connect(empty_database) as conn:
        rows = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    assert [row[0] for row in rows] == [name.split("_", 1)[0] for name in MIGRATIONS]


def test_transaction_pool_mode_without_a_direct_url_is_refused_in_one_line() -> None:
    env = {
        **environment("postgresql://crm@127.0.0.1:6432/crm"),
        "DATABASE_POOL_MODE": "transaction",
    }
    env.pop("LISTEN_DATABASE_URL", None)
    result = run_server("serve", env=env)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("configuration error: DATABASE_POOL_MODE=transaction needs ")
    assert "LISTEN_DATABASE_URL" in lines[0]


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"DATABASE_POOL_MODE": "statement"}, "DATABASE_POOL_MODE='statement' must be session or"),
        ({"LISTEN_DATABASE_URL": "postgresql://db/crm", "DATABASE_URL": ""}, "but DATABASE_URL"),
        ({"DATABASE_POOL_MODE": "transaction"}, "needs LISTEN_DATABASE_URL"),
    ],
)
def test_pooler_settings_that_cannot_work_are_refused(
    environ: dict[str, str], message: str
) -> None:
    base = {"DATABASE_URL": "postgresql://pgbouncer:6432/crm", "JWT_SECRET": SECRET}
    with pytest.raises(SettingsError, match=re.escape(message)):
        load_settings({**base, **environ})


def test_the_listen_url_and_the_pool_mode_are_read() -> None:
    pooled = {"DATABASE_URL": "postgresql://pgbouncer:6432/crm", "JWT_SECRET": SECRET}
    assert load_settings(pooled).listen_database_url is None  # LISTEN uses DATABASE_URL
    assert load_settings(pooled).database_pool_mode == "session"
    direct = {**pooled, "LISTEN_DATABASE_URL": "postgresql://db/crm"}
    settings = load_settings({**direct, "DATABASE_POOL_MODE": " Transaction "})
    assert settings.listen_database_url == "postgresql://db/crm"
    assert settings.database_pool_mode == "transaction"
