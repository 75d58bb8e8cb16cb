"""Mastodon's accounts from Kith's users (docs/mastodon.md#accounts)."""

from __future__ import annotations

import re

import httpx

from kith.mastodon.ids import from_mastodon_id
from kith.runtime.resources import Resources
from tests import posting
from tests.helpers import API, assert_mastodon_error
from tests.integration.test_mastodon_oauth import bearer, register_app, user_token

DATETIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


async def test_verify_credentials_is_the_users_own_account(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, bob, cyd = await posting.members(resources, "ada", "bob", "cyd")
    await posting.befriend(resources, ada, bob)
    await posting.create_post(client, ada, content="one")
    await posting.create_post(client, ada, content="two", visibility="private")
    await client.patch(f"{API}/users/me", json={"bio": "Hi <there>\nsecond line"}, headers=ada.headers)
    await client.post(f"{API}/friend-requests", json={"receiver_id": ada.id}, headers=cyd.headers)
    response = await client.get("/api/v1/accounts/verify_credentials", headers=ada.headers)
    assert response.status_code == 200, response.text
    account = response.json()
    assert from_mastodon_id(account["id"]) == ada.id
    assert account["username"] == account["acct"] == "ada"
    assert account["display_name"] == "Ada"
    assert account["locked"] is True and account["bot"] is False
    assert account["note"] == "<p>Hi &lt;there&gt;<br>second line</p>"
    assert account["followers_count"] == account["following_count"] == 1
    assert account["statuses_count"] == 2
    assert DATETIME.fullmatch(account["created_at"]) and account["created_at"].endswith("T00:00:00.000Z")
    assert account["url"] == f"https://kith.example/users/{ada.id}"
    assert account["avatar"].startswith("https://kith.example/")
    assert account["emojis"] == [] and account["fields"] == []
    assert account["source"] == {
        "privacy": "private",
        "sensitive": False,
        "language": None,
        "note": "Hi <there>\nsecond line",
        "fields": [],
        "follow_requests_count": 1,
    }


async def test_verify_credentials_takes_read_accounts_or_profile(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    await posting.member(resources, "ada")
    app = await register_app(client, scopes="read write profile")
    for scope, status in (("profile", 200), ("read:accounts", 200), ("read", 200), ("write", 403)):
        token = await user_token(client, app, scope=scope)
        response = await client.get("/api/v1/accounts/verify_credentials", headers=bearer(token))
        assert response.status_code == status, (scope, response.text)
    assert_mastodon_error(await client.get("/api/v1/accounts/verify_credentials"), 401, "not_authenticated")
