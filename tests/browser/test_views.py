"""Every view of the web client: no serious or critical axe-core violation, no horizontal
scrolling from a 360-px phone to a desktop, keyboard use, and the screenshots of docs/."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import ROOT, LiveServer, axe_source, axe_violations
from tests.browser.pages import log_in, no_horizontal_scroll, stream_is_live
from tests.browser.world import World, populate

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 360, "height": 740}
SCREENSHOTS = ROOT / "docs" / "screenshots"


def signed_in_views(world: World) -> list[tuple[str, str, str]]:
    """(name, address, something the view shows once loaded)."""
    return [
        ("feed", "/", "article.post"),
        ("post", f"/posts/{world.post_id}", "article.comment"),
        ("profile", f"/users/{world.friend_id}", "article.post"),
        ("people", "/people?q=b", "ul.people li"),
        ("friends", "/friends", ".friend"),
        ("notifications", "/notifications", "li.notification"),
        ("settings", "/settings", ".keys li"),
        ("reports", "/moderation", ".report"),
        ("admin", "/admin", "ul.people li"),
        ("missing-post", "/posts/00000000-0000-7000-8000-000000000000", ".error"),
    ]


SIGNED_OUT_VIEWS = [
    ("login", "/login", "form"),
    ("signup", "/signup", "form"),
    ("forgot-password", "/forgot-password", "form"),
    ("reset-password", "/reset-password?token=abc", "form"),
    ("verify-email", "/verify-email?token=abc", ".error"),
]


def open_view(page: Page, address: str, ready: str) -> None:
    page.goto(address)
    expect(page.locator(ready).first).to_be_visible()
    expect(page.locator("main .loading")).to_have_count(0)


@pytest.fixture
def world(live_server: LiveServer, tmp_path: Path) -> World:
    return populate(live_server, tmp_path)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_every_view_passes_axe_and_fits_the_screen(
    browser: Browser, live_server: LiveServer, world: World, viewport: dict[str, int]
) -> None:
    source = axe_source()
    context = browser.new_context(base_url=live_server.url, viewport=viewport)  # type: ignore[arg-type]
    page = context.new_page()
    found: dict[str, list[dict[str, Any]]] = {}
    for name, address, ready in SIGNED_OUT_VIEWS:
        open_view(page, address, ready)
        found[name] = axe_violations(page, source)
        no_horizontal_scroll(page)
    # The error state of a form, with its alert and the field marked invalid.
    page.goto("/login")
    log_in(page, "ada", "not the password", expect_feed=False)
    expect(page.get_by_role("alert")).to_be_visible()
    found["login-error"] = axe_violations(page, source)
    log_in(page, "ada")
    for name, address, ready in signed_in_views(world):
        open_view(page, address, ready)
        found[name] = axe_violations(page, source)
        no_horizontal_scroll(page)
    assert {name: violations for name, violations in found.items() if violations} == {}
    context.close()


def test_the_journey_works_with_the_keyboard_alone(
    browser: Browser, live_server: LiveServer, world: World
) -> None:
    context = browser.new_context(base_url=live_server.url)
    page = context.new_page()
    page.goto("/login")
    expect(page.get_by_role("heading", name="Log in to Kith")).to_be_focused()  # a view's heading takes focus
    # Backwards from there, the skip link comes first in the page, and it leads to <main>.
    skip = page.get_by_role("link", name="Skip to content")
    for _ in range(10):
        page.keyboard.press("Shift+Tab")
        if page.evaluate("() => document.activeElement.className") == "skip":
            break
    expect(skip).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(skip).not_to_be_focused()  # nothing before it
    page.keyboard.press("Tab")
    expect(skip).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    expect(page.get_by_role("heading", name="Log in to Kith")).to_be_visible()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Username or e-mail")).to_be_focused()
    page.keyboard.type("ada")
    page.keyboard.press("Tab")
    page.keyboard.type("correct horse battery")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="News feed")).to_be_visible()
    # Write a post with the keyboard: focus the text, type, tab to the button, press Enter.
    page.get_by_label("What's on your mind?").focus()
    page.keyboard.type("Typed without a mouse")
    for _ in range(6):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.textContent") == "Post":
            break
    page.keyboard.press("Enter")
    expect(page.locator("article.post").first).to_contain_text("Typed without a mouse")
    # Follow a link by keyboard to the notifications; mark them read with Enter.
    page.get_by_role("link", name="Notifications").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Notifications")).to_be_visible()
    page.get_by_role("button", name="Mark all read").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#unread-badge")).to_be_hidden()
    context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_screenshots_of_the_main_views(
    browser: Browser, live_server: LiveServer, world: World, viewport: dict[str, int], tmp_path: Path
) -> None:
    """Feed, post, notifications and settings. `KITH_UPDATE_SCREENSHOTS=1` copies them into
    docs/screenshots/ (docs/web-client.md shows them)."""
    kind = "phone" if viewport == PHONE else "desktop"
    context = browser.new_context(base_url=live_server.url, viewport=viewport)  # type: ignore[arg-type]
    page = context.new_page()
    log_in(page, "ada")
    stream_is_live(page)
    views = {name: (address, ready) for name, address, ready in signed_in_views(world)}
    taken = []
    for name in ("feed", "post", "notifications", "settings"):
        address, ready = views[name]
        open_view(page, address, ready)
        page.wait_for_load_state("networkidle")
        no_horizontal_scroll(page)
        path = tmp_path / f"{name}-{kind}.png"
        page.screenshot(path=path, full_page=kind == "phone" and name != "settings")
        assert path.stat().st_size > 5000
        taken.append(path)
    if os.environ.get("KITH_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for path in taken:
            shutil.copy(path, SCREENSHOTS / path.name)
    context.close()


def test_the_scan_finds_a_planted_violation(browser: Browser, live_server: LiveServer) -> None:
    """The accessibility scan is not vacuous: a field without a label is reported."""
    source = axe_source()
    context = browser.new_context(base_url=live_server.url)
    page = context.new_page()
    open_view(page, "/login", "form")
    assert axe_violations(page, source) == []
    page.evaluate("() => document.querySelector('form').append(document.createElement('input'))")
    assert "label" in {violation["id"] for violation in axe_violations(page, source)}
    context.close()
