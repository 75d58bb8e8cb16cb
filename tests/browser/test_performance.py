"""The first load of the feed: bytes on the wire (compressed) and the time until it is usable.
Issue 16 asks for under 200 KB and within one second on this machine; the figures measured are
printed and recorded in docs/web-client.md."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Browser, expect

from tests.browser.conftest import LiveServer, Person, api_login, register_by_api
from tests.browser.pages import photo
from tests.helpers import API, PASSWORD

MAX_BYTES = 200 * 1024
MAX_MILLISECONDS = 1000


def test_first_load_of_the_feed_is_small_and_fast(
    browser: Browser, live_server: LiveServer, tmp_path: Any
) -> None:
    ada = register_by_api(live_server, "ada")
    headers = api_login(live_server, Person("ada", ada.email))
    with live_server.api() as http:
        with photo(tmp_path).open("rb") as handle:
            media = http.post(
                f"{API}/media", files={"file": ("p.png", handle, "image/png")}, headers=headers
            ).json()
        for number in range(25):
            body: dict[str, Any] = {"content": f"Post number {number} " + "words " * 40}
            if number == 24:
                body["media_ids"] = [media["id"]]
            assert http.post(f"{API}/posts", json=body, headers=headers).status_code == 201
    context = browser.new_context(base_url=live_server.url)
    # Signed in (the cookie set) without loading the page, so the page's first load is measured.
    signed_in = context.request.post(
        f"{API}/auth/web/login",
        data={"username": "ada", "password": PASSWORD},
        headers={"Origin": live_server.url},
    )
    assert signed_in.ok, signed_in.text()
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
    transferred: dict[str, int] = {}
    urls: dict[str, str] = {}
    cdp.on(
        "Network.requestWillBeSent",
        lambda event: urls.__setitem__(event["requestId"], event["request"]["url"]),
    )
    cdp.on(
        "Network.loadingFinished",
        lambda event: transferred.__setitem__(event["requestId"], int(event["encodedDataLength"])),
    )
    page.goto("/")
    expect(page.locator("article.post")).to_have_count(15)
    expect(page.locator("article.post .media img")).to_have_count(1)  # the newest post has a picture
    page.wait_for_load_state("networkidle")
    interactive = page.evaluate("() => performance.getEntriesByName('kith:interactive')[0].startTime")
    total = sum(transferred.values())
    print(
        f"\nfirst load of the feed: {total / 1024:.1f} KB over {len(transferred)} responses, "
        f"interactive after {interactive:.0f} ms"
    )
    for request_id, size in sorted(transferred.items(), key=lambda item: -item[1]):
        print(f"  {size:>7} B  {urls.get(request_id, '?')}")
    assert total < MAX_BYTES
    assert interactive < MAX_MILLISECONDS
    # Views after the first are JSON from the API, not pages.
    before = set(urls.values())
    page.get_by_role("link", name="Friends").click()
    expect(page.get_by_role("heading", name="Your friends")).to_be_visible()
    page.wait_for_load_state("networkidle")
    later = set(urls.values()) - before
    assert later and all(f"{API}/" in url for url in later), later
    context.close()
