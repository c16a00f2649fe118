"""The live notification page in headless Chromium: sign in, and see plain SQL writes arrive.

The page is a view of the feed client package (client/). Every test asks for committed_db before
page, so the page closes before the tables are emptied: emptying them deletes the user, which ends
its token, and a page still open would log its refused refetch as a console error.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from playwright.async_api import Locator, Page, expect
from psycopg.rows import DictRow

from server.accounts import create_user
from tests.client.servers import start_on_port
from tests.e2e.conftest import screenshot_path
from tests.realtime.harness import ServerProcess, start_server

EMAIL = "ada@example.com"
PASSWORD = "correct horse battery staple"
# Socket.IO's client retries after 1 s, then backs off to at most 5 s (with jitter).
RECONNECT_MS = 15_000


def insert_lead(conn: psycopg.Connection[DictRow], first: str, last: str) -> None:
    conn.execute('INSERT INTO leads ("firstName", "lastName") VALUES (%s, %s)', (first, last))


async def signed_in(page: Page, server: ServerProcess, database_url: str) -> None:
    """Create the user (no API call), then sign in through the page's form."""
    await create_user(database_url, email=EMAIL, password=PASSWORD)
    await page.goto(f"{server.url}/")
    await page.get_by_label("Email").fill(EMAIL)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Notifications", exact=True)).to_be_visible()
    # Live: the socket is connected, so no event from here on can be missed.
    await expect(page.locator("#connection")).to_have_text("Live")
    await expect(page.locator("#who")).to_have_text(EMAIL)


def badge(page: Page) -> Locator:
    return page.locator("#unread-badge")


def item(page: Page, text: str) -> Locator:
    return page.locator("#feed > li", has_text=text)


async def test_a_lead_inserted_with_plain_sql_appears_live_and_marking_it_read_moves_the_badge(
    committed_db: psycopg.Connection[DictRow],
    page: Page,
    page_server: ServerProcess,
    database_url: str,
) -> None:
    await signed_in(page, page_server, database_url)
    await expect(page.get_by_text("No notifications yet.")).to_be_visible()
    await expect(badge(page)).to_have_text("0 unread")
    await page.evaluate("window.__sameDocument = true")  # gone if the page reloads

    committed_db.execute(
        """INSERT INTO leads ("firstName", "lastName", company)
           VALUES ('Grace', 'Hopper', 'Navy')"""
    )

    added = item(page, "Grace Hopper added to pipeline")
    await expect(added).to_be_visible()
    await expect(added.get_by_role("heading", name="New Lead Created")).to_be_visible()
    await expect(added.locator(".lead")).to_have_text("Grace Hopper, Navy")
    await expect(added).to_have_class("notification unread")
    await expect(badge(page)).to_have_text("1 unread")
    assert await page.evaluate("window.__sameDocument") is True

    await added.get_by_role("button", name="Mark read: Grace Hopper added to pipeline").click()
    await expect(badge(page)).to_have_text("0 unread")
    await expect(added).to_have_class("notification")
    await expect(
        added.get_by_role("button", name="Delete: Grace Hopper added to pipeline")
    ).to_be_visible()
    assert await page.evaluate("window.__sameDocument") is True

    row = committed_db.execute('SELECT "isRead" FROM notifications').fetchone()
    assert row is not None
    assert row["isRead"] is True

    committed_db.execute(
        """INSERT INTO leads ("firstName", "lastName", company)
           VALUES ('Katherine', 'Johnson', 'NASA')"""
    )
    await expect(item(page, "Katherine Johnson added to pipeline")).to_be_visible()
    await expect(badge(page)).to_have_text("1 unread")
    await expect(page.locator("#feed > li").first).to_contain_text("Katherine Johnson")

    path = screenshot_path("live-page")
    await page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")


