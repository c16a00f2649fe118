"""Logs and metrics of real servers: the realtime tests' clients serve here too."""

from __future__ import annotations

from tests.realtime.conftest import new_client

__all__ = ["new_client"]
