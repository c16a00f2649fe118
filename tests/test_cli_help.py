"""Every command of `python -m server` explains itself with --help, examples included."""

from __future__ import annotations

import subprocess

import pytest

from tests.child_python import run_python


def help_of(*command: str) -> subprocess.CompletedProcess[str]:
    return run_python("-m", "server", *command, "--help", timeout=30)


@pytest.mark.parametrize(
    ("command", "purpose"),
    [
        ("serve", "Apply pending migrations, then serve POST /graphql, Socket.IO"),
        ("migrate", "Apply pending database migrations"),
        ("dump-schema", "rewrite db/schema.sql"),
        ("psql", "Open psql on DATABASE_URL or the embedded database"),
        ("create-user", "Create a user who can sign in"),
    ],
)
def test_each_command_says_what_it_does_with_examples(command: str, purpose: str) -> None:
    result = help_of(command)

    assert result.returncode == 0, result.stderr
    assert f"usage: python -m server {command}" in result.stdout
    assert purpose in " ".join(result.stdout.split())
    assert f"examples:\n  python -m server {command}" in result.stdout


def test_the_top_level_help_lists_every_command() -> None:
    result = help_of()

    assert result.returncode == 0, result.stderr
    for command in ("serve", "migrate", "dump-schema", "psql", "create-user"):
        assert command in result.stdout
    assert "python -m server <command> --help" in result.stdout
