"""What a writer pays for the current migrations against those of an older commit, in one run.

Two throwaway databases on one PostgreSQL server: one migrated with the current db/migrations,
one with the db/migrations of `--old-ref` (taken with `git archive`, applied by the project's
dbmate). A LISTEN connection drains the channel of each throughout. pgbench runs the single-row
lead insert of bench/triggers.py at each writer count (synchronous commit), and at one writer with
`synchronous_commit=off` (the trigger work in CPU, without the WAL flush wait). Runs interleave:
every round runs old and new for each (commit, writers) pair, each after a CHECKPOINT, and the
side that goes first alternates from round to round. Figures are medians over rounds; the
new/old ratio is taken per round (the spread shows the noise) and its median is listed.

    python -m bench.write_ab [--old-ref 3c827d5] [--rounds 3] [--seconds 4] [--writers 1,4,16]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench.harness import RESULTS_DIR, PostgresServer, log, with_database
from bench.triggers import COMMIT_VARIANTS, SCRIPT, _drain_notifications, _pgbench
from server.migrate import run_dbmate
from server.settings import PROJECT_ROOT

SIDES = ("old", "new")


def git_commit(ref: str) -> str:
    return subprocess.run(
        ["git", "rev-parse", "--verify", f"{ref}^{{commit}}"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@contextlib.contextmanager
def migrations_at(ref: str) -> Iterator[Path]:
    """`ref`'s db/migrations in a temporary folder (git archive: no change to the repository)."""
    with tempfile.TemporaryDirectory(prefix="write_ab-") as folder:
        archive = subprocess.run(
            ["git", "archive", "--format=tar", ref, "db/migrations"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            check=True,
        )
        subprocess.run(["tar", "-x", "-C", folder], input=archive.stdout, check=True)
        yield Path(folder) / "db" / "migrations"


@contextlib.contextmanager
def database_migrated_from(postgres: PostgresServer, migrations: Path) -> Iterator[str]:
    """Like PostgresServer.throwaway_database, but migrated from another migrations folder."""
    name = f"crm_bench_write_ab_old_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres.admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_database(postgres.admin_url, name)
    try:
        run_dbmate(url, ["up"], migrations_dir=migrations)
        yield url
    finally:
        with psycopg.connect(postgres.admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


async def measure(
    admin_url: str, urls: dict[str, str], plan: list[tuple[str, int]], args: argparse.Namespace
) -> dict[str, Any]:
    script = RESULTS_DIR / "logs" / "insert_lead_write_ab.sql"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(SCRIPT)
    stop = asyncio.Event()
    drains = {side: asyncio.create_task(_drain_notifications(urls[side], stop)) for side in SIDES}
    runs: list[dict[str, Any]] = []
    try:
        for round_no in range(args.rounds):
            order = SIDES if round_no % 2 == 0 else SIDES[::-1]
            for commit, writers in plan:
                for side in order:
                    # CHECKPOINT is server-wide: it covers both databases.
                    with psycopg.connect(admin_url, autocommit=True) as conn:
                        conn.execute("CHECKPOINT")
                    result = await _pgbench(
                        urls[side], script, writers, args.seconds, COMMIT_VARIANTS[commit]
                    )
                    runs.append(
                        {"round": round_no, "commit": commit, "writers": writers, "side": side}
                        | result
                    )
                    log(f"write_ab r{round_no} {commit} x{writers} {side}: {result['tps']:,.0f}/s")
    finally:
        stop.set()
        announcements = {side: await drain for side, drain in drains.items()}
    # Every insert is one notification and one announcement; and which schema each side had.
    checks = {}
    for side in SIDES:
        with psycopg.connect(urls[side]) as conn:
            checks[side] = conn.execute(
                "SELECT count(*) AS notifications,"
                " to_regclass('notification_transactions') IS NOT NULL AS commit_ordered"
                " FROM notifications"
            ).fetchone()
    return {
        "runs": runs,
        "announcements": announcements,
        "notifications": {side: row[0] for side, row in checks.items() if row},
        "commit_ordered_schema": {side: row[1] for side, row in checks.items() if row},
    }


def summarise(runs: list[dict[str, Any]], plan: list[tuple[str, int]]) -> list[dict[str, Any]]:
    rows = []
    for commit, writers in plan:
        tps = {
            side: {
                r["round"]: r["tps"]
                for r in runs
                if (r["commit"], r["writers"], r["side"]) == (commit, writers, side)
            }
            for side in SIDES
        }
        ratios = [tps["new"][n] / tps["old"][n] for n in sorted(tps["old"]) if n in tps["new"]]
        rows.append(
            {
                "commit": commit,
                "writers": writers,
                "old_tps_median": statistics.median(tps["old"].values()),
                "new_tps_median": statistics.median(tps["new"].values()),
                "new_over_old_rounds": ratios,
                "new_over_old_median": statistics.median(ratios),
            }
        )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| commit | writers | old tps (median) | new tps (median) | new/old per round "
        "| new/old median |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        commit = "synchronous" if row["commit"] == "sync" else "`synchronous_commit=off`"
        per_round = ", ".join(f"{r:.2f}" for r in row["new_over_old_rounds"])
        lines.append(
            f"| {commit} | {row['writers']} | {row['old_tps_median']:,.0f} "
            f"| {row['new_tps_median']:,.0f} | {per_round} | {row['new_over_old_median']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.write_ab", description=__doc__)
    parser.add_argument("--old-ref", default="3c827d5")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--writers", default="1,4,16", help="comma-separated writer counts")
    args = parser.parse_args(argv)
    # SIGTERM cleans up like Ctrl-C: the databases are dropped, the temporary folder removed.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    plan = [("sync", int(w)) for w in args.writers.split(",")] + [("async", 1)]
    postgres = PostgresServer.from_environment()
    report: dict[str, Any] = {
        "old_ref": args.old_ref,
        "old_commit": git_commit(args.old_ref),
        "new_commit": git_commit("HEAD"),
        "rounds": args.rounds,
        "seconds": args.seconds,
        "postgres": {"kind": postgres.kind, "version": postgres.version(), **postgres.settings()},
        "loadavg_before": os.getloadavg(),
    }
    log(f"write_ab: {postgres.kind} PostgreSQL {report['postgres']['version']}")
    with (
        migrations_at(args.old_ref) as old_migrations,
        database_migrated_from(postgres, old_migrations) as old_url,
        postgres.throwaway_database("write_ab_new") as new_url,
    ):
        measured = asyncio.run(
            measure(postgres.admin_url, {"old": old_url, "new": new_url}, plan, args)
        )
    report |= measured
    report["loadavg_after"] = os.getloadavg()
    report["summary"] = summarise(measured["runs"], plan)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    output = RESULTS_DIR / f"write_ab-{time.strftime('%Y%m%dT%H%M%S')}.json"
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(table(report["summary"]))
    print(
        f"load average before {report['loadavg_before']}, after {report['loadavg_after']}; "
        f"announcements {measured['announcements']}, notifications {measured['notifications']}, "
        f"commit-ordered schema {measured['commit_ordered_schema']}"
    )
    log(f"write_ab: written to {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
