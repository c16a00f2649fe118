"""A server started again on the address it had, as after a deploy: clients reconnect to it."""

from __future__ import annotations

from pathlib import Path

import pytest

import bench.harness
from tests.realtime import harness
from tests.realtime.harness import ServerProcess, start_server


def start_on_port(
    monkeypatch: pytest.MonkeyPatch,
    port: int,
    database_url: str,
    log_dir: Path,
    extra_env: dict[str, str] | None = None,
) -> ServerProcess:
    """start_server, on `port` instead of a free one (the runner picks its port with free_port;
    both the test harness and bench's runner are patched, whichever one starts the process)."""
    with monkeypatch.context() as patch:
        patch.setattr(bench.harness, "free_port", lambda: port)
        patch.setattr(harness, "free_port", lambda: port)
        return start_server(database_url, log_dir, extra_env=extra_env)
