"""Scenario 4: what the notification triggers cost a writer, measured with pgbench.

Single-row `INSERT INTO leads` at 1, 4 and 16 concurrent writers, three ways in one throwaway
database: every trigger on (production); the notifications are written but not announced
(the triggers on notifications disabled: what pg_notify itself costs); no user trigger on leads
at all. A LISTEN connection drains the channel throughout, as the server's listener would.

One pgbench run is a few seconds of a shared machine, and a neighbour's burst moves it by 2x
either way. So the modes are interleaved: each round runs every (writers, mode) pair once, in
order, after a CHECKPOINT (so no checkpoint lands inside one run more than another); the figure
is the median over rounds, and each round's on/off ratio is kept, so the spread shows.

A second, separately labelled variant runs the same pairs with `synchronous_commit=off` for the
pgbench sessions: the commit no longer waits for its WAL flush, so what remains is the trigger
work in CPU, without the fsync that dominates (and hides) it at one writer.
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
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
COMMIT_VARIANTS = {"sync": "", "async": "-c synchronous_commit=off"}


@dataclass
class TriggerOptions:
    writers: list[int]
    seconds: int
    log_dir: Path
    rounds: int = 3
    # Writer counts for the synchronous_commit=off variant (empty: skip it).
    async_writers: tuple[int, ...] = (1,)


async def _drain_notifications(database_url: str, stop: asyncio.Event) -> int:
    received = 0
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("LISTEN notifications")
        while not stop.is_set():
            async for _notify in conn.notifies(timeout=0.5):
                received += 1
    return received


async def _pgbench(
    database_url: str, script: Path, writers: int, seconds: int, pgoptions: str
) -> dict[str, Any]:
    env = {**os.environ, **libpq_env(database_url)}
    if pgoptions:
        env["PGOPTIONS"] = pgoptions
    process = await asyncio.create_subprocess_exec(
        str(pgbench_path()),
        "--no-vacuum",
        "--protocol=prepared",
        f"--file={script}",
        f"--client={writers}",
        f"--jobs={min(writers, 2)}",
        f"--time={seconds}",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), seconds + 60)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
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


def _set_mode(database_url: str, mode: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        for statement in [*RESET, *MODES[mode]]:
            conn.execute(statement)
        conn.execute("CHECKPOINT")


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians per (commit, mode, writers), and on/off ratios: median of the per-round ratios."""
    medians: list[dict[str, Any]] = []
    ratios: dict[str, dict[str, Any]] = {}
    keys = sorted({(r["commit"], r["writers"]) for r in runs}, key=lambda k: (k[0] != "sync", k[1]))
    for commit, writers in keys:
        for mode in MODES:
            tps = [
                r["tps"]
                for r in runs
                if (r["commit"], r["mode"], r["writers"]) == (commit, mode, writers)
            ]
            latency = [
                r["latency_avg_ms"]
                for r in runs
                if (r["commit"], r["mode"], r["writers"]) == (commit, mode, writers)
                and r["latency_avg_ms"] is not None
            ]
            if tps:
                medians.append(
                    {
                        "commit": commit,
                        "mode": mode,
                        "writers": writers,
                        "rounds": len(tps),
                        "tps_median": statistics.median(tps),
                        "tps_min": min(tps),
                        "tps_max": max(tps),
                        "latency_median_ms": statistics.median(latency) if latency else None,
                    }
                )
        per_round = []
        for round_no in sorted({r["round"] for r in runs}):
            by = {
                r["mode"]: r["tps"]
                for r in runs
                if (r["commit"], r["writers"], r["round"]) == (commit, writers, round_no)
            }
            if by.get("triggers on") and by.get("triggers off"):
                per_round.append(by["triggers on"] / by["triggers off"])
        if per_round:
            ratios.setdefault(commit, {})[str(writers)] = {
                "median": statistics.median(per_round),
                "rounds": per_round,
            }
    return {"medians": medians, "ratios": ratios}


async def run_triggers(postgres: PostgresServer, options: TriggerOptions) -> dict[str, Any]:
    options.log_dir.mkdir(parents=True, exist_ok=True)
    script = options.log_dir / "insert_lead.sql"
    script.write_text(SCRIPT)
    plan = [("sync", w) for w in options.writers]
    plan += [("async", w) for w in options.async_writers]
    runs: list[dict[str, Any]] = []
    with postgres.throwaway_database("triggers") as database_url:
        stop = asyncio.Event()
        drain = asyncio.create_task(_drain_notifications(database_url, stop))
        try:
            for round_no in range(options.rounds):
                for commit, writers in plan:
                    for mode in MODES:
                        _set_mode(database_url, mode)
                        result = await _pgbench(
                            database_url,
                            script,
                            writers,
                            options.seconds,
                            COMMIT_VARIANTS[commit],
                        )
                        runs.append(
                            {
                                "round": round_no,
                                "commit": commit,
                                "mode": mode,
                                "writers": writers,
                                **result,
                            }
                        )
                        log(
                            f"triggers r{round_no} {commit} {mode} x{writers}: "
                            f"{result['tps']:,.0f} inserts/s (avg {result['latency_avg_ms']} ms)"
                        )
        finally:
            stop.set()
            announcements = await drain
    summary = summarise(runs)
    sync_ratios = summary["ratios"].get("sync", {})
    return {
        "runs": runs,
        "rounds": options.rounds,
        "seconds": options.seconds,
        "medians": summary["medians"],
        "ratios": summary["ratios"],
        # Kept for older readers of the JSON: the median per-round ratio, synchronous commit.
        "on_over_off": {w: v["median"] for w, v in sync_ratios.items()},
        "announcements_received": announcements,
    }
