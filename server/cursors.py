"""Opaque, signed feed cursors.

A cursor names a row's place in the feed ("createdAt", id) and the database snapshot of the read
that returned it. `after:` uses the snapshot to also return rows whose transactions had not
committed when that read ran, so a transaction that commits late is never skipped. The HMAC
makes "a cursor this server did not issue" detectable.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from uuid import UUID

from server.errors import BadInput

_SIGNATURE_BYTES = 16


@dataclass(frozen=True)
class Cursor:
    created_at: datetime
    id: UUID
    snapshot: str  # pg_snapshot text, "xmin:xmax:xip,..."


# One key per secret, derived once: a page of 50 rows signs 50 cursors.
@lru_cache(maxsize=4)
def _key(secret: str) -> bytes:
    return hashlib.sha256(b"crm-feed-cursor\x00" + secret.encode()).digest()


def encode_cursor(cursor: Cursor, secret: str) -> str:
    body = f"{cursor.created_at.isoformat()}|{cursor.id}|{cursor.snapshot}".encode()
    signature = hmac.digest(_key(secret), body, "sha256")[:_SIGNATURE_BYTES]
    return base64.urlsafe_b64encode(signature + body).decode().rstrip("=")


def decode_cursor(text: str, secret: str) -> Cursor:
    """The cursor, or BadInput when it is malformed or was not signed with `secret`."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        signature, body = raw[:_SIGNATURE_BYTES], raw[_SIGNATURE_BYTES:]
        expected = hmac.digest(_key(secret), body, "sha256")[:_SIGNATURE_BYTES]
        if not hmac.compare_digest(signature, expected):
            raise ValueError("signature")
        created_at, row_id, snapshot = body.decode().split("|")
        return Cursor(datetime.fromisoformat(created_at), UUID(row_id), snapshot)
    except ValueError as exc:  # binascii.Error and UnicodeDecodeError are ValueErrors
        raise BadInput("invalid cursor") from exc
