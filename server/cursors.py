"""Opaque, signed feed cursors, in two kinds.

Every transaction that changes notifications is stamped at commit with a `commitSeq` that
follows commit order (see db/migrations/*_commit_ordered_feed.sql), and every row has an
`insertSeq` that follows insert order, so (commitSeq, insertSeq) puts all rows in commit order.
A cursor stands for the set of rows its holder has:

* `StreamCursor` (events, catch-up rows, mutations): every row up to this one in commit order.
* `FeedCursor` (rows of a first or `before:` page): every row at or older than this one in feed
  order ("createdAt" DESC, id DESC) that the page's read could see. The read saw exactly the
  transactions up to `high_water`, and no row newer than `newest` existed for it.

`after:` returns what a cursor does not stand for: from a feed cursor, the rows between it and
`newest` that the read saw, then everything committed after `high_water`; from a stream cursor,
everything after it in commit order. Both kinds carry the row's feed position, so `before:`
takes either. The HMAC makes "a cursor this server did not issue" detectable; the version
prefix refuses cursors of an older format the same way.
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
_VERSION = "2"


@dataclass(frozen=True)
class StreamCursor:
    created_at: datetime
    id: UUID
    commit_seq: int
    insert_seq: int


@dataclass(frozen=True)
class FeedCursor:
    created_at: datetime
    id: UUID
    high_water: int  # the newest commitSeq the page's read saw
    newest_at: datetime  # the newest feed position the read saw
    newest_id: UUID


Cursor = StreamCursor | FeedCursor


# One key per secret, derived once: a page of 50 rows signs 50 cursors.
@lru_cache(maxsize=4)
def _key(secret: str) -> bytes:
    return hashlib.sha256(b"crm-feed-cursor\x00" + secret.encode()).digest()


def _fields(cursor: Cursor) -> list[str]:
    if isinstance(cursor, StreamCursor):
        return ["s", cursor.created_at.isoformat(), str(cursor.id), str(cursor.commit_seq),
                str(cursor.insert_seq)]  # fmt: skip
    return ["f", cursor.created_at.isoformat(), str(cursor.id), str(cursor.high_water),
            cursor.newest_at.isoformat(), str(cursor.newest_id)]  # fmt: skip


def encode_cursor(cursor: Cursor, secret: str) -> str:
    body = "|".join([_VERSION, *_fields(cursor)]).encode()
    signature = hmac.digest(_key(secret), body, "sha256")[:_SIGNATURE_BYTES]
    return base64.urlsafe_b64encode(signature + body).decode().rstrip("=")


def _parse(fields: list[str]) -> Cursor:
    match fields:
        case [_VERSION, "s", created_at, row_id, commit_seq, insert_seq]:
            return StreamCursor(
                datetime.fromisoformat(created_at), UUID(row_id), int(commit_seq), int(insert_seq)
            )
        case [_VERSION, "f", created_at, row_id, high_water, newest_at, newest_id]:
            return FeedCursor(
                datetime.fromisoformat(created_at),
                UUID(row_id),
                int(high_water),
                datetime.fromisoformat(newest_at),
                UUID(newest_id),
            )
    raise ValueError("unknown cursor format")


def decode_cursor(text: str, secret: str) -> Cursor:
    """The cursor, or BadInput when it is malformed, old, or was not signed with `secret`."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        signature, body = raw[:_SIGNATURE_BYTES], raw[_SIGNATURE_BYTES:]
        expected = hmac.digest(_key(secret), body, "sha256")[:_SIGNATURE_BYTES]
        if not hmac.compare_digest(signature, expected):
            raise ValueError("signature")
        return _parse(body.decode().split("|"))
    except ValueError as exc:  # binascii.Error and UnicodeDecodeError are ValueErrors
        raise BadInput("invalid cursor") from exc
