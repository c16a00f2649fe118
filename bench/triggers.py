"""Scenario 4: what the notification triggers cost a writer, measured with pgbench.

Single-row `INSERT INTO leads` at 1, 4 and 16 concurrent writers, three ways in one throwaway
database: every trigger on (production); the notifications are written but not announced
(the announce trigger disabled: what pg_notify itself costs); no user trigger on leads at all.
A LISTEN connection drains the channel throughout, as the server's listener would.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from bench.harness import PostgresServer, libpq_env, log, pgbench_path

SCRIPT = """INSERT INTO leads ("firstName", "lastName") VALUES ('Bench', 'Writer');\n"""
MODES = {
    "triggers on": [],
    "no pg_notify": ["ALTER TABLE notifications DISABLE TRIGGER USER"],
    "triggers off": ["ALTER TABLE leads DISABLE TRIGGER USER"],
}
RESET = ["ALTER TABLE leads ENABLE TRIGGER USER", "ALTER TABLE notifications ENABLE TRIGGER USER"]


@dataclass
class TriggerOptions:
    writers: list[int]
    seconds: int
    log_dir: Path


async def _drain_notifications(database_url: str, stop: asyncio.Event) -> int:
    received = 0
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("LISTEN notifications")
        while not stop.is_set():
            async for _notify in conn.notifies(timeout=0.5):
                received += 1
    return received


async def _pgbench(database_url: str, script: Path, writers: int, seconds: int) -> dict[str, Any]:
    import os

    process = await asyncio.create_subprocess_exec(
        str(pgbench_path()),
        "--no-vacuum",
        "--protocol=prepared",
        f"--file={script}",
        f"--client={writers}",
        f"--jobs={min(writers, 2)}",
        f"--time={seconds}",
        env={**os.environ, **libpq_env(database_url)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), seconds + 60)
    text = out.decode()
    if process.returncode != 0:
        raise RuntimeError(f"pgbench failed: {err.decode()[-2000:]}")
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", text)
    latency = re.search(r"latency average = ([\d.]+) ms", text)
    if tps is None:
        raise RuntimeError(f"pgbench output without tps:\n{text}")
    return {
        "tps": float(tps.group(1)),
        "latency_avg_ms": float(latency.group(1)) if latency else None,
    }


async def run_triggers(postgres: PostgresServer, options: TriggerOptions) -> dict[str, Any]:
    options.log_dir.mkdir(parents=True, exist_ok=True)
    script = options.log_dir / "insert_lead.sql"
    script.write_text(SCRIPT)
    runs: list[dict[str, Any]] = []
    with postgres.throwaway_database("triggers") as database_url:
        stop = asyncio.Event()
        drain = asyncio.create_task(_drain_notifications(database_url, stop))
        try:
            for mode, statements in MODES.items():
                with psycopg.connect(database_url, autocommit=True) as conn:
                    for statement in [*RESET, *statements]:
                        conn.execute(statement)
                for writers in options.writers:
                    result = await _pgbench(database_url, script, writers, options.seconds)
                    runs.append({"mode": mode, "writers": writers, **result})
                    log(
                        f"triggers {mode} x{writers}: {result['tps']:,.0f} inserts/s "
                        f"(avg {result['latency_avg_ms']} ms)"
                    )
                with psycopg.connect(database_url, autocommit=True) as conn:
                    conn.execute("CHECKPOINT")
        finally:
            stop.set()
            announcements = await drain
    by = {(r["mode"], r["writers"]): r["tps"] for r in runs}
    ratios = {
        str(w): by[("triggers on", w)] / by[("triggers off", w)]
        for w in options.writers
        if by.get(("triggers off", w))
    }
    return {"runs": runs, "on_over_off": ratios, "announcements_received": announcements}
