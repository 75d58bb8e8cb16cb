"""Moderators and admins in the web client: the reports queue, removing reported content,
suspending an account, the audit log."""

from __future__ import annotations

import re
import sqlite3

from playwright.sync_api import Browser, expect

from tests.browser.conftest import LiveServer, api_login, register_by_api
from tests.browser.pages import log_in, write_post
from tests.browser.test_account import accept_dialogs
from tests.helpers import API


def test_reports_removal_suspension_and_audit_log(browser: Browser, live_server: LiveServer) -> None:
    ada = register_by_api(live_server, "ada")
    register_by_api(live_server, "bob")
    register_by_api(live_server, "cyd")
    database = live_server.settings.database_url.removeprefix("sqlite+aiosqlite:///")
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE users SET role = 'admin' WHERE username = 'ada'")
    bob = browser.new_context(base_url=live_server.url).new_page()
    cyd = browser.new_context(base_url=live_server.url).new_page()
    admin = browser.new_context(base_url=live_server.url).new_page()
    accept_dialogs(admin)
    log_in(bob, "bob")
    write_post(bob, "Buy cheap watches at example dot com", visibility="public")
    log_in(cyd, "cyd")

    # Cyd sees the public post on Bob's profile and reports it.
    cyd.get_by_role("link", name="People").click()
    cyd.get_by_role("link", name=re.compile("bob @bob")).click()
    post = cyd.locator("article.post").filter(has_text="cheap watches")
    post.get_by_role("button", name="Report").click()
    cyd.get_by_label("Why are you reporting this?").fill("Spam")
    cyd.get_by_role("button", name="Send report").click()
    expect(cyd.locator(".notice")).to_contain_text(["Thank you: the moderators will look at it."])

    # The admin finds it in the queue and removes the post.
    log_in(admin, "ada")
    admin.get_by_role("link", name="Reports").click()
    report = admin.locator(".report")
    expect(report).to_contain_text("Spam")
    expect(report).to_contain_text("cheap watches")
    report.get_by_role("button", name="Remove the content").click()
    expect(admin.get_by_text("No open reports.")).to_be_visible()
    cyd.reload()
    expect(cyd.locator("article.post")).to_have_count(0)

    # Bob is suspended: his open session ends at once, and his page goes to the login.
    admin.get_by_role("link", name="Admin").click()
    admin.get_by_role("button", name="Suspend bob").click()
    expect(admin.get_by_role("button", name="Lift suspension of bob")).to_be_visible()
    expect(bob.get_by_role("heading", name="Log in to Kith")).to_be_visible()
    log_in(bob, "bob", expect_feed=False)
    expect(bob.get_by_role("alert")).to_contain_text("suspended")

    # Both actions are in the audit log.
    admin.reload()
    with live_server.api() as http:
        entries = http.get(f"{API}/admin/audit-log", headers=api_login(live_server, ada)).json()["items"]
    actions = [entry["action"] for entry in entries]
    assert actions[0] == "user.suspended" and len(actions) >= 2, actions
    log = admin.locator("section[aria-labelledby=audit-heading] li")
    expect(log).to_have_count(len(actions))
    expect(log.first).to_contain_text("ada user suspended")
    for entry, shown in zip(entries, log.all_inner_texts(), strict=True):
        assert entry["action"].replace(".", " ").replace("_", " ") in shown
