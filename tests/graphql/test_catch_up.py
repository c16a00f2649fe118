"""Catch-up with getNotifications(after:) from ANY cursor: every row the cursor does not stand
for, each exactly once, however transactions interleave and whatever the limit.

The model test drives several writer connections itself, one step at a time, so it always
knows the truth: which transactions committed in which order, which rows exist, and what each
cursor it was given stands for (a page's rows: what that read saw at or below them; an
event's row: everything committed up to it; a catch-up row: its cursor's set plus what came
before it). It then follows the catch-up loop from random cursors with random limits.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import uuid4

import psycopg
import pytest
from psycopg.rows import DictRow, dict_row

from server.cursors import FeedCursor, StreamCursor, decode_cursor, encode_cursor
from server.serialization import notification_payload
from server.store.notifications import notifications_by_ids
from tests.graphql.conftest import SECRET, Api

PAGE = """
query($limit: Int, $before: String, $after: String) {
  getNotifications(limit: $limit, before: $before, after: $after) { id message cursor }
}"""

Conn = psycopg.Connection[DictRow]


async def page(api: Api, **variables: object) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = (await api.ok(PAGE, variables))["getNotifications"]
    return rows


async def catch_up(api: Api, cursor: str, limit: int) -> list[list[dict[str, str]]]:
    """The contract's loop: repeat with the first (newest) row's cursor until a short page."""
    pages = []
    for _ in range(10_000):
        rows = await page(api, after=cursor, limit=limit)
        pages.append(rows)
        if len(rows) < limit:
            return pages
        cursor = rows[0]["cursor"]
    raise AssertionError("catch-up did not end")


def insert_lead(conn: Conn, name: str) -> None:
    conn.execute('INSERT INTO leads ("firstName", "lastName") VALUES (%s, \'L\')', (name,))


def messages(pages: list[list[dict[str, str]]]) -> list[str]:
    return [row["message"].split()[0] for rows in pages for row in rows]


async def test_catch_up_returns_every_late_commit_whatever_the_limit(
    api: Api, committed_db: Conn, database_url: str
) -> None:
    """Five transactions begin before a page is read and commit after it: their rows are
    older in feed order than the page's newest row."""
    late = [psycopg.connect(database_url, row_factory=dict_row) for _ in range(5)]
    try:
        for index, conn in enumerate(late):
            insert_lead(conn, f"Late{index}")
        insert_lead(committed_db, "Anchor")
        (anchor,) = await page(api)
        assert anchor["message"].startswith("Anchor")
        for conn in late:
            conn.commit()
    finally:
        for conn in late:
            conn.close()
    for limit in (1, 2, 3, 5, 50):
        found = messages(await catch_up(api, anchor["cursor"], limit))
        assert sorted(found) == [f"Late{i}" for i in range(5)], limit


async def test_an_events_cursor_never_covers_a_row_that_commits_after_it(
    api: Api, committed_db: Conn, database_url: str
) -> None:
    """R inserts, then Q inserts and commits, then R commits: R's event comes after Q's, and
    catch-up from Q's event cursor must return R."""
    with (
        psycopg.connect(database_url, row_factory=dict_row) as r,
        psycopg.connect(database_url, row_factory=dict_row) as q,
    ):
        insert_lead(r, "R")
        insert_lead(q, "Q")
        q.commit()
        q_cursor = (await event_cursors(database_url))["Q"]
        r.commit()
    assert messages(await catch_up(api, q_cursor, 2)) == ["R"]
    r_cursor = (await event_cursors(database_url))["R"]
    assert messages(await catch_up(api, r_cursor, 2)) == []


async def event_payloads(database_url: str) -> dict[str, dict[str, str]]:
    """Each row as the listener sends it in its event, cursor included (same read, same
    payload), by row id."""
    async with await psycopg.AsyncConnection.connect(database_url, row_factory=dict_row) as conn:
        ids = [row["id"] async for row in await conn.execute("SELECT id FROM notifications")]
        rows = await notifications_by_ids(conn, ids=ids)
    payloads = [notification_payload(row, cursor_secret=SECRET) for row in rows]
    return {p["id"]: {"message": p["message"], "cursor": p["cursor"]} for p in payloads}