async def test_bulk_inserts_mark_all_read_and_delete_keep_the_page_equal_to_the_table(
    committed_db: psycopg.Connection[DictRow],
    page: Page,
    page_server: ServerProcess,
    database_url: str,
) -> None:
    await signed_in(page, page_server, database_url)

    # One statement, three leads: one bulk event, and the page refetches.
    committed_db.execute(
        """INSERT INTO leads ("firstName", "lastName")
           VALUES ('Alan', 'Turing'), ('Edsger', 'Dijkstra'), ('Barbara', 'Liskov')"""
    )
    await expect(page.locator("#feed > li")).to_have_count(3)
    await expect(badge(page)).to_have_text("3 unread")

    await page.get_by_role("button", name="Mark all read").click()
    await expect(badge(page)).to_have_text("0 unread")
    await expect(page.locator("#feed > li.unread")).to_have_count(0)
    await expect(page.get_by_role("button", name="Mark all read")).to_be_disabled()

    await (
        item(page, "Alan Turing")
        .get_by_role("button", name="Delete: Alan Turing added to pipeline")
        .click()
    )
    await expect(page.locator("#feed > li")).to_have_count(2)
    left = committed_db.execute("SELECT count(*) AS n FROM notifications").fetchone()
    assert left is not None
    assert left["n"] == 2

    # Another writer deletes a row: the page follows.
    committed_db.execute("DELETE FROM notifications WHERE message LIKE 'Edsger%'")
    await expect(page.locator("#feed > li")).to_have_count(1)
    await expect(item(page, "Barbara Liskov added to pipeline")).to_be_visible()

    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("heading", name="Sign in", exact=True)).to_be_visible()
    assert await page.evaluate("sessionStorage.getItem('crm.token')") is None


async def test_a_wrong_password_is_refused_on_the_page(
    committed_db: psycopg.Connection[DictRow],
    page: Page,
    page_server: ServerProcess,
    database_url: str,
    console_errors: list[str],
) -> None:
    await create_user(database_url, email=EMAIL, password=PASSWORD)
    await page.goto(f"{page_server.url}/")
    await page.get_by_label("Email").fill(EMAIL)
    await page.get_by_label("Password").fill("not the password")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#sign-in-error")).not_to_be_empty()
    await expect(page.locator("#notifications")).to_be_hidden()
    assert await page.evaluate("sessionStorage.getItem('crm.token')") is None
    path = screenshot_path("sign-in-refused")
    await page.screenshot(path=str(path))
    print(f"screenshot: {path}")
    # The browser logs the refused login's HTTP status; that one is expected.
    expected = [e for e in console_errors if "status of 400" in e and e.endswith("/graphql)")]
    assert len(expected) == 1, console_errors
    console_errors.remove(expected[0])


async def test_after_a_server_restart_the_page_catches_up_and_keeps_the_badge_right(
    committed_db: psycopg.Connection[DictRow],
    page: Page,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    console_errors: list[str],
) -> None:
    first = start_server(database_url, tmp_path, extra_env={"APP_ENV": "development"})
    second = None
    try:
        await signed_in(page, first, database_url)
        insert_lead(committed_db, "Ada", "Lovelace")
        insert_lead(committed_db, "Alan", "Turing")
        ada = item(page, "Ada Lovelace added to pipeline")
        await expect(ada).to_have_class("notification unread")
        await expect(badge(page)).to_have_text("2 unread")

        first.terminate()
        await expect(page.locator("#connection")).to_have_text("Reconnecting…")
        # Written while no server runs: no event can ever announce these. Two new rows (catch-up
        # finds them) and a change to a row the page shows (only the refresh after it does).
        insert_lead(committed_db, "Mary", "Somerville")
        insert_lead(committed_db, "Emmy", "Noether")
        committed_db.execute(
            """UPDATE notifications SET "isRead" = true WHERE message LIKE 'Ada Lovelace%'"""
        )

        # The same address again, as after a deploy.
        second = start_on_port(
            monkeypatch, first.port, database_url, tmp_path, {"APP_ENV": "development"}
        )
        live = page.locator("#connection")
        await expect(live).to_have_text("Live", timeout=RECONNECT_MS)
        await expect(item(page, "Mary Somerville added to pipeline")).to_be_visible()
        await expect(item(page, "Emmy Noether added to pipeline")).to_be_visible()
        await expect(page.locator("#feed > li")).to_have_count(4)
        await expect(page.locator("#feed > li").first).to_contain_text("Emmy Noether")
        await expect(ada).to_have_class("notification")
        await expect(badge(page)).to_have_text("3 unread")

        # And it is live again: a plain SQL insert shows at once, and the badge counts it.
        insert_lead(committed_db, "Hedy", "Lamarr")
        await expect(page.locator("#feed > li").first).to_contain_text("Hedy Lamarr")
        await expect(badge(page)).to_have_text("4 unread")
    finally:
        stop_both(first, second, console_errors)


