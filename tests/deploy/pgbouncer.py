"""Debian's PgBouncer in transaction pooling mode, run by a test in a folder of its own.

It listens on a free port and serves one database alias, `POOLED_DATABASE`, that points at the
test's database: nothing can reach the database under that name except through PgBouncer, so a
server that works with a URL naming it went through the pooler. PgBouncer refuses to run as
root: as root it is started with `-u` as the owner of the database's Unix socket folder (the
embedded server's, which only that user may enter), or `nobody` for a TCP address.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict

from tests.deploy.process import stop_fast
from tests.realtime.harness import free_port

POOLED_DATABASE = "crm_pooled"
STARTS_WITHIN = 10.0


def pgbouncer_binary() -> str | None:
    """Debian puts pgbouncer in /usr/sbin, which a non-root PATH may lack."""
    return shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/local/sbin")


@dataclass
class PgBouncer:
    process: subprocess.Popen[bytes]
    port: int
    folder: Path
    user: str

    @property
    def url(self) -> str:
        """A libpq URL of the test's database through PgBouncer."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{POOLED_DATABASE}"

    def log(self) -> str:
        path = self.folder / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """SIGTERM is PgBouncer's immediate shutdown (SIGINT would wait for its clients)."""
        try:
            stop_fast(self.process)
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def _run_as(host: str) -> str | None:
    """The user PgBouncer must run as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    if host.startswith("/"):
        owner = pwd.getpwuid(Path(host).stat().st_uid).pw_name
        if owner != "root":
            return owner
    return "nobody"


def config(upstream_url: str, port: int, folder: Path, *, pool_size: int) -> tuple[str, str]:
    """pgbouncer.ini and userlist.txt for `upstream_url` in transaction pooling mode."""
    upstream = conninfo_to_dict(upstream_url)
    user = str(upstream.get("user") or "postgres")
    target = " ".join(
        f"{key}={upstream[key]}" for key in ("host", "port", "password") if upstream.get(key)
    )
    ini = f"""[databases]
{POOLED_DATABASE} = {target} dbname={upstream["dbname"]} user={user}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder / "userlist.txt"}
pool_mode = transaction
; Fewer server connections than the servers' pools hold: transactions must share them.
default_pool_size = {pool_size}
reserve_pool_size = 0
max_client_conn = 200
logfile = {folder / "pgbouncer.log"}
pidfile = {folder / "pgbouncer.pid"}
"""
    return ini, f'"{user}" ""\n'


def start_pgbouncer(binary: str, upstream_url: str, *, pool_size: int = 3) -> PgBouncer:
    """PgBouncer in the foreground on a free port, serving `upstream_url` as POOLED_DATABASE."""
    folder = Path(tempfile.mkdtemp(prefix="crm-pgbouncer-"))
    port = free_port()
    ini, users = config(upstream_url, port, folder, pool_size=pool_size)
    (folder / "pgbouncer.ini").write_text(ini)
    (folder / "userlist.txt").write_text(users)
    command = [binary]
    run_as = _run_as(str(conninfo_to_dict(upstream_url).get("host") or ""))
    if run_as is not None:
        command += ["-u", run_as]
        shutil.chown(folder, user=run_as)
        for path in folder.iterdir():
            shutil.chown(path, user=run_as)
    with (folder / "pgbouncer.out").open("wb") as out:
        process = subprocess.Popen(
            [*command, str(folder / "pgbouncer.ini")],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    user = str(conninfo_to_dict(upstream_url).get("user") or "postgres")
    bouncer = PgBouncer(process, port, folder, user)
    deadline = time.monotonic() + STARTS_WITHIN
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = (folder / "pgbouncer.out").read_text(errors="replace")
            bouncer.stop()
            raise AssertionError(f"pgbouncer exited with {process.returncode}:\n{output}")
        try:
            with psycopg.connect(bouncer.url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return bouncer
        except psycopg.OperationalError:
            time.sleep(0.05)
    log = bouncer.log()
    bouncer.stop()
    raise AssertionError(f"pgbouncer not answering within {STARTS_WITHIN}s:\n{log}")
