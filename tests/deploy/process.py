"""Stopping the helper processes the deploy tests run (nginx, PgBouncer)."""

from __future__ import annotations

import signal
import subprocess


def stop_fast(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM, the fast stop of both nginx and PgBouncer (their graceful signals wait for
    clients), then SIGKILL if it has not exited within `timeout` seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