async def event_cursors(database_url: str) -> dict[str, str]:
    """Event cursors by the first word of the message (the lead's name in these tests)."""
    payloads = (await event_payloads(database_url)).values()
    return {p["message"].split()[0]: p["cursor"] for p in payloads}


async def test_a_cursor_from_before_a_truncate_returns_what_came_after_it(
    api: Api, committed_db: Conn
) -> None:
    insert_lead(committed_db, "Gone")
    (before,) = await page(api)
    stream_cursor = (await event_cursors(committed_db.info.dsn))["Gone"]
    committed_db.execute("TRUNCATE notifications")
    insert_lead(committed_db, "After")
    for cursor in (before["cursor"], stream_cursor):
        assert messages(await catch_up(api, cursor, 1)) == ["After"]


async def test_a_cursor_in_the_old_format_is_bad_user_input(api: Api, committed_db: Conn) -> None:
    insert_lead(committed_db, "x")
    (row,) = await page(api)
    body = f"2026-11-24T18:00:00+00:00|{row['id']}|1:1:".encode()
    key = hashlib.sha256(b"crm-feed-cursor\x00" + SECRET.encode()).digest()
    signature = hmac.digest(key, body, "sha256")[:16]
    old = base64.urlsafe_b64encode(signature + body).decode().rstrip("=")
    result = await api.gql(PAGE, {"after": old})
    assert result.codes == ["BAD_USER_INPUT"]


# --- the model test ----------------------------------------------------------------------------


@dataclass
class Writer:
    conn: Conn
    statements: list[list[str]] = field(default_factory=list)  # row ids per statement


@dataclass
class Model:
    """The truth, kept by the driver: it alone commits, so nothing changes behind its back."""

    rng: random.Random
    database_url: str
    writers: list[Writer]
    committed: list[str] = field(default_factory=list)  # row ids in commit order
    deleted: set[str] = field(default_factory=set)
    cursors: list[tuple[str, frozenset[str], str]] = field(default_factory=list)
    names: int = 0

    def existing(self) -> set[str]:
        return set(self.committed) - self.deleted

    def name(self) -> str:
        self.names += 1
        return f"n{self.names}"


def new_rows(conn: Conn, lead_ids: list[int]) -> list[str]:
    """The notification ids this transaction just wrote for these leads, in insert order."""
    rows = conn.execute(
        'SELECT id::text FROM notifications WHERE "relatedLeadId" = ANY(%s) '
        'AND "createdTxid" = pg_current_xact_id() ORDER BY "insertSeq"',
        (lead_ids,),
    )
    return [row["id"] for row in rows]


async def step(model: Model, api: Api, admin: Conn) -> None:
    rng = model.rng
    writer = rng.choice(model.writers)
    action = rng.choices(
        ["insert", "score", "commit", "rollback", "page", "before", "event", "catch_up", "delete"],
        weights=[6, 2, 4, 1, 2, 1, 2, 4, 1],
    )[0]
    if action == "insert":
        names = [model.name() for _ in range(rng.choice([1, 1, 1, 2, 3]))]
        leads = writer.conn.execute(
            'INSERT INTO leads ("firstName", "lastName") SELECT name, \'L\' '
            "FROM unnest(%s::text[]) AS name RETURNING id",
            (names,),
        ).fetchall()
        writer.statements.append(new_rows(writer.conn, [lead["id"] for lead in leads]))
    elif action == "score":
        lead = admin.execute("SELECT id FROM leads ORDER BY random() LIMIT 1").fetchone()
        if lead is not None:
            writer.conn.execute("SET lock_timeout = '1s'")
            try:
                writer.conn.execute(
                    "UPDATE leads SET score = score + 1 WHERE id = %s", (lead["id"],)
                )
            except psycopg.errors.LockNotAvailable:
                writer.conn.rollback()  # another open writer holds that lead: drop this one
                writer.statements.clear()
                return
            writer.statements.append(new_rows(writer.conn, [lead["id"]]))
    elif action == "commit":
        writer.conn.commit()
        model.committed += [row for rows in writer.statements for row in rows]
        writer.statements.clear()
    elif action == "rollback":
        writer.conn.rollback()
        writer.statements.clear()
    elif action == "delete":
        row = admin.execute(
            "SELECT id::text FROM notifications ORDER BY random() LIMIT 1"
        ).fetchone()
        if row is not None:
            admin.execute("DELETE FROM notifications WHERE id = %s", (row["id"],))
            model.deleted.add(row["id"])
    elif action in ("page", "before"):
        await read_page(model, api, admin, older=action == "before")
    elif action == "event":
        take_event_cursor(model, await event_payloads(model.database_url))
    elif action == "catch_up" and model.cursors:
        await check_catch_up(model, api)


