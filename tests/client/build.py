"""The feed client package (client/), built once per test session from its current sources and
the contract's current generated types: a test never runs against a stale client/dist."""

from __future__ import annotations

import functools
import shutil
import subprocess

import pytest

from server.settings import PROJECT_ROOT

CLIENT_DIR = PROJECT_ROOT / "client"
BUILD_SCRIPT = CLIENT_DIR / "scripts" / "build.mjs"
PACKAGE_LINK = PROJECT_ROOT / "node_modules" / "@crm-notifications" / "feed-client"


def node() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.fail("node is not on PATH: `make install` needs Node.js and npm")
    return path


@functools.cache
def build_client() -> None:
    if not PACKAGE_LINK.exists():
        pytest.fail(f"{PACKAGE_LINK} is missing: run `make install` (client/ is an npm workspace)")
    result = subprocess.run(
        [node(), str(BUILD_SCRIPT)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"the client does not build:\n{result.stdout}{result.stderr}"
