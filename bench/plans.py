"""EXPLAIN ANALYZE of the server's own named queries, prepared as a driver prepares them.

psycopg prepares a statement after five uses; the server may then run PostgreSQL's generic
plan, which knows no parameter value. `analyze` runs a named query from server/sql as a
prepared statement in a chosen plan_cache_mode, in the pool's session settings, and `scans`
says what each scan read. Used by bench/catch_up.py and by the plan tests.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg

from server.store._queries import query_sql

_names = itertools.count()


def prepared(name: str, params: dict[str, Any]) -> tuple[str, list[Any]]:
    """The named query's text with $n placeholders, and its arguments in that order."""
    order: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in order:
            order.append(match.group(1))
        return f"${order.index(match.group(1)) + 1}"

    text = re.sub(r"%\((\w+)\)s", number, query_sql(name)).strip().rstrip(";")
    return text, [params[key] for key in order]


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime | UUID):
        return f"'{value}'"
    raise TypeError(f"no literal for {value!r}")


def analyze(
    conn: psycopg.Connection[Any], name: str, params: dict[str, Any], mode: str
) -> dict[str, Any]:
    """The EXPLAIN (ANALYZE, FORMAT JSON) of one execution; `mode` is a plan_cache_mode."""
    text, values = prepared(name, params)
    conn.execute("SET max_parallel_workers_per_gather = 0")  # as server.db configures the pool
    conn.execute(f"SET plan_cache_mode = {mode}")
    # A new name each time: DEALLOCATE ALL would also drop psycopg's own prepared statements.
    statement = f"bench_plan_{next(_names)}"
    conn.execute(f"PREPARE {statement} AS {text}")
    arguments = ", ".join(_literal(v) for v in values)
    execute = f"EXECUTE {statement}({arguments})" if values else f"EXECUTE {statement}"
    row = conn.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {execute}").fetchone()
    assert row is not None
    document = next(iter(row.values())) if isinstance(row, dict) else row[0]  # any row factory
    plan: dict[str, Any] = document[0]
    conn.execute(f"DEALLOCATE {statement}")
    return plan


def scans(node: dict[str, Any]) -> Iterator[tuple[str, str, int]]:
    """(node type, relation, rows it returned in all) for every scan in a plan's tree.
    PostgreSQL 18 prints rows per loop with decimals; earlier versions do not."""
    if "Relation Name" in node:
        rows = round(float(node["Actual Rows"]) * float(node["Actual Loops"]))
        yield node["Node Type"], node["Relation Name"], rows
    for child in node.get("Plans", []):
        yield from scans(child)


def rows_read(plan: dict[str, Any], relation: str) -> int:
    return sum(rows for _, rel, rows in scans(plan["Plan"]) if rel == relation)
