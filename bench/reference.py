"""The yardstick: the seed's own stack (NestJS 11 + Apollo + Sequelize + Socket.IO) as a server.

It is not part of this repository: REFERENCE_SOURCE names the folder of the seed's NestJS build
(when unset, the team's copy beside this checkout, shared/reference/nestjs-seed next to the
project's folder, is used if it is there). It is built once into
`.reference/nestjs-seed/` (gitignored): the source is copied, then `npm ci` and `npm run build`
(its setup.sh, less the database step, which `reference_server` does on the bench's own server).
The build is redone when the copied source changes. When the folder is missing or npm cannot
install or build it, `reference_skip_reason()` says why and the scenarios run without it.

How it is driven (read from its src/): HS256 tokens with claims sub and email, signed with
JWT_SECRET, checked for signature and expiry only; sockets send the same token as
`auth.token` or an `Authorization: Bearer` header. It creates its tables at start-up
(sequelize.sync()) and seeds test@example.com. It has no triggers: its events come from its
own process only.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
from psycopg import sql

from bench.harness import ServerProcess, free_port, log, with_database
from server.auth import issue_token
from server.settings import PROJECT_ROOT

SOURCE = Path(
    os.environ.get("REFERENCE_SOURCE", PROJECT_ROOT.parent / "shared" / "reference" / "nestjs-seed")
)
BUILD_DIR = PROJECT_ROOT / ".reference" / "nestjs-seed"
STAMP = BUILD_DIR / ".built-from"
# The reference's tokens: a bench-only secret, passed to it as JWT_SECRET.
SECRET = "bench-reference-secret-long-enough-for-hs256"
SEED_EMAIL = "test@example.com"
READY_WITHIN = 90.0
BUILD_WITHIN = 900.0
# What is copied: the sources and the lock file, not a node_modules/ or dist/ left in the folder.
_SKIP = shutil.ignore_patterns("node_modules", "dist", ".git")


@dataclass
class ReferenceServer(ServerProcess):
    """A running reference server and the database it owns."""

    database_url: str = ""


def _source_digest() -> str:
    """What the build depends on: every file copied, by path and content."""
    digest = hashlib.sha256()
    for path in sorted(SOURCE.rglob("*")):
        relative = path.relative_to(SOURCE)
        if path.is_dir() or relative.parts[0] in ("node_modules", "dist", ".git"):
            continue
        digest.update(str(relative).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _build() -> str | None:
    """Copy and build; None when done, or why it could not be."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        return "node/npm not found on PATH"
    log(f"reference: building {SOURCE} into {BUILD_DIR} (npm ci, npm run build; once)")
    if BUILD_DIR.exists():
        shutil.rmtree(BUILD_DIR)
    BUILD_DIR.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(SOURCE, BUILD_DIR, ignore=_SKIP)
    steps = (
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        ["npm", "run", "build"],
    )
    build_log = BUILD_DIR / "build.log"
    with build_log.open("wb") as out:
        for step in steps:
            try:
                result = subprocess.run(
                    step,
                    cwd=BUILD_DIR,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    timeout=BUILD_WITHIN,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                return f"`{' '.join(step)}` took over {BUILD_WITHIN:.0f}s; see {build_log}"
            if result.returncode != 0:
                return f"`{' '.join(step)}` failed ({result.returncode}); see {build_log}"
    if not (BUILD_DIR / "dist" / "main.js").is_file():
        return f"the build made no dist/main.js; see {build_log}"
    return None


def reference_skip_reason() -> str | None:
    """None when the reference is built and runnable (building it first if needed), else why not."""
    if not (SOURCE / "package.json").is_file():
        return f"reference not found at {SOURCE} (set REFERENCE_SOURCE to its folder)"
    digest = _source_digest()
    built = STAMP.is_file() and STAMP.read_text().strip() == digest
    if built and (BUILD_DIR / "dist" / "main.js").is_file():
        return None
    reason = _build()
    if reason is not None:
        return f"reference not built: {reason}"
    STAMP.write_text(digest + "\n")
    return None


def reference_token(database_url: str) -> str:
    """A bearer token for the reference on its database: for its seeded user, an hour long.

    Its guard checks only the signature and expiry, but the token names a real user all the same.
    """
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT id FROM users WHERE email = %s", (SEED_EMAIL,)).fetchone()
    if row is None:
        raise RuntimeError(f"the reference's database has no {SEED_EMAIL}: was it started?")
    return issue_token(
        user_id=str(row[0]), email=SEED_EMAIL, secret=SECRET, expires_in_seconds=3600
    )


def _wait_ready(server: ReferenceServer) -> None:
    """Ready when its GraphQL endpoint answers (tables are synced before it listens)."""
    deadline = time.monotonic() + READY_WITHIN
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"reference exited with {server.process.returncode}; see {server.log_path}"
            )
        with contextlib.suppress(httpx.TransportError):
            answer = httpx.post(
                f"{server.url}/graphql", json={"query": "{ __typename }"}, timeout=2.0
            )
            if answer.status_code == 200:
                return
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"reference not ready within {READY_WITHIN}s; see {server.log_path}")


@contextlib.contextmanager
def reference_server(database_url: str, *, log_dir: Path) -> Iterator[ReferenceServer]:
    """The built reference on a fresh database of its own on `database_url`'s server, dropped
    afterwards. Call `reference_skip_reason()` first: this raises if it is not built."""
    reason = reference_skip_reason()
    if reason is not None:
        raise RuntimeError(reason)
    name = f"crm_nest_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    own_url = with_database(database_url, name)
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"reference-{port}.log"
    env = {
        **os.environ,
        "PORT": str(port),
        "DATABASE_URL": own_url,
        "JWT_SECRET": SECRET,
        "JWT_EXPIRES_IN": "24h",
    }
    try:
        with log_path.open("wb") as out:
            process = subprocess.Popen(
                [str(BUILD_DIR / "run.sh")],
                cwd=BUILD_DIR,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        server = ReferenceServer("reference", process, port, log_path, own_url)
        try:
            _wait_ready(server)
            yield server
        finally:
            server.stop()
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
