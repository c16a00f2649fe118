"""`python -m bench`: start real servers, measure, print a table, write bench/results/<ts>.json.

Scenarios: fanout (our server, C sockets, GraphQL and SQL writers), baseline (a bare
python-socketio server, same clients, same payloads), api (GraphQL at 32 connections, one process,
beside the NestJS reference, bench/reference.py: REFERENCE_SOURCE), triggers
(pgbench, triggers on/off), memory (KiB per idle socket). Everything runs in throwaway
databases on DATABASE_URL's server, or on the embedded one when DATABASE_URL is unset.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from bench.api import ApiOptions, run_api
from bench.fanout import FanoutOptions, run_fanout
from bench.harness import RESULTS_DIR, PostgresServer, log
from bench.memory import MemoryOptions, run_memory
from bench.report import render, targets
from bench.triggers import TriggerOptions, run_triggers

SCENARIOS = ("fanout", "baseline", "api", "triggers", "memory")


def _csv_ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated, from {','.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument("--quick", action="store_true", help="fewer clients, leads and seconds")
    parser.add_argument("--clients", type=_csv_ints, help="fan-out socket counts (1,100,1000)")
    parser.add_argument("--leads", type=int, help="leads per fan-out run (300)")
    parser.add_argument(
        "--max-deliveries",
        type=int,
        default=150_000,
        help="cap on leads x sockets per fan-out run (150000: 150 leads at 1,000 sockets)",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=570.0,
        help="bound on the whole run: a scenario that would pass it is cut, the rest reported",
    )
    parser.add_argument("--rate", type=float, default=50.0, help="paced writer rate (50/s)")
    parser.add_argument("--paths", default="graphql,sql", help="fan-out writers (graphql,sql)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes for fan-out and memory (1, as the reference; the API runs one)",
    )
    parser.add_argument("--api-seconds", type=float, help="seconds per API load (4)")
    parser.add_argument(
        "--api-rounds", type=int, help="interleaved rounds of every API load on each server (5)"
    )
    parser.add_argument(
        "--no-reference",
        action="store_true",
        help="API loads on our server only, without the NestJS reference (bench/reference.py)",
    )
    parser.add_argument("--api-rows", type=_csv_ints, help="table sizes (100000,1000000)")
    parser.add_argument("--writers", type=_csv_ints, help="pgbench writers (1,4,16)")
    parser.add_argument("--pgbench-seconds", type=int, help="seconds per pgbench run (3)")
    parser.add_argument(
        "--trigger-rounds", type=int, help="interleaved rounds of every trigger mode (3)"
    )
    parser.add_argument("--sockets", type=int, help="idle sockets for memory (1000)")
    parser.add_argument("--output", type=Path, help="JSON path (bench/results/<ts>.json)")
    return parser


def _pick(value: Any, full: Any, quick: Any, is_quick: bool) -> Any:
    if value is not None:
        return value
    return quick if is_quick else full


def _git_commit() -> str:
    result = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parent,
    )
    return result.stdout.strip() or "unknown"


def _save(report: dict[str, Any], output: Path) -> None:
    """Written after every scenario, so a run cut short still leaves what it measured."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")


async def run(args: argparse.Namespace, output: Path) -> dict[str, Any]:
    wanted = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    unknown = set(wanted) - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown scenarios: {', '.join(sorted(unknown))}")
    quick = args.quick
    log_dir = RESULTS_DIR / "logs"
    postgres = PostgresServer.from_environment()
    load_before = os.getloadavg()
    if load_before[0] > 0.5:
        log(f"warning: load average {load_before[0]:.2f} before the run: figures will be noisy")
    report: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(["python -m bench", *sys.argv[1:]]),
        "commit": _git_commit(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "loadavg_before": load_before,
        },
        "postgres": {"kind": postgres.kind, "version": postgres.version(), **postgres.settings()},
        "workers": args.workers,
        "fanout_rate": args.rate,
    }
    started = time.monotonic()
    deadline = started + args.max_seconds
    report["cut"] = []

    async def bounded(name: str, work: Coroutine[Any, Any, Any]) -> Any:
        """`work`, cut when the run's bound passes: what was measured before is kept."""
        remaining = deadline - time.monotonic()
        if remaining <= 1:
            work.close()
            log(f"{name}: skipped, the run reached its --max-seconds bound")
            report["cut"].append(name)
            return None
        try:
            return await asyncio.wait_for(work, remaining)
        except TimeoutError:
            log(f"{name}: cut at the run's --max-seconds bound ({args.max_seconds:.0f} s)")
            report["cut"].append(name)
            return None

    clients = _pick(args.clients, [1, 100, 1000], [1, 100], quick)
    leads = _pick(args.leads, 300, 100, quick)
    if "fanout" in wanted or "baseline" in wanted:
        report["fanout"] = await bounded(
            "fanout",
            run_fanout(
                postgres,
                FanoutOptions(
                    clients=clients,
                    leads=leads,
                    rate=args.rate,
                    workers=args.workers,
                    paths=[p for p in args.paths.split(",") if p] if "fanout" in wanted else [],
                    baseline="baseline" in wanted,
                    log_dir=log_dir,
                    max_deliveries=args.max_deliveries,
                ),
            ),
        )
        _save(report, output)
    if "api" in wanted:
        rows = _pick(args.api_rows, [100_000, 1_000_000], [100_000, 300_000], quick)
        report["api"] = await bounded(
            "api",
            run_api(
                postgres,
                ApiOptions(
                    seconds=_pick(args.api_seconds, 4.0, 3.0, quick),
                    concurrency=32,
                    rounds=_pick(args.api_rounds, 5, 2, quick),
                    small_rows=rows[0],
                    large_rows=rows[-1],
                    log_dir=log_dir,
                    reference=not args.no_reference,
                ),
            ),
        )
        _save(report, output)
    if "triggers" in wanted:
        report["triggers"] = await bounded(
            "triggers",
            run_triggers(
                postgres,
                TriggerOptions(
                    writers=_pick(args.writers, [1, 4, 16], [1, 16], quick),
                    seconds=_pick(args.pgbench_seconds, 3, 2, quick),
                    log_dir=log_dir,
                    rounds=_pick(args.trigger_rounds, 3, 2, quick),
                ),
            ),
        )
        _save(report, output)
    if "memory" in wanted:
        report["memory"] = await bounded(
            "memory",
            run_memory(
                postgres,
                MemoryOptions(
                    sockets=_pick(args.sockets, 1000, 300, quick),
                    workers=args.workers,
                    baseline="baseline" in wanted,
                    log_dir=log_dir,
                ),
            ),
        )
    report["seconds"] = time.monotonic() - started
    report["machine"]["loadavg_after"] = os.getloadavg()
    report["targets"] = targets(report)
    return report


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    output = args.output or RESULTS_DIR / f"{time.strftime('%Y%m%dT%H%M%S')}.json"
    report = asyncio.run(run(args, output))
    _save(report, output)
    print(render(report))
    print(f"\nJSON: {output}  ({report['seconds']:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
