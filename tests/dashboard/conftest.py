"""A real browser for the dashboard tests: Debian's Chromium driven by Playwright. Without
Chromium these tests fail with what to install; they never skip (CI's .ci/run installs it)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.backends.local_helpers import local_servers as local_servers

CHROMIUM = os.environ.get("DISTBENCH_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: install Debian's with `apt-get install -y chromium` "
            "(or set DISTBENCH_TEST_CHROMIUM); `playwright install` is not used"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A laptop-sized page in a fixed zone away from UTC, so times shown converted are visible.
    A JavaScript error on the page fails the test."""
    context = browser.new_context(
        viewport={"width": 1366, "height": 900}, timezone_id="America/New_York", locale="en-US"
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_default_timeout(15_000)
    try:
        yield page
    finally:
        context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """The pages only read the API, which is tested on both databases: SQLite is enough here."""
    return f"sqlite:///{tmp_path / 'distbench.db'}"


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
