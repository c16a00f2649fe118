"""A real server in development mode and Debian's headless Chromium driven by Playwright.

Chromium comes from the project's own set-up (`make browser`, a prerequisite of `make test`);
Playwright's own browser downloads are never used. Without /usr/bin/chromium these tests fail,
saying so: a page nobody looked at is not a passing test.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright

from tests.client.build import build_client
from tests.realtime.harness import ServerProcess, start_server

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
# Without the background-networking flags Chromium keeps calling home on a closed network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(os.environ.get("E2E_ARTIFACTS", Path(__file__).resolve().parent / "artifacts"))
WAIT_MS = 5_000  # the bound on every wait for the page


@pytest.fixture(scope="module", autouse=True)
def built_client() -> None:
    """The page loads the feed client package from client/dist: built from its current sources."""
    build_client()


@pytest.fixture(scope="module")
def page_server(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """`python -m server serve` in development mode (so the page is served) on this module's
    database; CORS_ORIGINS stays another origin, so the page's socket proves same-origin works."""
    process = start_server(
        database_url, tmp_path_factory.mktemp("page-server"), extra_env={"APP_ENV": "development"}
    )
    try:
        yield process
    finally:
        process.terminate()


def require_chromium() -> None:
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} is missing: run `make browser` (as root it installs Debian's chromium "
            "package), or set CHROMIUM to a Chromium binary"
        )


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    require_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, timeout=30_000
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
def console_errors() -> list[str]:
    """Errors the page logged; a test removes those it caused on purpose."""
    return []


@pytest.fixture
async def page(browser: Browser, console_errors: list[str]) -> AsyncIterator[Page]:
    """A fresh context (its own sessionStorage); console errors left at the end fail the test."""
    context = await browser.new_context(viewport={"width": 1000, "height": 720})
    context.set_default_timeout(WAIT_MS)
    page = await context.new_page()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            console_errors.append(f"{message.text} ({message.location.get('url')})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: console_errors.append(f"uncaught: {error}"))
    try:
        yield page
    finally:
        await context.close()
    assert console_errors == [], console_errors


def screenshot_path(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / f"{name}.png"
