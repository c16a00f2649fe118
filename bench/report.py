"""The printed tables (Markdown, so they paste into RESULTS.md) and the target checks."""

from __future__ import annotations

from typing import Any

from bench.fanout import fanout_targets
from bench.memory import memory_targets


def _num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def render(report: dict[str, Any]) -> str:
    parts = [
        f"commit {report['commit']} · {report['command']} · workers={report['workers']} · "
        f"postgres {report['postgres']['kind']} {report['postgres']['version']} "
        f"(fsync={report['postgres']['fsync']}, synchronous_commit="
        f"{report['postgres']['synchronous_commit']}) · load avg before "
        f"{report['machine']['loadavg_before'][0]:.2f}"
        + (
            f" · load avg after {report['machine']['loadavg_after'][0]:.2f}"
            if report["machine"].get("loadavg_after")
            else ""
        )
        + (f" · {report['seconds']:.0f} s" if report.get("seconds") else "")
    ]
    if report.get("cut"):
        parts.append(f"**Cut at the --max-seconds bound:** {', '.join(report['cut'])}")
    if report.get("fanout"):
        rows = [
            [
                r["server"],
                r["path"],
                str(r["rate"]),
                _num(r["clients"]),
                f"{r['delivered']}/{r['expected']}",
                _num(r["p50_ms"]),
                _num(r["p95_ms"]),
                _num(r["p99_ms"]),
                _num(r["max_ms"]),
                _num(r.get("scheduled_p99_ms")) if r["rate"] != "max" else "-",
                _num(r["deliveries_per_s"], 0),
                _num(r["writes_per_s"], 0),
                _num(r["server_cpu_us_per_delivery"]),
            ]
            for r in report["fanout"]
        ]
        parts.append(
            "### Fan-out (notification:created, send → receipt)\n\n"
            + _table(
                [
                    "server",
                    "writer",
                    "rate/s",
                    "clients",
                    "delivered",
                    "p50 ms",
                    "p95 ms",
                    "p99 ms",
                    "max ms",
                    "p99 ms from the schedule",
                    "deliveries/s",
                    "writes/s",
                    "server CPU µs/delivery",
                ],
                rows,
            )
        )
    if report.get("api"):
        parts.append(_api_section(report["api"]))
    if report.get("triggers"):
        trig = report["triggers"]
        labels = {"sync": "", "async": " (synchronous_commit=off)"}
        rows = [
            [
                r["mode"] + labels.get(r["commit"], ""),
                _num(r["writers"]),
                _num(r["tps_median"], 0),
                f"{r['tps_min']:,.0f}-{r['tps_max']:,.0f}",
                _num(r["latency_median_ms"], 3),
            ]
            for r in trig["medians"]
        ]
        ratios = "; ".join(
            ("synchronous_commit=off" if commit == "async" else "synchronous commit")
            + ": "
            + ", ".join(
                f"{w} writer(s) {v['median']:.2f} (rounds "
                + " ".join(f"{x:.2f}" for x in v["rounds"])
                + ")"
                for w, v in by_writers.items()
            )
            for commit, by_writers in trig["ratios"].items()
        )
        parts.append(
            "### Trigger write cost (pgbench, single-row INSERT INTO leads, "
            f"{trig['rounds']} interleaved rounds of {trig['seconds']} s, medians)\n\n"
            + _table(["mode", "writers", "inserts/s", "range", "avg latency ms"], rows)
            + f"\n\ntriggers on / off (median of per-round ratios): {ratios}"
        )
    if report.get("memory"):
        rows = [
            [
                r["server"],
                _num(r["rss_kib_0"]),
                _num(r["sockets"]),
                _num(r["rss_kib_n"]),
                _num(r["kib_per_socket"]),
            ]
            for r in report["memory"]
        ]
        parts.append(
            "### Memory (RSS of the server's process tree)\n\n"
            + _table(["server", "KiB, 0 sockets", "sockets", "KiB, N sockets", "KiB/socket"], rows)
        )
    parts.append(
        "### Targets\n\n"
        + _table(
            ["target", "figure", "met"],
            [[t["target"], t["figure"], "yes" if t["met"] else "NO"] for t in report["targets"]],
        )
    )
    return "\n\n".join(parts)


