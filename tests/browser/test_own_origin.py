"""Every HTML page is served from the instance: with every request to another origin refused,
each page still renders, none asked for anything elsewhere, and each passes axe-core.

The HTML pages are the web client's (one page for every client address), the API docs
(Swagger UI at `/docs`) and the problem type pages (`/problems/<code>`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Request,
    Route,
    WebSocket,
    expect,
)

from tests.browser.conftest import LiveServer, axe_source, axe_violations, register_by_api
from tests.browser.pages import log_in
from tests.helpers import API


@dataclass
class Offline:
    """A browser context cut off from everything but the test server: what it tried to reach
    elsewhere is recorded and refused, and so is any page error or CSP violation."""

    origin: str
    refused: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def local(self, url: str) -> bool:
        return url == self.origin or url.startswith(self.origin + "/")

    def refuse(self, url: str) -> None:
        if url not in self.refused:
            self.refused.append(url)

    def route(self, route: Route) -> None:
        url = route.request.url
        if self.local(url):
            route.continue_()
        else:
            self.refuse(url)
            route.abort("internetdisconnected")

    def request(self, request: Request) -> None:
        # Routing sees every fetch of the page; this catches whatever might bypass it.
        if not self.local(request.url) and not request.url.startswith(("data:", "blob:")):
            self.refuse(request.url)

    def websocket(self, socket: WebSocket) -> None:
        if not socket.url.startswith(self.origin.replace("http", "ws", 1) + "/"):
            self.refuse(socket.url)

    def watch(self, page: Page) -> Page:
        page.on("request", self.request)
        page.on("websocket", self.websocket)
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        page.on("console", self.console)
        return page

    def console(self, message: ConsoleMessage) -> None:
        # A refused request or an answer such as the signed-out client's 401 is logged as
        # "Failed to load resource": the requests are checked above. Anything else that is an
        # error (a CSP violation among them) is one.
        text = message.text
        if "Content Security Policy" in text or (
            message.type == "error" and not text.startswith("Failed to load resource")
        ):
            self.errors.append(text)


def offline_context(context: BrowserContext, origin: str) -> Offline:
    offline = Offline(origin)
    context.route("**/*", offline.route)
    return offline


def shows_swagger_ui(page: Page) -> None:
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Kith API")
    expect(page.locator(".opblock").first).to_be_visible()
    assert page.locator(".opblock").count() > 50  # every operation of the document
    expect(page.locator(".opblock-summary-path").filter(has_text=f"{API}/feed").first).to_be_visible()


def shows_the_problem(page: Page) -> None:
    expect(page.get_by_role("heading", level=1)).to_have_text("not_found")
    expect(page.locator("main p").first).not_to_be_empty()


def shows_the_login(page: Page) -> None:
    expect(page.get_by_role("heading", name="Log in to Kith")).to_be_visible()


PAGES: list[tuple[str, str, Callable[[Page], None]]] = [
    ("client", "/", shows_the_login),
    ("docs", "/docs", shows_swagger_ui),
    ("problem", "/problems/not_found", shows_the_problem),
]


@pytest.mark.parametrize(("name", "address", "shows"), PAGES, ids=[name for name, _, _ in PAGES])
def test_the_page_renders_with_nothing_from_elsewhere_and_passes_axe(
    browser: Browser, live_server: LiveServer, name: str, address: str, shows: Callable[[Page], None]
) -> None:
    source = axe_source()
    context = browser.new_context(base_url=live_server.url)
    offline = offline_context(context, live_server.url)
    page = offline.watch(context.new_page())
    response = page.goto(address)
    assert response is not None and response.status == 200
    shows(page)
    page.wait_for_load_state("networkidle")
    assert page.evaluate("() => document.documentElement.lang") == "en"
    assert axe_violations(page, source) == []
    assert offline.refused == []
    assert offline.errors == []
    context.close()


def test_signed_in_the_client_and_the_docs_reach_nothing_elsewhere(
    browser: Browser, live_server: LiveServer
) -> None:
    """Signed in, the client opens its live stream; in the docs, an operation opened for "Try
    it out" and the Authorize dialog pass axe too, and an executed operation asks this server."""
    source = axe_source()
    register_by_api(live_server, "ada")
    context = browser.new_context(base_url=live_server.url)
    offline = offline_context(context, live_server.url)
    page = offline.watch(context.new_page())
    log_in(page, "ada")
    expect(page.locator("body")).to_have_attribute("data-stream", "live")
    page.goto("/docs")
    shows_swagger_ui(page)
    register = page.locator("#operations-auth-register")
    register.locator(".opblock-summary-control").click()
    expect(page).to_have_url(f"{live_server.url}/docs#/auth/register")  # deep linking stays
    register.get_by_role("button", name="Try it out").click()
    expect(register.get_by_role("textbox", name="Request body")).to_be_visible()
    page.locator(".scheme-container").get_by_role("button", name="Authorize").click()
    expect(page.get_by_role("heading", name="Available authorizations")).to_be_visible()
    assert axe_violations(page, source) == []
    page.get_by_role("button", name="Close", exact=True).first.click()
    health = page.locator("#operations-operations-getLiveness")
    health.locator(".opblock-summary-control").click()
    health.get_by_role("button", name="Try it out").click()
    with page.expect_response(f"{live_server.url}/healthz"):
        health.get_by_role("button", name="Execute").click()
    expect(health.locator(".live-responses-table tbody .response-col_status").first).to_contain_text("200")
    assert offline.refused == []
    assert offline.errors == []
    context.close()


def test_a_request_elsewhere_is_caught(browser: Browser, live_server: LiveServer) -> None:
    """The check is not vacuous: a page that asks another origin for a script is recorded."""
    context = browser.new_context(base_url=live_server.url)
    offline = offline_context(context, live_server.url)
    page = offline.watch(context.new_page())
    page.set_content('<html lang="en"><script src="https://cdn.example.net/ui.js"></script></html>')
    assert offline.refused == ["https://cdn.example.net/ui.js"]
    context.close()
