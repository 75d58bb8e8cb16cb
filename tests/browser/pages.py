"""What a person does in the web client, step by step, in Playwright's words."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

from PIL import Image, ImageDraw
from playwright.sync_api import Page, expect

from tests.conftest import Mailbox
from tests.helpers import PASSWORD

LINK = re.compile(r"https?://\S+")


def sign_up(page: Page, username: str, password: str = PASSWORD) -> None:
    page.goto("/signup")
    page.get_by_label("Username").fill(username)
    page.get_by_label("E-mail").fill(f"{username}@example.com")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="News feed")).to_be_visible()


def log_in(page: Page, identifier: str, password: str = PASSWORD, *, expect_feed: bool = True) -> None:
    if "/login" not in page.url:
        page.goto("/login")
    page.get_by_label("Username or e-mail").fill(identifier)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    if expect_feed:
        expect(page.get_by_role("heading", name="News feed")).to_be_visible()


def stream_is_live(page: Page) -> None:
    expect(page.locator("body")).to_have_attribute("data-stream", "live")


def mail_link(mailbox: Mailbox, address: str, subject: str, timeout: float = 15) -> str:
    """The link in the newest e-mail to `address` with `subject`, waiting for it to arrive."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        messages = [message for message in mailbox.to(address) if message["Subject"] == subject]
        if messages:
            found = LINK.search(mailbox.text_of(messages[-1]))
            assert found, mailbox.text_of(messages[-1])
            return found.group(0)
        time.sleep(0.1)
    raise AssertionError(f"no {subject!r} e-mail to {address}")


def photo(directory: Path, name: str = "picnic.png") -> Path:
    """A small real PNG to upload: a sky, a sun and two hills, 320 x 200."""
    image = Image.new("RGB", (320, 200))
    draw = ImageDraw.Draw(image)
    for y in range(200):
        draw.line([(0, y), (320, y)], fill=(120 + y // 3, 170 + y // 5, 230))
    draw.ellipse((230, 25, 280, 75), fill=(250, 210, 90))
    draw.ellipse((-80, 120, 200, 300), fill=(80, 150, 80))
    draw.ellipse((120, 140, 420, 320), fill=(60, 125, 70))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    path = directory / name
    path.write_bytes(buffer.getvalue())
    return path


def write_post(page: Page, text: str, *images: Path, visibility: str = "friends") -> None:
    page.get_by_label("What's on your mind?").fill(text)
    if images:
        page.get_by_label("Images (optional)").set_input_files(list(images))
    page.get_by_label("Who can see it").select_option(visibility)
    page.get_by_role("button", name="Post", exact=True).click()
    expect(page.locator("article.post").first).to_contain_text(text)


def no_horizontal_scroll(page: Page) -> None:
    width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"{page.url}: content is {width[0]} px wide in a {width[1]} px window"
