"""A/B for the trigger change of migration 20261127000200, in one database and one run.

The previous definitions (tg_notifications__count_unread at _800 plus the old announce, renamed
tg_notifications__announce_old) are installed beside the current ones, and each pgbench run
enables one set: "old", "new", or no user trigger on leads ("off"). Every round runs old, new,
off for each (commit mode, writers) pair; the figures are medians over rounds, the ratios the
median of each round's on/off.

    python -m bench.trigger_ab [ROUNDS] [SECONDS]      (recorded run: 4 4)
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import sys
from typing import Any

import psycopg

from bench.harness import RESULTS_DIR, PostgresServer, log
from bench.triggers import SCRIPT, _drain_notifications, _pgbench
from server.settings import PROJECT_ROOT

MIGRATIONS = PROJECT_ROOT / "db" / "migrations"
PLAN = [("sync", 1), ("async", 1), ("sync", 4), ("sync", 16)]
MODES = ("old", "new", "off")
OLD = [
    "_800_count_unread_insert",
    "_800_count_unread_update",
    "_800_count_unread_delete",
    "_900_old_insert",
    "_900_old_update",
    "_900_old_delete",
]
NEW = ["_900_announce_insert", "_900_announce_update", "_900_announce_delete"]
REFERENCING = {
    "INSERT": "REFERENCING NEW TABLE AS new_rows",
    "UPDATE": "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
    "DELETE": "REFERENCING OLD TABLE AS old_rows",
}


def _function(migration: str, name: str) -> str:
    text = (MIGRATIONS / migration).read_text()
    found = re.search(rf"(CREATE OR REPLACE FUNCTION {name}\(\).*?\n\$\$;)", text, re.S)
    assert found is not None, name
    return found.group(1)


def _setup() -> list[str]:
    count = _function(
        "20261127000100_count_unread_notifications.sql", "tg_notifications__count_unread"
    )
    announce = _function(
        "20261126000200_create_notification_triggers.sql", "tg_notifications__announce"
    ).replace("tg_notifications__announce()", "tg_notifications__announce_old()")
    statements = [count, announce]
    for event, referencing in REFERENCING.items():
        for trigger, function in [
            (f"_800_count_unread_{event.lower()}", "tg_notifications__count_unread"),
            (f"_900_old_{event.lower()}", "tg_notifications__announce_old"),
        ]:
            statements.append(
                f"CREATE TRIGGER {trigger} AFTER {event} ON notifications {referencing} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
            )
    return statements


def _mode(mode: str) -> list[str]:
    statements = [
        "ALTER TABLE leads ENABLE TRIGGER USER",
        "ALTER TABLE notifications ENABLE TRIGGER USER",
    ]
    disabled = NEW if mode == "old" else OLD
    statements += [f"ALTER TABLE notifications DISABLE TRIGGER {t}" for t in disabled]
    if mode == "off":
        statements.append("ALTER TABLE leads DISABLE TRIGGER USER")
    return statements


async def main(rounds: int, seconds: int) -> None:
    postgres = PostgresServer.from_environment()
    script = RESULTS_DIR / "logs" / "insert_lead_ab.sql"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(SCRIPT)
    runs: list[dict[str, Any]] = []
    with postgres.throwaway_database("trigger_ab") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            for statement in _setup():
                conn.execute(statement)
        stop = asyncio.Event()
        drain = asyncio.create_task(_drain_notifications(url, stop))
        for round_no in range(rounds):
            for commit, writers in PLAN:
                for mode in MODES:
                    with psycopg.connect(url, autocommit=True) as conn:
                        for statement in _mode(mode):
                            conn.execute(statement)
                        conn.execute("CHECKPOINT")
                    options = "-c synchronous_commit=off" if commit == "async" else ""
                    result = await _pgbench(url, script, writers, seconds, options)
                    runs.append(
                        {"round": round_no, "commit": commit, "writers": writers, "mode": mode}
                        | result
                    )
                    log(f"ab r{round_no} {commit} x{writers} {mode}: {result['tps']:.0f}")
        with psycopg.connect(url, autocommit=True) as conn:
            for statement in _mode("new"):
                conn.execute(statement)
            counted = conn.execute("SELECT sum(unread) FROM notification_unread_counts")
            actual = conn.execute('SELECT count(*) FROM notifications WHERE NOT "isRead"')
            print("counter", counted.fetchone(), "actual", actual.fetchone())
        stop.set()
        print("announcements", await drain)
    for commit, writers in PLAN:

        def tps(
            mode: str, round_no: int | None = None, commit: str = commit, writers: int = writers
        ) -> list[float]:
            return [
                r["tps"]
                for r in runs
                if (r["commit"], r["writers"], r["mode"]) == (commit, writers, mode)
                and round_no in (None, r["round"])
            ]

        median = {mode: statistics.median(tps(mode)) for mode in MODES}
        ratio = {
            mode: statistics.median(tps(mode, n)[0] / tps("off", n)[0] for n in range(rounds))
            for mode in ("old", "new")
        }
        print(
            f"{commit} x{writers}: median tps old {median['old']:.0f} new {median['new']:.0f} "
            f"off {median['off']:.0f}; on/off old {ratio['old']:.2f} new {ratio['new']:.2f}"
        )
    print(json.dumps(runs))


if __name__ == "__main__":
    arguments = [int(a) for a in sys.argv[1:3]]
    asyncio.run(main(*(arguments or [4, 4])))
