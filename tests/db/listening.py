"""A LISTEN connection for tests: collects announcements with a bounded wait."""

from __future__ import annotations

import json
from typing import Any

import psycopg


class Listener:
    def __init__(self, database_url: str) -> None:
        self.conn = psycopg.connect(database_url, autocommit=True)
        self.conn.execute("LISTEN notifications")

    def collect(self, timeout: float = 0.5) -> list[dict[str, Any]]:
        """Every announcement that arrives within `timeout` seconds, parsed."""
        return [json.loads(n.payload) for n in self.conn.notifies(timeout=timeout)]

    def raw(self, timeout: float = 0.5) -> list[str]:
        return [n.payload for n in self.conn.notifies(timeout=timeout)]

    def close(self) -> None:
        self.conn.close()
