"""A real Mastodon client library, Mastodon.py, against a live Kith (docs/mastodon.md): it
registers an app, sends its user to the authorization page, trades the code for a token,
verifies the app and the account, and revokes the token.

The first test completes the authorization page with plain HTTP (login and password), with
rate limits on, so Mastodon.py also reads Kith's `X-RateLimit-*` headers; the second in
Chromium, signed in to the web client, where the page approves with the web client's session,
passes axe-core, reaches nothing elsewhere, and the settings revoke the app.
"""

from __future__ import annotations

import html
import re
from typing import Any

import httpx
import pytest
from mastodon import Mastodon, MastodonAPIError, MastodonUnauthorizedError
from playwright.sync_api import Browser, expect

from tests.browser.conftest import LiveServer, axe_source, axe_violations, register_by_api
from tests.browser.pages import log_in
from tests.browser.test_own_origin import offline_context
from tests.helpers import PASSWORD

OOB = "urn:ietf:wg:oauth:2.0:oob"
SCOPES = ["read", "write", "follow", "push"]


def mastodon_app(server: LiveServer, name: str) -> Mastodon:
    """A Mastodon.py client of a newly registered app, checking the server's version as it goes."""
    client_id, client_secret = Mastodon.create_app(
        name, scopes=SCOPES, redirect_uris=OOB, api_base_url=server.url
    )
    return Mastodon(
        client_id=client_id,
        client_secret=client_secret,
        api_base_url=server.url,
        version_check_mode="created",
    )


def approve_by_http(server: LiveServer, url: str, login: str) -> str:
    """The authorization page, answered with a login and password as a browser would: the code."""
    with httpx.Client(timeout=20) as http:
        page = http.get(url)
        assert page.status_code == 200, page.text
        fields = {
            name: html.unescape(value)
            for name, value in re.findall(
                r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">', page.text
            )
        }
        answer = http.post(
            f"{server.url}/oauth/authorize",
            data={**fields, "login": login, "password": PASSWORD, "decision": "approve"},
            headers={"Origin": server.url},
        )
    found = re.search(r'<input id="code" readonly value="([^"]+)">', answer.text)
    assert answer.status_code == 200 and found, answer.text
    return found.group(1)


def test_mastodon_py_signs_in_verifies_and_revokes(live_server_factory: Any) -> None:
    server: LiveServer = live_server_factory(rate_limits_enabled=True)
    register_by_api(server, "ada")
    app = mastodon_app(server, "Mastodon.py test")
    assert app.retrieve_mastodon_version() == "4.2.0"
    url = app.auth_request_url(scopes=SCOPES, redirect_uris=OOB, state="state-1", allow_http=True)
    assert url.startswith(f"{server.url}/oauth/authorize?")

    token = app.log_in(code=approve_by_http(server, url, "ada"), scopes=SCOPES, allow_http=True)
    assert token.startswith("kith_at_")
    assert app.app_verify_credentials().name == "Mastodon.py test"
    account = app.account_verify_credentials()
    assert account.username == "ada" and account.acct == "ada" and account.locked is True
    assert account.source.privacy == "private"
    # Mastodon.py reads the limits as Mastodon sends them: the reset as a time.
    assert app.ratelimit_limit == 300 and 0 < app.ratelimit_remaining < 300
    assert app.ratelimit_reset > 0

    app.revoke_access_token(allow_http=True)
    again = Mastodon(access_token=token, api_base_url=server.url)
    with pytest.raises(MastodonUnauthorizedError):
        again.account_verify_credentials()


def test_a_wrong_code_or_scope_is_refused_to_mastodon_py(live_server: LiveServer) -> None:
    register_by_api(live_server, "ada")
    app = mastodon_app(live_server, "Mastodon.py test")
    with pytest.raises(Exception, match="invalid_grant"):
        app.log_in(code="not-a-code", scopes=SCOPES, allow_http=True)
    url = app.auth_request_url(scopes=["read"], redirect_uris=OOB, allow_http=True)
    code = approve_by_http(live_server, url, "ada")
    # Granted `read` only, while asking for all four: Mastodon.py itself refuses the token.
    with pytest.raises(MastodonAPIError, match="do not contain all of the requested scopes"):
        app.log_in(code=code, scopes=SCOPES, allow_http=True)


def test_signed_in_to_the_web_client_the_page_approves_and_settings_revoke(
    browser: Browser, live_server: LiveServer
) -> None:
    source = axe_source()
    register_by_api(live_server, "ada")
    context = browser.new_context(base_url=live_server.url)
    offline = offline_context(context, live_server.url)
    page = offline.watch(context.new_page())
    log_in(page, "ada")

    app = mastodon_app(live_server, "Toot for Kith")
    page.goto(app.auth_request_url(scopes=SCOPES, redirect_uris=OOB, allow_http=True))
    expect(page.get_by_role("heading", name="Authorize Toot for Kith?")).to_be_visible()
    # The web client's session is found: no password asked.
    expect(page.get_by_text("Signed in as @ada.")).to_be_visible()
    expect(page.get_by_label("Password")).to_be_hidden()
    assert page.evaluate("() => document.documentElement.lang") == "en"
    assert axe_violations(page, source) == []
    page.get_by_role("button", name="Authorize").click()
    code = page.get_by_label("Code").input_value()
    assert axe_violations(page, source) == []

    app.log_in(code=code, scopes=SCOPES, allow_http=True)
    assert app.account_verify_credentials().username == "ada"

    # The web client still works (its cookie was rotated, not spent), and lists the app.
    page.goto("/settings")
    apps = page.get_by_role("region", name="Authorized apps")
    expect(apps.locator("li")).to_contain_text(["Toot for Kith"])
    apps.get_by_role("button", name="Revoke Toot for Kith").click()
    expect(apps.get_by_text("No apps.")).to_be_visible()
    with pytest.raises(MastodonUnauthorizedError):
        app.account_verify_credentials()
    assert offline.refused == []
    assert offline.errors == []
    context.close()
