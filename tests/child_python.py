"""A child Python in the project's root, run to its end with its output kept: how the tests run
`python -m server` and scripts that need an interpreter of their own."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping

from server.settings import PROJECT_ROOT


def environ_without(*names: str) -> dict[str, str]:
    """This process's environment without `names` (settings a test must set itself)."""
    return {key: value for key, value in os.environ.items() if key not in names}


def run_python(
    *argv: str,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    """`python ARGV` to its end (`timeout` s at most). `env` None: this process's environment;
    `stdin` None: this process's standard input."""
    return subprocess.run(
        [sys.executable, *argv],
        input=stdin,
        env=None if env is None else dict(env),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
