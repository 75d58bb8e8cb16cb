"""The web client's security rules, in the browser: no token anywhere scripts can read, the
refresh cookie HttpOnly and SameSite=Strict on its path, a strict CSP, user text never HTML."""

from __future__ import annotations

from playwright.sync_api import Browser, Dialog, expect

from tests.browser.conftest import LiveServer, register_by_api
from tests.browser.pages import log_in, write_post
from tests.helpers import API

STORAGE = """async () => ({
    local: Object.entries(localStorage), session: Object.entries(sessionStorage),
    cookie: document.cookie,
    databases: indexedDB.databases ? (await indexedDB.databases()).map((db) => db.name) : [],
    caches: await caches.keys(),
})"""


def test_no_token_is_kept_where_scripts_can_read_it(browser: Browser, live_server: LiveServer) -> None:
    register_by_api(live_server, "ada")
    context = browser.new_context(base_url=live_server.url)
    page = context.new_page()
    page.goto("/login")
    with page.expect_response(f"{live_server.url}{API}/auth/web/login") as login:
        log_in(page, "ada")
    access_token = login.value.json()["access_token"]
    cookies = {cookie["name"]: cookie for cookie in context.cookies()}
    refresh = cookies.pop("kith_refresh")
    assert cookies == {}
    assert refresh["httpOnly"] is True
    assert refresh["sameSite"] == "Strict"
    assert refresh["path"] == f"{API}/auth/web"
    page.get_by_role("link", name="Settings").click()
    expect(page.get_by_role("heading", name="Settings")).to_be_visible()
    stored = page.evaluate(STORAGE)
    assert stored == {"local": [], "session": [], "cookie": "", "databases": [], "caches": []}
    assert access_token not in page.content()
    # A reload signs in again from the cookie alone.
    page.reload()
    expect(page.get_by_role("heading", name="Settings")).to_be_visible()


def test_pages_carry_a_strict_csp(browser: Browser, live_server: LiveServer) -> None:
    page = browser.new_context(base_url=live_server.url).new_page()
    response = page.goto("/login")
    assert response is not None
    csp = response.headers["content-security-policy"]
    assert "script-src 'self';" in csp
    assert "default-src 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    # The browser enforces it: an inline script added to the page does not run.
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text))
    page.evaluate(
        "() => { const s = document.createElement('script'); s.textContent = 'window.ran = 1';"
        " document.body.append(s); }"
    )
    assert page.evaluate("() => window.ran") is None
    assert any("Content Security Policy" in text for text in violations)


def test_a_script_in_a_post_is_shown_as_text(browser: Browser, live_server: LiveServer) -> None:
    register_by_api(live_server, "ada")
    page = browser.new_context(base_url=live_server.url).new_page()
    dialogs: list[str] = []

    def refuse(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", refuse)
    log_in(page, "ada")
    hostile = '<script>alert("post")</script><img src=x onerror="alert(1)"> & <b>bold?</b>'
    write_post(page, hostile, visibility="public")
    page.reload()
    text = page.locator("article.post .text").first
    expect(text).to_have_text(hostile)
    assert text.locator("script, img, b").count() == 0
    assert dialogs == []


def test_tabs_that_open_at_once_take_turns_to_refresh(browser: Browser, live_server: LiveServer) -> None:
    """Refresh tokens rotate and a reused one ends the session: four tabs loading together must
    not present the same cookie twice (they take turns with the Web Locks API)."""
    register_by_api(live_server, "ada")
    context = browser.new_context(base_url=live_server.url)
    first = context.new_page()
    log_in(first, "ada")
    tabs = [context.new_page() for _ in range(4)]
    for tab in tabs:
        tab.goto("/settings", wait_until="commit")
    first.reload(wait_until="commit")
    for tab in tabs:
        expect(tab.get_by_role("heading", name="Settings")).to_be_visible()
    expect(first.get_by_role("heading", name="News feed")).to_be_visible()
    # The session survived: every tab still acts, and one more reload still signs in.
    tabs[0].reload()
    expect(tabs[0].locator(".sessions li")).to_have_count(1)
    context.close()
