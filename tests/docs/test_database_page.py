"""docs/DATABASE.md against db/schema.sql (what `dbmate dump` prints for the migrated schema):
every table, column, trigger, trigger function and enum value, and nothing that does not exist."""

from __future__ import annotations

import re

from server.settings import PROJECT_ROOT
from tests.docs.markdown import DOCS, cell_name, code_names, section, table_rows

SCHEMA = (PROJECT_ROOT / "db" / "schema.sql").read_text()
PAGE = (DOCS / "DATABASE.md").read_text()


def schema_columns() -> dict[str, list[str]]:
    tables: dict[str, list[str]] = {}
    for name, body in re.findall(r"^CREATE TABLE public\.(\w+) \((.*?)^\);", SCHEMA, re.M | re.S):
        columns = re.findall(r'^\s{4}("?)(\w+)\1 ', body, re.MULTILINE)
        tables[name] = [column for _, column in columns if column != "CONSTRAINT"]
    return tables


def schema_triggers() -> set[tuple[str, str]]:
    found = re.findall(r"^CREATE (?:CONSTRAINT )?TRIGGER (\w+) .*? ON public\.(\w+) ", SCHEMA, re.M)
    return {(table, trigger) for trigger, table in found}


def documented_columns() -> dict[str, list[str]]:
    tables = section(PAGE, "## Tables")
    documented: dict[str, list[str]] = {}
    for table in re.findall(r"^### `(\w+)`$", tables, re.MULTILINE):
        rows = table_rows(section(tables, f"### `{table}`"))
        documented[table] = [cell_name(row[0]) for row in rows]
    return documented


def documented_triggers() -> set[tuple[str, str]]:
    rows = table_rows(section(PAGE, "## Triggers"))
    return {(table, cell_name(row[1])) for row in rows for table in code_names(row[0])}


def test_the_parse_of_the_schema_finds_the_tables_and_triggers() -> None:
    columns, triggers = schema_columns(), schema_triggers()

    assert columns["notifications"][:2] == ["id", "type"]
    assert "isRead" in columns["notifications"]
    assert ("leads", "_500_notify_created") in triggers
    assert ("notification_transactions", "_100_stamp_commit") in triggers


def test_every_table_and_column_is_documented_in_order_and_none_that_does_not_exist() -> None:
    assert documented_columns() == schema_columns()


def test_every_trigger_is_documented_on_its_table_and_none_that_does_not_exist() -> None:
    assert documented_triggers() == schema_triggers()


def test_every_trigger_function_view_and_enum_value_is_named() -> None:
    functions = re.findall(r"^CREATE FUNCTION public\.(\w+)\(", SCHEMA, re.MULTILINE)
    views = re.findall(r"^CREATE VIEW public\.(\w+)", SCHEMA, re.MULTILINE)
    sequences = re.findall(r"SEQUENCE (?:NAME )?public\.(\w+)", SCHEMA)
    enum = re.search(r"CREATE TYPE public\.notification_type AS ENUM \((.*?)\);", SCHEMA, re.S)
    assert enum is not None
    values = re.findall(r"'(\w+)'", enum.group(1))
    named = set(re.findall(r"`([^`]+)`", PAGE))

    missing = {*functions, *views, *values, *sequences} - named
    identity = {f"{table}_id_seq" for table in ("leads", "tasks", "comments")}

    assert functions
    assert values
    assert missing <= identity  # the identity columns' own sequences need no words
