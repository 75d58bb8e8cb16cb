"""Error states: API problems in words beside the field or as an alert, a 429 that says when to
retry, a server that went away (a retry button, and the live stream reconnects), never a blank page."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, expect

from tests.browser.conftest import LiveServer, register_by_api
from tests.browser.pages import log_in, stream_is_live


def test_a_wrong_password_is_said_in_words(browser: Browser, live_server: LiveServer) -> None:
    register_by_api(live_server, "ada")
    page = browser.new_context(base_url=live_server.url).new_page()
    log_in(page, "ada", "not my password", expect_feed=False)
    expect(page.get_by_role("alert")).to_have_text("The login or the password is wrong.")
    expect(page.get_by_role("heading", name="Log in to Kith")).to_be_visible()


def test_validation_errors_stand_next_to_their_field(browser: Browser, live_server: LiveServer) -> None:
    page = browser.new_context(base_url=live_server.url).new_page()
    page.goto("/signup")
    page.get_by_label("Username").fill("a!")
    page.get_by_label("E-mail").fill("not an address")
    page.get_by_label("Password").fill("password")
    page.get_by_role("button", name="Sign up").click()
    username = page.get_by_label("Username")
    expect(username).to_have_attribute("aria-invalid", "true")
    described = username.get_attribute("aria-describedby") or ""
    message = page.locator(f"#{described.split()[0]}")
    expect(message).to_be_visible()
    expect(message).not_to_be_empty()
    expect(page.get_by_label("E-mail")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")
    expect(username).to_be_focused()


def test_429_says_when_to_retry(browser: Browser, live_server_factory: object) -> None:
    server: LiveServer = live_server_factory(  # type: ignore[operator]
        rate_limits_enabled=True, rate_limit_login_failures="2/15 minutes"
    )
    register_by_api(server, "ada")
    page = browser.new_context(base_url=server.url).new_page()
    page.goto("/login")
    for _ in range(2):
        log_in(page, "ada", "wrong password", expect_feed=False)
        expect(page.get_by_role("alert")).to_have_text("The login or the password is wrong.")
    log_in(page, "ada", "wrong password", expect_feed=False)
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text(
        re.compile(r"Too many attempts\. Please try again in \d+ (second|minute)s?\.")
    )
    expect(alert.get_by_role("button", name="Try again")).to_be_visible()


def test_a_server_that_goes_away_offers_a_retry_and_the_stream_comes_back(
    browser: Browser, live_server: LiveServer
) -> None:
    register_by_api(live_server, "ada")
    register_by_api(live_server, "bob")
    page = browser.new_context(base_url=live_server.url).new_page()
    log_in(page, "ada")
    stream_is_live(page)
    live_server.stop()
    expect(page.locator("body")).not_to_have_attribute("data-stream", "live")
    page.get_by_role("link", name="People").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("The server cannot be reached.")
    expect(page.get_by_role("heading", name="People")).to_be_visible()  # never a blank page
    live_server.start()
    alert.get_by_role("button", name="Try again").click()
    expect(page.get_by_role("link", name=re.compile("bob @bob"))).to_be_visible()
    # The live stream reconnected by itself (backing off while the server was away).
    # Its back-off is at most 30 s.
    expect(page.locator("body")).to_have_attribute("data-stream", "live", timeout=40_000)