# The page's first WebSocket fails before it opens (as through a proxy that does not pass
# upgrades): Socket.IO's client then falls back to long-polling for that whole connection.
FIRST_WEBSOCKET_FAILS = """(() => {
  const RealWebSocket = window.WebSocket;
  let made = 0;
  class FailingWebSocket extends EventTarget {
    constructor(url) {
      super();
      this.url = url;
      this.readyState = 0;
      setTimeout(() => {
        this.readyState = 3;
        this.onerror?.(new Event("error"));
        this.onclose?.(new CloseEvent("close", { code: 1006 }));
      }, 0);
    }
    send() {}
    close() {}
  }
  window.WebSocket = new Proxy(RealWebSocket, {
    construct(target, args) {
      made += 1;
      return made === 1 ? new FailingWebSocket(args[0]) : new target(...args);
    },
  });
})();"""


async def test_a_page_on_long_polling_survives_a_restart_with_no_failed_request_but_the_refused(
    committed_db: psycopg.Connection[DictRow],
    page: Page,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    console_errors: list[str],
) -> None:
    """SIGTERM answers a long-poll at once (no 400 after uvicorn's graceful timeout): the
    page's next poll is refused like any retry while no server runs, and it reconnects."""
    await page.add_init_script(FIRST_WEBSOCKET_FAILS)
    polls: list[str] = []
    page.on(
        "request",
        lambda request: polls.append(request.url) if "transport=polling" in request.url else None,
    )
    first = start_server(database_url, tmp_path, extra_env={"APP_ENV": "development"})
    second = None
    try:
        await signed_in(page, first, database_url)
        insert_lead(committed_db, "Ada", "Lovelace")
        await expect(item(page, "Ada Lovelace added to pipeline")).to_be_visible()
        assert any("sid=" in url for url in polls), polls  # it is on long-polling
        # The count is the last packet this lead causes: from here the page's poll waits.
        await expect(badge(page)).to_have_text("1 unread")

        first.terminate()
        await expect(page.locator("#connection")).to_have_text("Reconnecting…")
        insert_lead(committed_db, "Mary", "Somerville")
        (tmp_path / "restarted").mkdir()  # its own log: the first one's is read below
        second = start_on_port(
            monkeypatch,
            first.port,
            database_url,
            tmp_path / "restarted",
            {"APP_ENV": "development"},
        )
        await expect(page.locator("#connection")).to_have_text("Live", timeout=RECONNECT_MS)
        await expect(item(page, "Mary Somerville added to pipeline")).to_be_visible()
        insert_lead(committed_db, "Hedy", "Lamarr")
        await expect(page.locator("#feed > li").first).to_contain_text("Hedy Lamarr")
        await expect(badge(page)).to_have_text("3 unread")
    finally:
        stop_both(first, second, console_errors)
    log = first.log()
    assert "action=long_polls_released sockets=1" in log, log
    assert "timeout graceful shutdown exceeded" not in log, log


def stop_both(
    first: ServerProcess, second: ServerProcess | None, console_errors: list[str]
) -> None:
    """Both servers down; then the page's console without the refused retries, which the
    browser logs while no server runs (those are expected)."""
    first.terminate()
    if second is not None:
        second.terminate()
    console_errors[:] = [
        e for e in console_errors if not ("ERR_CONNECTION_REFUSED" in e and "/socket.io/" in e)
    ]
