from __future__ import annotations

import psycopg
import pytest
from psycopg.rows import DictRow, dict_row

from server.cursors import StreamCursor, decode_cursor, encode_cursor
from tests.graphql.conftest import SECRET, Api

PAGE = """
query($limit: Int, $before: String, $after: String, $unreadOnly: Boolean) {
  getNotifications(limit: $limit, before: $before, after: $after, unreadOnly: $unreadOnly) {
    id message isRead createdAt cursor
  }
}"""


def add_leads(conn: psycopg.Connection[DictRow], *names: str) -> None:
    """One statement: one transaction, so the notifications share "createdAt" (ties by id)."""
    conn.execute(
        """INSERT INTO leads ("firstName", "lastName")
           SELECT name, 'Lead' FROM unnest(%s::text[]) AS name""",
        (list(names),),
    )


def feed_order(conn: psycopg.Connection[DictRow]) -> list[str]:
    rows = conn.execute('SELECT id FROM notifications ORDER BY "createdAt" DESC, id DESC')
    return [str(row["id"]) for row in rows]


async def page(api: Api, **variables: object) -> list[dict]:
    result: list[dict] = (await api.ok(PAGE, variables))["getNotifications"]
    return result


async def test_first_page_is_newest_first_and_limit_defaults_to_50(
    api: Api, committed_db: psycopg.Connection[DictRow]
) -> None:
    add_leads(committed_db, *[f"n{i}" for i in range(55)])
    add_leads(committed_db, "newest")

    rows = await page(api)

    assert len(rows) == 50
    assert [row["id"] for row in rows] == feed_order(committed_db)[:50]
    assert rows[0]["message"] == "newest Lead added to pipeline"


async def test_before_walks_the_whole_feed_once_in_order_through_ties(
    api: Api, committed_db: psycopg.Connection[DictRow]
) -> None:
    add_leads(committed_db, "a1", "a2", "a3")
    add_leads(committed_db, "b1")
    add_leads(committed_db, "c1", "c2", "c3", "c4")
    seen: list[str] = []
    rows = await page(api, limit=3)
    while rows:
        seen += [row["id"] for row in rows]
        rows = await page(api, limit=3, before=rows[-1]["cursor"])

    assert seen == feed_order(committed_db)


async def test_after_returns_the_limit_closest_newer_rows_newest_first(
    api: Api, committed_db: psycopg.Connection[DictRow]
) -> None:
    add_leads(committed_db, "old")
    (newest,) = await page(api)
    assert await page(api, after=newest["cursor"]) == []

    for name in ("n1", "n2", "n3"):
        add_leads(committed_db, name)
    first = await page(api, limit=2, after=newest["cursor"])
    second = await page(api, limit=2, after=first[0]["cursor"])

    assert [row["message"].split()[0] for row in first] == ["n2", "n1"]
    assert [row["message"].split()[0] for row in second] == ["n3"]


async def test_after_returns_a_row_whose_transaction_committed_after_the_page_was_read(
    api: Api, committed_db: psycopg.Connection[DictRow], database_url: str
) -> None:
    with psycopg.connect(database_url, row_factory=dict_row) as slow_writer:
        # The slow writer inserts first, so its row's "createdAt" is the older one ...
        slow_writer.execute("""INSERT INTO leads ("firstName", "lastName") VALUES ('Late', 'L')""")
        # ... but the other writer commits first, and the page is read in between.
        add_leads(committed_db, "Early")
        before_commit = await page(api)
        slow_writer.commit()

    caught_up = await page(api, after=before_commit[0]["cursor"])

    assert [row["message"] for row in before_commit] == ["Early Lead added to pipeline"]
    assert [row["message"] for row in caught_up] == ["Late L added to pipeline"]
    assert caught_up[0]["createdAt"] < before_commit[0]["createdAt"]
    # And it comes once: the newest cursor now covers it.
    assert await page(api, after=caught_up[0]["cursor"]) == []


async def test_unread_only_filters_read_rows_in_every_direction(
    api: Api, committed_db: psycopg.Connection[DictRow]
) -> None:
    add_leads(committed_db, "r1")
    add_leads(committed_db, "u1")
    anchor = (await page(api))[0]
    add_leads(committed_db, "r2")
    add_leads(committed_db, "u2")
    committed_db.execute("""UPDATE notifications SET "isRead" = true WHERE message LIKE 'r%'""")

    unread = await page(api, unreadOnly=True)
    newer = await page(api, unreadOnly=True, after=anchor["cursor"])
    older = await page(api, unreadOnly=True, before=anchor["cursor"])

    assert [row["message"][:2] for row in unread] == ["u2", "u1"]
    assert [row["message"][:2] for row in newer] == ["u2"]
    assert older == []
    assert [row["message"][:2] for row in await page(api)] == ["u2", "r2", "u1", "r1"]


