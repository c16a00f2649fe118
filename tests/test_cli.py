"""The command line: create-user, the development sign-in, and start-up refusals."""

from __future__ import annotations

import logging
import subprocess

import psycopg
import pytest
from psycopg.rows import DictRow

from server.accounts import creates_development_user, ensure_development_user
from server.auth import verify_password
from server.settings import load_settings
from tests.child_python import environ_without, run_python


def run_cli(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return run_python(
        "-m",
        "server",
        *args,
        env={**environ_without("DATABASE_URL", "JWT_SECRET"), **env},
        stdin=stdin,
    )


def production_env(database_url: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "JWT_SECRET": "cli-tests-secret-long-enough-for-hs256",
        "APP_ENV": "production",
    }


def test_create_user_reads_the_password_from_stdin_and_stores_an_argon2id_hash(
    database_url: str, committed_db: psycopg.Connection[DictRow]
) -> None:
    result = run_cli(
        "create-user", "New.User@Example.com", env=production_env(database_url), stdin="s3cret-pw\n"
    )

    assert result.returncode == 0, result.stderr
    assert "new.user@example.com" in result.stdout
    row = committed_db.execute('SELECT email, "passwordHash" FROM users').fetchone()
    assert row is not None
    assert row["email"] == "new.user@example.com"
    assert row["passwordHash"].startswith("$argon2id$")
    assert verify_password(row["passwordHash"], "s3cret-pw")


def test_create_user_refuses_a_taken_email_and_reset_password_changes_it(
    database_url: str, committed_db: psycopg.Connection[DictRow]
) -> None:
    env = production_env(database_url)
    assert run_cli("create-user", "a@example.com", env=env, stdin="first-pw\n").returncode == 0

    taken = run_cli("create-user", "A@example.com", env=env, stdin="other-pw\n")
    reset = run_cli("create-user", "a@example.com", "--reset-password", env=env, stdin="new-pw-9\n")

    assert taken.returncode == 1
    assert "already exists" in taken.stderr
    assert reset.returncode == 0, reset.stderr
    row = committed_db.execute('SELECT "passwordHash" FROM users').fetchone()
    assert row is not None
    assert verify_password(row["passwordHash"], "new-pw-9")


def test_create_user_refuses_a_short_password(database_url: str) -> None:
    result = run_cli("create-user", "b@example.com", env=production_env(database_url), stdin="x\n")

    assert result.returncode == 1
    assert "at least 8 characters" in result.stderr


def test_create_user_help_says_where_the_password_comes_from() -> None:
    result = run_cli("create-user", "--help", env={})

    assert result.returncode == 0
    assert "standard input" in result.stdout


def test_serve_outside_development_without_jwt_secret_stops_with_a_clear_message() -> None:
    result = run_cli("serve", env={"DATABASE_URL": "postgresql://nowhere.invalid/crm"})

    assert result.returncode != 0
    assert "JWT_SECRET is required outside development" in result.stderr


def test_serve_in_production_with_a_short_jwt_secret_stops_and_says_how_to_make_one() -> None:
    short = "s" * 31
    result = run_cli(
        "serve", env={"DATABASE_URL": "postgresql://nowhere.invalid/crm", "JWT_SECRET": short}
    )

    assert result.returncode == 2
    assert "JWT_SECRET is 31 bytes; production needs at least 32" in result.stderr
    assert "secrets.token_urlsafe" in result.stderr
    assert short not in result.stderr  # the secret itself is never printed


@pytest.mark.parametrize("secret", ["k" * 32, "ключ" * 4])  # 32 bytes, in ASCII and in UTF-8
def test_a_32_byte_jwt_secret_is_enough_and_development_takes_any(secret: str) -> None:
    production = {"DATABASE_URL": "postgresql:///crm", "JWT_SECRET": secret}
    assert load_settings(production).jwt_secret == secret
    assert load_settings({"APP_ENV": "development", "JWT_SECRET": "short"}).jwt_secret == "short"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, True),  # embedded database, development
        ({"APP_ENV": "production", "JWT_SECRET": "x" * 32}, False),
        ({"DATABASE_URL": "postgresql:///crm"}, False),  # production by default
        ({"DATABASE_URL": "postgresql:///crm", "APP_ENV": "development"}, False),
    ],
)
def test_the_development_user_is_created_only_on_the_embedded_development_database(
    environ: dict[str, str], expected: bool
) -> None:
    settings = load_settings({"JWT_SECRET": "test-secret-that-is-long-enough-hs256", **environ})

    assert creates_development_user(settings) is expected


async def test_ensure_development_user_creates_test_example_com_once_and_says_so(
    database_url: str,
    committed_db: psycopg.Connection[DictRow],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="server.accounts")

    assert await ensure_development_user(database_url) is True
    assert await ensure_development_user(database_url) is False

    row = committed_db.execute('SELECT email, "passwordHash" FROM users').fetchone()
    assert row is not None
    assert row["email"] == "test@example.com"
    assert verify_password(row["passwordHash"], "password")
    created = [r for r in caplog.records if "development_user_created" in r.getMessage()]
    assert len(created) == 1
