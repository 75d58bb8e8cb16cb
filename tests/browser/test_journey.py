"""The whole journey of issue 16, by two people in two browsers: sign up and confirm the
address from the mail's link, befriend, post with an image, see it in the friend's feed,
like, comment, get the notifications live, page through 45 posts, log out, reset a password."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Browser, expect

from tests.browser.conftest import LiveServer, Person, api_login
from tests.browser.pages import log_in, mail_link, photo, sign_up, stream_is_live, write_post
from tests.conftest import Mailbox
from tests.helpers import API


def test_two_friends_from_sign_up_to_password_reset(
    browser: Browser, live_server: LiveServer, mailbox: Mailbox, tmp_path: Path
) -> None:
    ada_context = browser.new_context(base_url=live_server.url)
    bob_context = browser.new_context(base_url=live_server.url)
    ada, bob = ada_context.new_page(), bob_context.new_page()

    # Sign up, and confirm the address with the link in the e-mail: it opens the client.
    sign_up(ada, "ada")
    link = mail_link(mailbox, "ada@example.com", "Confirm your e-mail address")
    assert link.startswith(f"{live_server.url}/verify-email?token=")
    ada.goto(link)
    expect(ada.get_by_text("Thank you: your e-mail address is confirmed.")).to_be_visible()
    assert "token" not in ada.url, "the token leaves the address bar"
    ada.get_by_role("link", name="Settings").click()
    expect(ada.get_by_text("(ada@example.com, confirmed)")).to_be_visible()

    sign_up(bob, "bob")
    stream_is_live(bob)

    # Ada finds Bob and asks him to be friends; Bob hears of it live.
    ada.get_by_role("link", name="People").click()
    ada.get_by_label("Find people by username or name").fill("bo")
    ada.get_by_role("button", name="Search").click()
    ada.get_by_role("link", name=re.compile(r"bob @bob")).click()
    expect(ada.get_by_role("heading", name="bob")).to_be_visible()
    ada.get_by_role("button", name="Add friend").click()
    expect(ada.get_by_role("button", name="Cancel request")).to_be_visible()
    expect(bob.locator("#unread-badge")).to_have_text("1")
    expect(bob.locator(".notice")).to_contain_text(["ada sent you a friend request."])

    bob.get_by_role("link", name=re.compile("^Friends")).click()
    bob.get_by_role("button", name="Accept ada").click()
    expect(bob.locator(".friend")).to_contain_text("ada")

    # Ada posts a picture for her friends; it is in Bob's feed, image and all.
    stream_is_live(ada)
    ada.get_by_role("link", name="Feed").click()
    write_post(ada, "Our first picnic", photo(tmp_path))
    bob.get_by_role("link", name="Feed").click()
    post = bob.locator("article.post").filter(has_text="Our first picnic")
    expect(post).to_be_visible()
    image = post.locator(".media img")
    expect(image).to_be_visible()
    expect(image).to_have_js_property("naturalWidth", 320)

    # Bob likes it and comments; Ada's unread count follows live.
    expect(ada.locator("#unread-badge")).to_have_text("1")  # Bob accepted
    post.get_by_role("button", name="Like (0)").click()
    expect(post.get_by_role("button", name="Unlike (1)")).to_have_attribute("aria-pressed", "true")
    expect(ada.locator("#unread-badge")).to_have_text("2")
    post.get_by_role("link", name="Comments (0)").click()
    bob.get_by_label("Write a comment").fill("Lovely! <b>not bold</b>")
    bob.get_by_role("button", name="Comment", exact=True).click()
    expect(bob.locator("article.comment .text")).to_have_text("Lovely! <b>not bold</b>")
    expect(ada.locator("#unread-badge")).to_have_text("3")

    # On her notifications page a new one arrives live; then she marks them all read.
    ada.get_by_role("link", name=re.compile("^Notifications")).click()
    expect(ada.locator("li.notification")).to_have_count(3)
    expect(ada.locator("li.notification.unread")).to_have_count(3)
    bob.get_by_label("Write a comment").fill("And the cake!")
    bob.get_by_role("button", name="Comment", exact=True).click()
    expect(ada.locator("li.notification")).to_have_count(4)
    expect(ada.locator("li.notification").first).to_contain_text("bob commented on your post.")
    expect(ada.locator("#unread-badge")).to_have_text("4")
    # Opening one marks it read; "mark all read" does the rest.
    ada.locator("li.notification").first.get_by_role("link").click()
    expect(ada.locator("article.comment")).to_have_count(2)
    expect(ada.locator("#unread-badge")).to_have_text("3")
    ada.go_back()
    expect(ada.locator("li.notification.unread")).to_have_count(3)
    ada.get_by_role("button", name="Mark all read").click()
    expect(ada.locator("#unread-badge")).to_be_hidden()
    expect(ada.locator("li.notification.unread")).to_have_count(0)
    ada.reload()
    expect(ada.locator("li.notification")).to_have_count(4)
    expect(ada.locator("li.notification.unread")).to_have_count(0)

    # 45 more posts: Bob's feed loads them page by page as he scrolls, newest first.
    headers = api_login(live_server, Person("ada", "ada@example.com"))
    with live_server.api() as http:
        for number in range(45):
            response = http.post(f"{API}/posts", json={"content": f"Post number {number}"}, headers=headers)
            assert response.status_code == 201, response.text
    bob.goto("/")
    posts = bob.locator("article.post")
    expect(posts.first).to_contain_text("Post number 44")
    assert posts.count() < 46, "the first page is not everything"
    for _ in range(20):
        if posts.count() == 46:
            break
        bob.mouse.wheel(0, 20000)
        bob.wait_for_timeout(150)
    expect(posts).to_have_count(46)
    texts = bob.locator("article.post .text").all_inner_texts()
    assert texts == [f"Post number {number}" for number in range(44, -1, -1)] + ["Our first picnic"]
    expect(bob.locator(".list-status .loading")).to_have_count(0)

    # Bob logs out: the cookie is gone, a reload stays logged out.
    bob.get_by_role("button", name="Log out").click()
    expect(bob.get_by_role("heading", name="Log in to Kith")).to_be_visible()
    assert not [cookie for cookie in bob_context.cookies() if cookie["name"] == "kith_refresh"]
    bob.goto("/settings")
    expect(bob.get_by_role("heading", name="Log in to Kith")).to_be_visible()
    assert "/login?next=%2Fsettings" in bob.url

    # He forgot his password: the reset mail's link opens the client, which sets a new one.
    bob.get_by_role("link", name="Forgot your password?").click()
    bob.get_by_label("E-mail").fill("bob@example.com")
    bob.get_by_role("button", name="Send the link").click()
    expect(bob.get_by_text("If an account has this address")).to_be_visible()
    link = mail_link(mailbox, "bob@example.com", "Reset your Kith password")
    assert link.startswith(f"{live_server.url}/reset-password?token=")
    bob.goto(link)
    bob.get_by_label("New password").fill("a brand new secret 42")
    bob.get_by_role("button", name="Set the password").click()
    expect(bob.get_by_role("heading", name="Log in to Kith")).to_be_visible()
    log_in(bob, "bob", "a brand new secret 42")
    expect(bob.locator("article.post").first).to_contain_text("Post number 44")

    ada_context.close()
    bob_context.close()