@pytest.mark.parametrize("limit", [0, -1, 201, 100000])
async def test_limit_outside_1_to_200_is_bad_user_input(api: Api, limit: int) -> None:
    result = await api.gql(PAGE, {"limit": limit})

    assert result.codes == ["BAD_USER_INPUT"]
    assert result.data is None


async def test_limit_200_is_allowed(api: Api) -> None:
    assert await page(api, limit=200) == []


async def test_before_and_after_together_are_bad_user_input(
    api: Api, committed_db: psycopg.Connection[DictRow]
) -> None:
    add_leads(committed_db, "x")
    (row,) = await page(api)

    result = await api.gql(PAGE, {"before": row["cursor"], "after": row["cursor"]})

    assert result.codes == ["BAD_USER_INPUT"]


def _forged_cursors(real: str) -> list[str]:
    cursor = decode_cursor(real, SECRET)
    tampered = StreamCursor(cursor.created_at, cursor.id, 1, 1)
    return [
        "not-a-cursor",
        "",
        encode_cursor(cursor, "some other server's secret"),
        encode_cursor(tampered, "some other server's secret"),
        real[:-2] + ("AA" if not real.endswith("AA") else "BB"),
    ]


@pytest.mark.parametrize("direction", ["before", "after"])
async def test_cursors_this_server_did_not_issue_are_bad_user_input(
    api: Api, committed_db: psycopg.Connection[DictRow], direction: str
) -> None:
    add_leads(committed_db, "x")
    (row,) = await page(api)

    for forged in _forged_cursors(row["cursor"]):
        result = await api.gql(PAGE, {direction: forged})
        assert result.codes == ["BAD_USER_INPUT"], forged
        assert result.data is None


async def test_a_catch_up_page_read_while_a_writer_is_open_still_leads_to_its_late_row(
    api: Api, committed_db: psycopg.Connection[DictRow], database_url: str
) -> None:
    """The cursor of a page read WITH `after` must also remember what was still in flight."""
    add_leads(committed_db, "Anchor")
    (anchor,) = await page(api)
    with psycopg.connect(database_url, row_factory=dict_row) as slow_writer:
        slow_writer.execute("""INSERT INTO leads ("firstName", "lastName") VALUES ('Late', 'L')""")
        add_leads(committed_db, "Early")
        caught_up = await page(api, after=anchor["cursor"])
        slow_writer.commit()

    after_commit = await page(api, after=caught_up[0]["cursor"])

    assert [row["message"] for row in caught_up] == ["Early Lead added to pipeline"]
    assert [row["message"] for row in after_commit] == ["Late L added to pipeline"]
    assert await page(api, after=after_commit[0]["cursor"]) == []


async def test_catching_up_page_by_page_never_skips_rows_committed_out_of_order(
    api: Api, committed_db: psycopg.Connection[DictRow], database_url: str
) -> None:
    add_leads(committed_db, "Anchor")
    cursor = (await page(api))[0]["cursor"]
    seen: list[str] = []
    writers = [psycopg.connect(database_url, row_factory=dict_row) for _ in range(3)]
    try:
        for index, writer in enumerate(writers):
            writer.execute(
                """INSERT INTO leads ("firstName", "lastName") VALUES (%s, 'L')""",
                (f"Open{index}",),
            )
        for round_ in range(3):
            add_leads(committed_db, f"Done{round_}a", f"Done{round_}b")
            rows = await page(api, limit=2, after=cursor)
            while rows:
                seen += [row["message"].split()[0] for row in rows]
                cursor = rows[0]["cursor"]
                rows = await page(api, limit=2, after=cursor)
            writers[2 - round_].commit()  # the last opened commits first
        rows = await page(api, limit=2, after=cursor)
        while rows:
            seen += [row["message"].split()[0] for row in rows]
            cursor = rows[0]["cursor"]
            rows = await page(api, limit=2, after=cursor)
    finally:
        for writer in writers:
            writer.close()

    expected = {f"Done{r}{s}" for r in range(3) for s in "ab"} | {f"Open{i}" for i in range(3)}
    assert sorted(seen) == sorted(expected)
