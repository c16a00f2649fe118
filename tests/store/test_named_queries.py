from __future__ import annotations

import re

import psycopg
import pytest
from psycopg.rows import DictRow

from server.store._queries import query_names, query_sql


@pytest.mark.parametrize("name", query_names())
def test_every_named_query_prepares_against_the_migrated_schema(
    db: psycopg.Connection[DictRow], name: str
) -> None:
    """A renamed column or a parameter of unknown type fails here, not in a request."""
    numbers: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        return f"${numbers.setdefault(match.group(1), len(numbers) + 1)}"

    sql = re.sub(r"%\((\w+)\)s", number, query_sql(name)).rstrip().rstrip(";")
    db.execute(f"PREPARE check_query AS {sql}")
    db.execute("DEALLOCATE check_query")


def test_queries_are_named_entity_first() -> None:
    entities = ("notification_", "lead_", "task_", "comment_", "user_")
    assert all(name.startswith(entities) for name in query_names())
