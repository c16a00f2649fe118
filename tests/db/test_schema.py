"""The migrated schema: shape, indexes, history and the committed definitions agree."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import DictRow

from server.embedded_postgres import POSTGRES_MAJOR_VERSION
from server.migrate import run_dbmate
from server.settings import PROJECT_ROOT
from tests.conftest import PostgresServer

Conn = psycopg.Connection[DictRow]
FUNCTIONS_DIR = PROJECT_ROOT / "db" / "functions"
SCHEMA_FILE = PROJECT_ROOT / "db" / "schema.sql"
MIGRATIONS = sorted((PROJECT_ROOT / "db" / "migrations").glob("*.sql"))

CONTRACT_COLUMNS = {
    "users": ["id", "email", "passwordHash", "createdAt", "updatedAt"],
    "leads": [
        "id", "firstName", "lastName", "email", "phone", "company", "status", "score",
        "createdAt", "updatedAt",
    ],
    "tasks": ["id", "leadId", "title", "completedAt", "createdAt", "updatedAt"],
    "comments": ["id", "leadId", "body", "authorEmail", "createdAt", "updatedAt"],
    "notifications": [
        "id", "type", "title", "message", "isRead", "relatedLeadId", "createdAt", "updatedAt",
    ],
}  # fmt: skip


def test_tables_have_the_contract_camel_case_columns(db: Conn) -> None:
    for table, expected in CONTRACT_COLUMNS.items():
        rows = db.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position",
            (table,),
        ).fetchall()
        columns = [r["column_name"] for r in rows]
        # notifications also keeps one internal column, "createdTxid", for catch-up paging.
        assert columns[: len(expected)] == expected, table
        assert not any("_" in c for c in columns), table


def test_plain_sql_needs_only_the_required_columns_and_gets_defaults(db: Conn) -> None:
    row = db.execute(
        """INSERT INTO leads ("firstName", "lastName") VALUES ('Ada', 'Lovelace')
           RETURNING status, score, "createdAt" IS NOT NULL AS stamped"""
    ).fetchone()
    assert row == {"status": "new", "score": 0, "stamped": True}


def test_updated_at_moves_on_a_plain_sql_update(committed_db: Conn) -> None:
    committed_db.execute(
        """INSERT INTO leads ("firstName", "lastName") VALUES ('Ada', 'Lovelace')"""
    )
    for table, change in [
        ("leads", "company = 'Acme'"),
        ("notifications", '"isRead" = true'),
    ]:
        before = committed_db.execute(f'SELECT "updatedAt" FROM {table}').fetchone()
        committed_db.execute(f"UPDATE {table} SET {change}")
        after = committed_db.execute(f'SELECT "updatedAt" FROM {table}').fetchone()
        assert before is not None
        assert after is not None
        assert after["updatedAt"] > before["updatedAt"], table


def test_an_update_that_changes_nothing_keeps_updated_at(committed_db: Conn) -> None:
    committed_db.execute(
        """INSERT INTO leads ("firstName", "lastName") VALUES ('Ada', 'Lovelace')"""
    )
    before = committed_db.execute('SELECT "updatedAt" FROM leads').fetchone()
    committed_db.execute("""UPDATE leads SET "firstName" = 'Ada'""")
    assert committed_db.execute('SELECT "updatedAt" FROM leads').fetchone() == before


def test_user_emails_are_stored_lower_case_and_unique_whatever_the_case(db: Conn) -> None:
    db.execute("""INSERT INTO users (email, "passwordHash") VALUES ('Ann@Example.COM', 'x')""")
    assert db.execute("SELECT email FROM users").fetchone() == {"email": "ann@example.com"}
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute("""INSERT INTO users (email, "passwordHash") VALUES ('ANN@example.com', 'y')""")


def plan(conn: Conn, query: str) -> str:
    rows = conn.execute(f"EXPLAIN {query}").fetchall()
    return "\n".join(str(next(iter(r.values()))) for r in rows)


@pytest.fixture
def many_notifications(committed_db: Conn) -> Conn:
    """20,000 notifications, 1% unread, vacuumed, with fresh statistics."""
    db = committed_db
    db.execute(
        'INSERT INTO leads ("firstName", "lastName") '
        "SELECT 'F' || i, 'L' || i FROM generate_series(1, 20000) AS i"
    )
    db.execute(
        """UPDATE notifications SET "isRead" = true,
           "createdAt" = now() - ("relatedLeadId" * interval '1 second')
           WHERE "relatedLeadId" % 100 <> 0"""
    )
    db.execute("VACUUM ANALYZE notifications")
    return db


def test_the_unread_count_reads_the_unread_index(many_notifications: Conn) -> None:
    query = 'SELECT count(*) FROM notifications WHERE NOT "isRead"'
    assert "notifications_unread_feed_idx" in plan(many_notifications, query)


def test_the_newest_first_page_reads_the_feed_index(many_notifications: Conn) -> None:
    query = 'SELECT * FROM notifications ORDER BY "createdAt" DESC, id DESC LIMIT 50'
    assert "notifications_feed_idx" in plan(many_notifications, query)
    keyset = (
        'SELECT * FROM notifications WHERE ("createdAt", id) < (now(), gen_random_uuid()) '
        'ORDER BY "createdAt" DESC, id DESC LIMIT 50'
    )
    assert "notifications_feed_idx" in plan(many_notifications, keyset)


def function_definitions(conn: Conn) -> dict[str, str]:
    rows = conn.execute(
        "SELECT p.proname, pg_get_functiondef(p.oid) AS definition FROM pg_proc p "
        "JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = 'public' AND p.proname LIKE 'tg\\_%'"
    ).fetchall()
    return {r["proname"]: r["definition"] for r in rows}


def test_db_functions_folder_is_the_migrated_definition_of_every_trigger_function(
    db: Conn,
) -> None:
    migrated = function_definitions(db)
    files = {path.stem: path.read_text() for path in FUNCTIONS_DIR.glob("*.sql")}
    assert set(files) == set(migrated)
    for text in files.values():
        db.execute(text)  # CREATE OR REPLACE, rolled back by the fixture
    assert function_definitions(db) == migrated


def normalized_dump(path: Path) -> str:
    """A dump without the lines that say where it was made: the server and pg_dump versions,
    and per-column `pg_attver` options that some patched servers (this machine's 15) stamp."""
    text = re.sub(r"^-- Dumped (from|by) .*\n", "", path.read_text(), flags=re.MULTILINE)
    return re.sub(r"^ALTER TABLE ONLY .* SET \(pg_attver=\d+\);\n", "", text, flags=re.MULTILINE)


@pytest.fixture
def scratch_database(postgres_server: PostgresServer) -> Iterator[str]:
    name = f"crm_scratch_{uuid.uuid4().hex[:12]}"
    url = postgres_server.create_database(name)
    try:
        yield url
    finally:
        postgres_server.drop_database(name)


def dump(url: str, postgres_server: PostgresServer, target: Path) -> str:
    run_dbmate(url, ["dump"], pg_bin_dir=postgres_server.bin_dir, schema_file=target)
    return normalized_dump(target)


def server_major_version(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT current_setting('server_version_num')::int / 10000").fetchone()
    assert row is not None
    return int(row[0])


def test_up_down_up_gives_the_committed_schema(
    scratch_database: str, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    run_dbmate(scratch_database, ["up"])
    first = dump(scratch_database, postgres_server, tmp_path / "first.sql")
    # db/schema.sql is dumped from the embedded server; another major version (or a server
    # with its own extensions) prints the same schema differently, so only the round trip counts.
    if server_major_version(scratch_database) == POSTGRES_MAJOR_VERSION:
        assert first == normalized_dump(SCHEMA_FILE), "run `make schema` and commit db/schema.sql"

    for _ in MIGRATIONS:
        run_dbmate(scratch_database, ["rollback"])
    with psycopg.connect(scratch_database) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relname NOT LIKE 'schema\\_migrations%'"
        ).fetchone()
        types = conn.execute(
            "SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
            "WHERE n.nspname = 'public' AND t.typtype = 'e'"
        ).fetchone()
    assert left == (0,), "every migration's down section must undo its up section"
    assert types == (0,)

    run_dbmate(scratch_database, ["up"])
    assert dump(scratch_database, postgres_server, tmp_path / "again.sql") == first