def feed(admin: Conn) -> list[str]:
    rows = admin.execute('SELECT id::text FROM notifications ORDER BY "createdAt" DESC, id DESC')
    return [row["id"] for row in rows]


async def read_page(model: Model, api: Api, admin: Conn, *, older: bool) -> None:
    limit = model.rng.randint(1, 6)
    visible = feed(admin)  # nothing commits between this and the read: the driver is idle
    variables: dict[str, object] = {"limit": limit}
    if older and model.cursors:
        variables["before"] = model.rng.choice(model.cursors)[0]
    rows = await page(api, **variables)
    for row in rows:
        at = visible.index(row["id"])
        model.cursors.append((row["cursor"], frozenset(visible[at:]), "page"))


def take_event_cursor(model: Model, payloads: dict[str, dict[str, str]]) -> None:
    """The cursor of the newest committed row, as its event carries it: it stands for every
    row committed up to and including it."""
    existing = [row for row in model.committed if row not in model.deleted]
    if not existing:
        return
    newest = existing[-1]
    upto = model.committed.index(newest) + 1
    model.cursors.append((payloads[newest]["cursor"], frozenset(model.committed[:upto]), "event"))


async def check_catch_up(model: Model, api: Api) -> None:
    cursor, seen, origin = model.rng.choice(model.cursors)
    limit = model.rng.randint(1, 4)
    pages = await catch_up(api, cursor, limit)
    returned = [row["id"] for rows in pages for row in rows]
    expected = model.existing() - seen
    assert len(returned) == len(set(returned)), f"a row came twice from a {origin} cursor"
    assert set(returned) == expected, (
        f"from a {origin} cursor with limit {limit}: "
        f"missing {len(expected - set(returned))}, extra {len(set(returned) - expected)}"
    )
    # Every cursor of a catch-up page stands for its cursor's set plus what came before it.
    holding = set(seen)
    for rows in pages:
        for row in reversed(rows):  # listed furthest first: consumed in the reverse order
            holding.add(row["id"])
            model.cursors.append((row["cursor"], frozenset(holding), "catch-up"))


def model_seeds() -> list[int]:
    """Fixed seeds plus one that changes every run (DELIVERY_MODEL_SEED pins it)."""
    pinned = os.environ.get("DELIVERY_MODEL_SEED")
    return [1, 2, 3, int(pinned) if pinned else random.SystemRandom().randrange(1 << 30)]


@pytest.mark.parametrize("seed", model_seeds())
async def test_catch_up_from_any_cursor_returns_exactly_what_it_does_not_stand_for(
    api: Api, committed_db: Conn, database_url: str, seed: int
) -> None:
    writers = [Writer(psycopg.connect(database_url, row_factory=dict_row)) for _ in range(4)]
    model = Model(random.Random(seed), database_url, writers)
    try:
        for number in range(150):
            try:
                await step(model, api, committed_db)
            except AssertionError as exc:
                raise AssertionError(f"seed {seed}, step {number}: {exc}") from exc
        for writer in writers:
            writer.conn.commit()
            model.committed += [row for rows in writer.statements for row in rows]
        for cursor, seen, origin in model.cursors[-20:]:
            returned = [row["id"] for rows in await catch_up(api, cursor, 3) for row in rows]
            assert sorted(returned) == sorted(model.existing() - seen), f"seed {seed} {origin}"
    finally:
        for writer in writers:
            writer.conn.close()
    assert len(model.cursors) > 20, f"seed {seed} made too few cursors to test anything"


def test_cursors_encode_what_they_stand_for() -> None:
    """A sanity check of the two kinds (the signed text round-trips)."""
    now = datetime.now(UTC)
    for cursor in (
        StreamCursor(now, uuid4(), 7, 12),
        FeedCursor(now, uuid4(), 9, now, uuid4()),
    ):
        assert decode_cursor(encode_cursor(cursor, SECRET), SECRET) == cursor
