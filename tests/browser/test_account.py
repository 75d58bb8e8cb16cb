"""The rest of the journey of issue 16: profile and avatar, friend requests rejected and
cancelled, unfriending, blocking and unblocking, editing and deleting one's own posts and
comments, unliking, and the settings: sessions, API keys, password change, account deletion."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from playwright.sync_api import Browser, Dialog, Page, expect

from tests.browser.conftest import LiveServer, api_login, register_by_api
from tests.browser.pages import log_in, photo, write_post
from tests.helpers import API


def accept_dialogs(page: Page) -> None:
    def accept(dialog: Dialog) -> None:
        dialog.accept()

    page.on("dialog", accept)


def user_id(server: LiveServer, headers: dict[str, str]) -> str:
    with server.api() as http:
        found: str = http.get(f"{API}/users/me", headers=headers).json()["id"]
        return found


def test_profile_friend_requests_and_blocks(
    browser: Browser, live_server: LiveServer, tmp_path: Path
) -> None:
    ada, bob, cyd = (register_by_api(live_server, name) for name in ("ada", "bob", "cyd"))
    bob_auth, cyd_auth = api_login(live_server, bob), api_login(live_server, cyd)
    bob_id, cyd_id = user_id(live_server, bob_auth), user_id(live_server, cyd_auth)
    page = browser.new_context(base_url=live_server.url).new_page()
    accept_dialogs(page)
    log_in(page, "ada")

    # Display name, bio and a profile picture.
    page.get_by_role("link", name="Settings").click()
    page.get_by_label("Display name").fill("Ada Lovelace")
    page.get_by_label("Bio").fill("Counting engines.\nAnd poetry.")
    page.get_by_label("New profile picture").set_input_files(photo(tmp_path, "me.png"))
    page.get_by_role("button", name="Save profile").click()
    expect(page.locator(".notice")).to_contain_text(["Profile saved."])
    expect(page.locator(".avatar-row img.avatar")).to_have_js_property("complete", True)
    ada_id = user_id(live_server, api_login(live_server, ada))
    page.goto(f"/users/{ada_id}")
    expect(page.get_by_role("heading", name="Ada Lovelace")).to_be_visible()
    expect(page.locator(".bio")).to_have_text("Counting engines.\nAnd poetry.")
    expect(page.locator(".profile img.avatar")).to_be_visible()

    # A request sent, then cancelled.
    page.goto(f"/users/{bob_id}")
    page.get_by_role("button", name="Add friend").click()
    page.get_by_role("button", name="Cancel request").click()
    expect(page.get_by_role("button", name="Add friend")).to_be_visible()
    with live_server.api() as http:
        outgoing = http.get(f"{API}/friend-requests", params={"direction": "incoming"}, headers=bob_auth)
        assert outgoing.json()["items"] == []

    # Requests received: Cyd's rejected, Bob's accepted; then Bob unfriended.
    with live_server.api() as http:
        for auth in (cyd_auth, bob_auth):
            sent = http.post(f"{API}/friend-requests", json={"receiver_id": ada_id}, headers=auth)
            assert sent.status_code == 201, sent.text
    page.get_by_role("link", name=re.compile("^Friends")).click()
    page.get_by_role("button", name="Reject cyd").click()
    expect(page.get_by_role("button", name="Reject cyd")).to_have_count(0)
    page.goto(f"/users/{bob_id}")
    page.get_by_role("button", name="Accept").click()
    expect(page.get_by_text("Friends.")).to_be_visible()
    page.get_by_role("link", name=re.compile("^Friends")).click()
    expect(page.locator(".friend")).to_contain_text("bob")
    page.get_by_role("button", name="Unfriend bob").click()
    expect(page.locator(".friend")).to_have_count(0)
    with live_server.api() as http:
        assert http.get(f"{API}/users/{bob_id}", headers=bob_auth).json()["friend_count"] == 0

    # Block Cyd, find her in the settings, unblock her.
    page.goto(f"/users/{cyd_id}")
    page.get_by_role("button", name="Block").click()
    expect(page.get_by_role("heading", name="People")).to_be_visible()
    with live_server.api() as http:
        assert http.get(f"{API}/users/{ada_id}", headers=cyd_auth).status_code == 404
    page.get_by_role("link", name="Settings").click()
    page.get_by_role("button", name="Unblock cyd").click()
    expect(page.get_by_text("You have blocked nobody.")).to_be_visible()
    with live_server.api() as http:
        assert http.get(f"{API}/users/{ada_id}", headers=cyd_auth).status_code == 200


def test_own_posts_and_comments_are_edited_and_deleted(
    browser: Browser, live_server: LiveServer, tmp_path: Path
) -> None:
    register_by_api(live_server, "ada")
    page = browser.new_context(base_url=live_server.url).new_page()
    accept_dialogs(page)
    log_in(page, "ada")
    # Up to four images a post: five are refused beside the field, before any upload.
    images = [photo(tmp_path, f"{number}.png") for number in range(5)]
    page.get_by_label("What's on your mind?").fill("Too many")
    page.get_by_label("Images (optional)").set_input_files(images)
    page.get_by_role("button", name="Post", exact=True).click()
    expect(page.get_by_label("Images (optional)")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_text("Choose at most 4 images.")).to_be_visible()
    write_post(page, "Two pictures", *images[:2])
    expect(page.locator("article.post").first.locator(".media img")).to_have_count(2)
    page.locator("article.post").first.get_by_role("button", name="Delete").click()
    expect(page.locator("article.post")).to_have_count(0)
    write_post(page, "A first draft")
    post = page.locator("article.post").first
    post.get_by_role("button", name="Edit").click()
    post.get_by_label("Post text").fill("The final text")
    post.get_by_label("Who can see it").select_option("public")
    post.get_by_role("button", name="Save").click()
    expect(post.locator(".text")).to_have_text("The final text")
    page.reload()
    post = page.locator("article.post").first
    expect(post).to_contain_text("edited")
    expect(post).to_contain_text("Everyone on Kith")
    post.get_by_role("button", name="Like (0)").click()
    post.get_by_role("button", name="Unlike (1)").click()
    expect(post.get_by_role("button", name="Like (0)")).to_have_attribute("aria-pressed", "false")

    post.get_by_role("link", name="Comments (0)").click()
    page.get_by_label("Write a comment").fill("Frist")
    page.get_by_role("button", name="Comment", exact=True).click()
    comment = page.locator("article.comment")
    comment.get_by_role("button", name="Edit").click()
    comment.get_by_label("Comment text").fill("First!")
    comment.get_by_role("button", name="Save").click()
    expect(comment.locator(".text")).to_have_text("First!")
    page.reload()
    expect(page.locator("article.comment")).to_contain_text("edited")
    page.locator("article.comment").get_by_role("button", name="Delete").click()
    expect(page.locator("article.comment")).to_have_count(0)
    page.reload()
    expect(page.get_by_text("No comments yet.")).to_be_visible()
    page.locator("article.post").get_by_role("button", name="Delete").click()
    expect(page.get_by_role("heading", name="News feed")).to_be_visible()
    expect(page.get_by_text("Your feed is empty.")).to_be_visible()


def test_sessions_api_keys_password_and_account_deletion(browser: Browser, live_server: LiveServer) -> None:
    register_by_api(live_server, "ada")
    laptop = browser.new_context(base_url=live_server.url, user_agent="Laptop browser").new_page()
    phone = browser.new_context(base_url=live_server.url, user_agent="Phone browser").new_page()
    accept_dialogs(laptop)
    log_in(phone, "ada")
    log_in(laptop, "ada")

    # Two sessions; the phone's is logged out from the laptop.
    laptop.get_by_role("link", name="Settings").click()
    sessions = laptop.locator(".sessions li")
    expect(sessions).to_have_count(2)
    expect(sessions.filter(has_text="Laptop browser")).to_contain_text("this browser")
    sessions.filter(has_text="Phone browser").get_by_role("button", name="Log out this session").click()
    expect(sessions).to_have_count(1)
    # The phone's live stream is closed with its session: the page goes to the login by itself.
    expect(phone.get_by_role("heading", name="Log in to Kith")).to_be_visible()

    # An API key: shown once, works, listed by name, revoked.
    laptop.get_by_label("Key name").fill("backup script")
    laptop.get_by_label("Access").select_option("read")
    laptop.get_by_role("button", name="Create API key").click()
    key = laptop.get_by_label("New API key").input_value()
    assert key.startswith("kith_")
    expect(laptop.locator(".keys li")).to_contain_text("backup script")
    with httpx.Client(base_url=live_server.url) as http:
        assert http.get(f"{API}/users/me", headers={"X-API-Key": key}).status_code == 200
        laptop.get_by_role("button", name="Revoke backup script").click()
        expect(laptop.get_by_text("No API keys.")).to_be_visible()
        assert http.get(f"{API}/users/me", headers={"X-API-Key": key}).status_code == 401
    laptop.reload()
    expect(laptop.get_by_label("New API key")).to_have_count(0)

    # A new password, wrongly then rightly; it is the one that logs in afterwards.
    laptop.get_by_label("Current password").fill("not it at all")
    laptop.get_by_label("New password").fill("a second fine secret")
    laptop.get_by_role("button", name="Change password").click()
    expect(laptop.get_by_role("form", name="Change password").get_by_role("alert")).to_be_visible()
    laptop.get_by_label("Current password").fill("correct horse battery")
    laptop.get_by_role("button", name="Change password").click()
    expect(laptop.locator(".notice")).to_contain_text(["Password changed."])
    laptop.get_by_role("button", name="Log out", exact=True).click()
    log_in(laptop, "ada", "a second fine secret")

    # The account goes, for good.
    laptop.get_by_role("link", name="Settings").click()
    laptop.get_by_label("Your password").fill("a second fine secret")
    laptop.get_by_role("button", name="Delete my account").click()
    expect(laptop.get_by_role("heading", name="Create your Kith account")).to_be_visible()
    log_in(laptop, "ada", "a second fine secret", expect_feed=False)
    expect(laptop.get_by_role("alert")).to_have_text("The login or the password is wrong.")
