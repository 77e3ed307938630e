"""Takes the README's screenshot of the web client: logs in as the demo user on a running `make run`
and saves the top of the home feed, phone-sized, once its photos have loaded.

    .venv/bin/python dev/feed_screenshot.py [http://127.0.0.1:8080] [docs/feed.png]
"""

from __future__ import annotations

import asyncio
import sys

from playwright.async_api import async_playwright

from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS


async def main(base: str, out: str) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = await browser.new_page(viewport={"width": 430, "height": 900}, device_scale_factor=1)
        await page.goto(f"{base}/#/login")
        await page.get_by_label("Username or email").fill("reed0")
        await page.get_by_label("Password").fill("glimpse-demo-password")
        await page.get_by_role("button", name="Log in").click()
        await page.locator("article.post").first.wait_for()
        # The photos in view have faded in over their blurhash.
        await page.wait_for_function(
            "[...document.querySelectorAll('article.post')].slice(0, 2)"
            ".every(a => a.querySelector('img') && a.querySelector('img').classList.contains('loaded'))",
            timeout=60000,
        )
        await page.wait_for_timeout(500)
        await page.screenshot(path=out)
        await browser.close()


if __name__ == "__main__":
    asyncio.run(main(*(sys.argv[1:3] or ["http://127.0.0.1:8080", "docs/feed.png"])))
