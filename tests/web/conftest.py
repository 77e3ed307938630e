"""Fixtures for the web client's tests: Debian's Chromium driven by Playwright (its own browser
download cannot work here; `make test` installs Chromium through dev/ensure-browser.sh)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

CHROMIUM = "/usr/bin/chromium"
# What Chromium needs on this machine (no GPU, no sandbox as root, no network calls of its own).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
# Screenshots and other files a person may want to look at after the run (.run/ is gitignored).
ARTIFACTS = Path(__file__).resolve().parents[2] / ".run" / "artifacts"


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium; a missing one fails the tests (never skips them)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run dev/ensure-browser.sh (make test does)")
    return CHROMIUM


@pytest.fixture(scope="session")
async def browser(chromium: str) -> AsyncIterator[Browser]:
    """One Chromium for the session; Playwright gives each launch a fresh temporary profile (user data
    dir), and each test opens its own contexts (cookies and storage of their own)."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
