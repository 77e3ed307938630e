"""The web client (web/) in a real browser against the suite's whole stack: two people sign up, one
follows the other, the author uploads and posts a photo, the follower sees it in the feed (blurhash,
then the 640 px rendition) and likes it, and the author's notification arrives live. Also: our
blurhash decoder against an independent one, and the phone-sized layout."""

from __future__ import annotations

import asyncio
import io
import json
import random
import re
from pathlib import Path

import blurhash as oracle
import pytest
from PIL import Image
from playwright.async_api import Browser, Page, expect

from media_svc import blurhash
from tests.gateway.test_app import short_lived_access

pytestmark = pytest.mark.usefixtures("fanout", "media_worker")

PASSWORD = "a long enough passphrase"
# Where web/api.js keeps the session (its SESSION_KEY).
SESSION_KEY = "glimpse.session"
PHONE = {"width": 390, "height": 844}


def photo_file(folder: Path) -> Path:
    """A 1600 x 1200 JPEG with a gradient and a few shapes, so each rendition looks like a photo."""
    image = Image.linear_gradient("L").resize((1600, 1200)).convert("RGB")
    pixels = image.load()
    for x in range(0, 1600, 4):
        for y in range(400, 800, 4):
            pixels[x, y] = (40 + x // 10 % 200, 120, 200 - y // 8 % 150)
    path = folder / "photo.jpg"
    image.save(path, "JPEG", quality=85)
    return path


async def sign_up(page: Page, base: str, username: str) -> None:
    await page.goto(f"{base}/#/signup")
    await page.get_by_label("Username", exact=True).fill(username)
    await page.get_by_label("Email").fill(f"{username}@example.com")
    await page.get_by_label("Display name").fill(username.capitalize())
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign up").click()
    await expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    await expect(page.get_by_role("heading", name="Home")).to_be_attached()


async def share_photo(page: Page, base: str, folder: Path, caption: str) -> str:
    """Posts a photo through the New post form; returns the post's id."""
    await page.goto(f"{base}/#/new")
    await page.get_by_label("Photo").set_input_files(photo_file(folder))
    await page.get_by_label("Caption").fill(caption)
    await page.get_by_role("button", name="Share").click()
    await expect(page).to_have_url(re.compile(r"#/p/\d+$"), timeout=15000)
    return page.url.rsplit("/", 1)[1]


async def wait_for_post_in_feed(page: Page, base: str, post_id: str, within: float = 45) -> None:
    """Reloads the feed until the post is there with its 640 px photo loaded (the fan-out and the
    rendition worker run asynchronously)."""
    deadline = asyncio.get_running_loop().time() + within
    photo = page.locator(f'article[data-post-id="{post_id}"] img.loaded')
    while True:
        await page.goto(f"{base}/#/")
        await page.reload()
        try:
            await expect(photo).to_be_visible(timeout=2000)
            return
        except AssertionError:
            if asyncio.get_running_loop().time() > deadline:
                raise


async def test_post_seen_liked_and_notified_live(
    browser: Browser, gateway_url: str, new_username, tmp_path: Path, artifacts: Path
):
    author_context = await browser.new_context()
    follower_context = await browser.new_context(viewport=PHONE, device_scale_factor=2)
    try:
        author, follower = await author_context.new_page(), await follower_context.new_page()
        author_name, follower_name = new_username(), new_username()
        await sign_up(author, gateway_url, author_name)
        await sign_up(follower, gateway_url, follower_name)

        # The follower finds the author through search and follows from the profile.
        await follower.goto(f"{gateway_url}/#/search")
        await follower.get_by_label("Search people and #hashtags").fill(author_name)
        await follower.get_by_role("button", name="Search").click()
        await follower.get_by_role("list", name="People").get_by_role("link", name=author_name.capitalize()).click()
        await follower.get_by_role("button", name="Follow", exact=True).click()
        await expect(follower.get_by_role("status")).to_have_text(f"You follow {author_name}")

        # The author uploads a photo (grant, then straight to object storage) and posts it.
        await author.goto(f"{gateway_url}/#/new")
        await author.get_by_label("Photo").set_input_files(photo_file(tmp_path))
        await author.get_by_label("Caption").fill("First light over the #harbour")
        await author.get_by_role("button", name="Share").click()
        await expect(author).to_have_url(re.compile(r"#/p/\d+$"), timeout=15000)
        post_id = author.url.rsplit("/", 1)[1]
        await expect(author.get_by_role("progressbar", name="Upload progress")).to_have_count(0)

        # The author watches their notifications; nothing yet.
        await author.goto(f"{gateway_url}/#/notifications")
        await expect(author.get_by_role("heading", name="Notifications")).to_be_visible()
        await expect(author.locator("#unread")).to_be_hidden()

        # The follower's feed shows the post: a blurhash canvas under the 640 px rendition.
        await wait_for_post_in_feed(follower, gateway_url, post_id)
        card = follower.locator(f'article[data-post-id="{post_id}"]')
        await expect(card.get_by_text("First light over the")).to_be_visible()
        await expect(card.locator("canvas")).to_have_count(1)
        img = card.locator("img")
        assert "/640.webp" in (await img.get_attribute("src") or "")
        assert await img.evaluate("i => i.naturalWidth") == 640
        # Nothing is wider than the phone's screen.
        assert await follower.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        await follower.screenshot(path=str(artifacts / "feed.png"))

        like = card.get_by_role("button", name="Like")
        await expect(like).to_have_attribute("aria-pressed", "false")
        await like.click()
        await expect(like).to_have_attribute("aria-pressed", "true")
        await expect(card.get_by_text("1 likes")).to_be_visible()

        # The author's open page hears of it through the stream, without reloading.
        notice = author.get_by_role("list", name="Notifications").get_by_role("listitem").first
        await expect(notice).to_have_text(f"{follower_name.capitalize()} liked your post", timeout=15000)
        await expect(author.locator("#unread")).to_have_text("1")
        await expect(author.get_by_role("link", name="Notifications, 1 unread")).to_be_visible()

        # Unliking takes it back on the follower's side too.
        await like.click()
        await expect(like).to_have_attribute("aria-pressed", "false")
        await expect(card.get_by_text("0 likes")).to_be_visible()
    finally:
        await author_context.close()
        await follower_context.close()


async def test_a_wrong_password_is_shown_and_nothing_is_signed_in(browser: Browser, gateway_url: str, new_username):
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(f"{gateway_url}/#/new")
        # Signed out: any page leads to the log-in form.
        await expect(page).to_have_url(re.compile(r"#/login$"))
        await page.get_by_label("Username or email").fill(new_username())
        await page.get_by_label("Password").fill("not the password at all")
        await page.get_by_role("button", name="Log in").click()
        await expect(page.get_by_role("alert")).to_contain_text("password")
        await expect(page.get_by_role("navigation", name="Main")).to_be_hidden()
    finally:
        await context.close()


async def test_our_blurhash_decoder_matches_an_independent_one(browser: Browser, gateway_url: str):
    rng = random.Random(18)
    hashes = []
    for components in [(1, 1), (4, 3), (9, 9), (3, 5)]:
        image = Image.new("RGB", (24, 16))
        image.putdata([(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(24 * 16)])
        hashes.append(blurhash.encode(image, *components))
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(f"{gateway_url}/#/login")
        for hash_ in hashes:
            ours = await page.evaluate(
                "async (h) => Array.from((await import('/blurhash.js')).decode(h, 12, 8))", hash_
            )
            expected = oracle.decode(hash_, 12, 8)
            for y in range(8):
                for x in range(12):
                    at = 4 * (y * 12 + x)
                    assert ours[at + 3] == 255
                    for channel in range(3):
                        assert abs(ours[at + channel] - expected[y][x][channel]) <= 1, (hash_, x, y)
        malformed = await page.evaluate(
            "async () => { try { (await import('/blurhash.js')).decode('L00000', 4, 4); return 'decoded'; }"
            " catch (e) { return e.message; } }"
        )
        assert malformed == "blurhash length does not match its size flag"
    finally:
        await context.close()


def test_the_photo_is_a_real_jpeg(tmp_path: Path):
    with Image.open(io.BytesIO(photo_file(tmp_path).read_bytes())) as image:
        assert image.format == "JPEG" and image.size == (1600, 1200)


async def test_private_account_comments_replies_saves_profiles_and_blocks(
    browser: Browser, gateway_url: str, new_username, tmp_path: Path
):
    author_context, reader_context = await browser.new_context(), await browser.new_context(viewport=PHONE)
    try:
        author, reader = await author_context.new_page(), await reader_context.new_page()
        author_name, reader_name = new_username(), new_username()
        await sign_up(author, gateway_url, author_name)
        await sign_up(reader, gateway_url, reader_name)

        # The author goes private; the reader's follow becomes a request the author approves.
        await author.goto(f"{gateway_url}/#/settings")
        await author.get_by_label("Private account").check()
        await expect(author.get_by_role("status")).to_have_text("Your account is private")
        post_id = await share_photo(author, gateway_url, tmp_path, "Quiet morning")
        await reader.goto(f"{gateway_url}/#/u/{author_name}")
        await expect(reader.get_by_role("alert")).to_contain_text("this account is private")
        await reader.get_by_role("button", name="Follow", exact=True).click()
        await expect(reader.get_by_role("status")).to_have_text("Follow requested")
        await author.goto(f"{gateway_url}/#/settings")
        requests = author.get_by_role("list", name="Follow requests")
        await (
            requests.get_by_role("listitem")
            .filter(has_text=reader_name.capitalize())
            .get_by_role("button", name="Approve")
            .click()
        )
        await expect(requests.get_by_role("listitem")).to_have_count(0)

        # Now the reader sees the grid, opens the post at 1080 px and comments; the author replies.
        # The author writes a bio and a website (through the API as the page holds it: the client has
        # no profile form yet); the reader sees them on the profile.
        changed = await author.evaluate(
            """async () => {
                const session = JSON.parse(localStorage.getItem("glimpse.session"));
                const response = await fetch("/v1/users/me", {
                    method: "PATCH",
                    headers: {"Authorization": `Bearer ${session.access_token}`, "Content-Type": "application/json"},
                    body: JSON.stringify({bio: "Mornings by the river", website: "example.org/ada"}),
                });
                return response.status;
            }"""
        )
        assert changed == 200
        await reader.reload()
        await expect(reader.get_by_role("link", name="1 follower", exact=True)).to_be_visible()
        await expect(reader.get_by_text("Mornings by the river")).to_be_visible()
        await expect(reader.get_by_role("link", name="example.org/ada")).to_have_attribute(
            "href", "https://example.org/ada"
        )
        await reader.get_by_role("list", name="Posts").get_by_role("listitem").first.click()
        await expect(reader).to_have_url(re.compile(f"#/p/{post_id}$"))
        full = reader.locator(f'article[data-post-id="{post_id}"] img.loaded')
        deadline = asyncio.get_running_loop().time() + 45
        while not await full.count():
            assert asyncio.get_running_loop().time() < deadline, "the 1080 px rendition never loaded"
            await reader.reload()
            await reader.wait_for_timeout(1000)
        assert await full.evaluate("i => i.naturalWidth") == 1080
        await reader.get_by_label("Add a comment").fill("Lovely light")
        await reader.get_by_role("button", name="Post comment").click()
        await expect(reader.get_by_role("region", name="Comments").get_by_text("Lovely light")).to_be_visible()

        await author.goto(f"{gateway_url}/#/p/{post_id}")
        await author.get_by_role("button", name=f"Reply to {reader_name.capitalize()}").click()
        await expect(author.get_by_role("textbox", name=f"Reply to {reader_name}")).to_be_focused()
        await author.keyboard.type("Thank you!")
        await author.keyboard.press("Enter")
        await expect(author.get_by_text("Thank you!")).to_be_visible()
        await reader.reload()
        await reader.get_by_role("button", name="View 1 replies").click()
        await expect(reader.get_by_text("Thank you!")).to_be_visible()

        # Saved posts are the reader's own list.
        card = reader.locator(f'article[data-post-id="{post_id}"]')
        await card.get_by_role("button", name="Save").click()
        await expect(card.get_by_role("button", name="Save")).to_have_attribute("aria-pressed", "true")
        await reader.goto(f"{gateway_url}/#/saved")
        await expect(reader.locator(f'article[data-post-id="{post_id}"]')).to_be_visible()

        # The author's followers list names the reader; blocking the reader lists them, unblocking clears it.
        await author.goto(f"{gateway_url}/#/u/{author_name}/followers")
        await expect(author.get_by_role("link", name=reader_name.capitalize())).to_be_visible()
        await author.goto(f"{gateway_url}/#/u/{reader_name}")
        author.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await author.get_by_role("button", name="Block").click()
        await expect(author.get_by_role("status")).to_have_text(f"Blocked {reader_name}")
        await author.goto(f"{gateway_url}/#/settings")
        blocked = author.get_by_role("list", name="Blocked accounts")
        await blocked.get_by_role("button", name="Unblock").click()
        await expect(blocked.get_by_role("listitem")).to_have_count(0)
    finally:
        await author_context.close()
        await reader_context.close()


async def test_the_notification_stream_outlives_an_expired_access_token(
    browser: Browser, gateway_url: str, new_username
):
    """The gateway ends a notification stream when its access token expires; the page refreshes the
    token and reconnects, so what happens after the expiry still arrives live."""
    author_context, fan_context = await browser.new_context(), await browser.new_context()
    try:
        author, fan = await author_context.new_page(), await fan_context.new_page()
        author_name, fan_name = new_username(), new_username()
        await sign_up(author, gateway_url, author_name)
        await sign_up(fan, gateway_url, fan_name)
        # The author's access token becomes one of the same session that expires in 2 seconds.
        stored = json.loads(await author.evaluate(f"localStorage.getItem('{SESSION_KEY}')"))
        short_lived = short_lived_access(int(stored["user"]["id"]), session_id=int(stored["session_id"]))
        stored["access_token"] = short_lived.token
        await author.evaluate(f"s => localStorage.setItem('{SESSION_KEY}', s)", json.dumps(stored))
        await author.goto(f"{gateway_url}/#/notifications")
        await author.reload()  # the page starts again, its stream opened with the short-lived token
        await expect(author.get_by_role("heading", name="Notifications")).to_be_visible()
        # An empty inbox says so, and its (empty) list is there for what arrives live.
        await expect(author.get_by_text("Nothing yet.")).to_be_visible()
        await expect(author.get_by_role("list", name="Notifications")).to_be_attached()
        await asyncio.sleep(4)  # the token expires; the stream ends and the page reconnects

        await fan.goto(f"{gateway_url}/#/u/{author_name}")
        await fan.get_by_role("button", name="Follow", exact=True).click()
        await expect(fan.get_by_role("status")).to_have_text(f"You follow {author_name}")
        notice = author.get_by_role("list", name="Notifications").get_by_role("listitem").first
        await expect(notice).to_have_text(f"{fan_name.capitalize()} started following you", timeout=15000)
        renewed = json.loads(await author.evaluate(f"localStorage.getItem('{SESSION_KEY}')"))
        assert renewed["access_token"] != short_lived.token
    finally:
        await author_context.close()
        await fan_context.close()