def _run(runs: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    for run in runs:
        if all(run.get(key) == value for key, value in match.items()):
            return run
    return None


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    checks: list[dict[str, Any]] = []
    fanout = report.get("fanout") or []
    if fanout:
        worst = min(r["delivered_ratio"] or 0.0 for r in fanout)
        checks.append(
            {
                "target": "no loss (delivered/expected = 1.0)",
                "figure": f"min {worst:.4f}",
                "met": worst == 1.0,
            }
        )
        apps = sorted({r["server"] for r in fanout if r["server"] not in ("bare", "reference")})
        most = max(r["clients"] for r in fanout)
        bare = _run(fanout, server="bare", clients=most, rate="max")
        for app in apps:
            for path in sorted({r["path"] for r in fanout if r["server"] == app}):
                ours = _run(fanout, server=app, path=path, clients=most, rate="max")
                if bare and ours and bare["deliveries_per_s"] and ours["deliveries_per_s"]:
                    ratio = ours["deliveries_per_s"] / bare["deliveries_per_s"]
                    checks.append(
                        {
                            "target": f"{app} {path}: deliveries/s at C={most} ≥ 2.2x bare",
                            "figure": f"{ours['deliveries_per_s']:,.0f} vs "
                            f"{bare['deliveries_per_s']:,.0f}/s = {ratio:.2f}x",
                            "met": ratio >= 2.2,
                        }
                    )
                rate = report.get("fanout_rate", 50.0)
                big = _run(fanout, server=app, path=path, clients=most, rate=rate)
                small = _run(fanout, server=app, path=path, clients=100, rate=rate)
                if big and small and most != 100 and small["p99_ms"]:
                    ratio = big["p99_ms"] / small["p99_ms"]
                    checks.append(
                        {
                            "target": f"{app} {path}: p99 at C={most}x{rate:g}/s ≤ 2x C=100",
                            "figure": f"{big['p99_ms']:.1f} vs {small['p99_ms']:.1f} ms = "
                            f"{ratio:.2f}x",
                            "met": ratio <= 2.0,
                        }
                    )
        checks += fanout_targets(fanout)  # issue 12: ours against the NestJS reference
    trig = report.get("triggers")
    if trig and "1" in trig["on_over_off"]:
        ratio = trig["on_over_off"]["1"]
        checks.append(
            {
                "target": "triggers on ≥ 70% of off at 1 writer",
                "figure": f"{ratio:.0%}",
                "met": ratio >= 0.7,
            }
        )
    api = report.get("api")
    if api:
        checks += _api_targets(api)
    if report.get("memory"):
        checks += memory_targets(report["memory"])  # medians over rounds, the reference beside
    return checks


# Issue 12: each operation at least this many times the reference's req/s, p99 no worse.
API_RATIO_TARGET = 1.5


def _api_section(api: dict[str, Any]) -> str:
    tool = api["runs"][0]["tool"] if api["runs"] else "?"
    rows = []
    for entry in api["summary"]:
        ours, ref = entry.get("ours") or {}, entry.get("reference") or {}
        rows.append(
            [
                entry["operation"],
                _num(ours.get("requests_per_s"), 0),
                _num(ref.get("requests_per_s"), 0),
                (
                    f"{entry['ratio']:.2f}x ("
                    + " ".join(f"{r:.2f}" for r in entry["round_ratios"])
                    + ")"
                )
                if entry.get("ratio")
                else "-",
                _num(ours.get("p99_ms")),
                _num(ref.get("p99_ms")),
                _num(ours.get("server_cpu_ms_per_request"), 2),
                _num(ref.get("server_cpu_ms_per_request"), 2),
                " / ".join(
                    " ".join(f"{v:,.0f}" for v in side.get("requests_per_s_rounds", []))
                    for side in (ours, ref)
                    if side
                ),
                _num(ours.get("errors", 0) + ref.get("errors", 0)),
            ]
        )
    title = (
        f"### API ({api['concurrency']} connections, {tool}; one process each, "
        f"{api['rounds']} interleaved rounds of {api['seconds']:g} s; medians, and the median of "
        "the rounds' ratios)"
    )
    text = f"{title}\n\n" + _table(
        [
            "operation",
            "ours req/s",
            "reference req/s",
            "ours / reference: median (rounds)",
            "ours p99 ms",
            "reference p99 ms",
            "ours CPU ms/req",
            "reference CPU ms/req",
            "req/s by round (ours / reference)",
            "errors",
        ],
        rows,
    )
    if api.get("reference_skipped"):
        text += f"\n\n**Reference skipped:** {api['reference_skipped']}"
    ceiling = api.get("lead_insert_ceiling_per_s")
    if ceiling:
        text += (
            f"\n\ncreateLead's ceiling in this run: the database alone commits {ceiling:,.0f} "
            "lead inserts/s (10 connections, autocommit, our triggers and NOTIFY)"
        )
    flat = api["unread_count_flat"]
    text += "\n\ngetUnreadCount on ours as the table grows: " + ", ".join(
        f"{r['rows']:,} rows {r['requests_per_s']:,.0f} req/s p99 {r['p99_ms']:.1f} ms"
        for r in flat
    )
    sql_ms = "; ".join(
        f"{int(rows):,} rows: " + ", ".join(f"{name} {ms:.3f} ms" for name, ms in by.items())
        for rows, by in api["unread_count_sql_ms"].items()
    )
    return text + f"\n\nunread-count SQL execution (best of 5): {sql_ms}"


def _api_targets(api: dict[str, Any]) -> list[dict[str, Any]]:
    checks: list[dict[str, Any]] = []
    for entry in api["summary"]:
        ours, ref = entry.get("ours"), entry.get("reference")
        if not ours or not ref or not entry.get("ratio"):
            continue
        ratio = entry["ratio"]
        checks.append(
            {
                "target": f"{entry['operation']}: ≥ {API_RATIO_TARGET}x the reference's req/s, "
                "p99 no worse",
                "figure": f"{ratio:.2f}x (median of the rounds' ratios; medians "
                f"{ours['requests_per_s']:,.0f} vs {ref['requests_per_s']:,.0f} req/s); "
                f"p99 {ours['p99_ms']:.1f} vs {ref['p99_ms']:.1f} ms",
                "met": ratio >= API_RATIO_TARGET and ours["p99_ms"] <= ref["p99_ms"],
            }
        )
    ratio = api["unread_count_p99_ratio"]
    flat = api["unread_count_flat"]
    checks.append(
        {
            "target": f"getUnreadCount p99 flat ({flat[-1]['rows']:,} vs {flat[0]['rows']:,} "
            "rows) ≤ 1.5x",
            "figure": f"{ratio:.2f}x",
            "met": ratio <= 1.5,
        }
    )
    return checks
