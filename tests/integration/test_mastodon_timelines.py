"""Mastodon's timelines from Kith's feed and posts (docs/mastodon.md#timelines)."""

from __future__ import annotations

from typing import Any

import httpx

from kith.mastodon.ids import from_mastodon_id, to_mastodon_id
from kith.runtime.resources import Resources
from tests import posting
from tests.helpers import Account, assert_mastodon_error


async def timeline(
    client: httpx.AsyncClient, viewer: Account, path: str, **query: Any
) -> tuple[list[str], httpx.Response]:
    # (An empty `params` would replace the query of a `Link` address.)
    response = await client.get(path, params=query or None, headers=viewer.headers)
    assert response.status_code == 200, response.text
    return [from_mastodon_id(item["id"]) or "" for item in response.json()], response


def link(response: httpx.Response, rel: str) -> str:
    for part in response.headers["Link"].split(","):
        url, kind = part.split(";")
        if kind.strip() == f'rel="{rel}"':
            return url.strip().strip("<>").removeprefix("https://kith.example")
    raise AssertionError(f"no {rel} link")


async def test_home_is_kiths_feed_paged_by_mastodons_ids(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, bob, cyd, eve = await posting.members(resources, "ada", "bob", "cyd", "eve")
    await posting.befriend(resources, ada, bob)
    await posting.befriend(resources, ada, cyd)
    mine = [
        (await posting.create_post(client, author, content=f"p{n}"))["id"]
        for n, author in enumerate([ada, bob, cyd] * 3)
    ]
    await posting.create_post(client, bob, content="only bob", visibility="private")
    await posting.create_post(client, eve, content="a stranger", visibility="public")
    expected = mine[::-1]

    first, response = await timeline(client, ada, "/api/v1/timelines/home", limit=4)
    assert first == expected[:4]
    statuses = response.json()
    assert statuses[0]["account"]["username"] == "cyd" and statuses[0]["visibility"] == "private"
    # Following `next` until an empty page: every status once, newest first.
    seen = list(first)
    while True:
        page, response = await timeline(client, ada, link(response, "next"))
        if not page:
            assert "Link" not in response.headers
            break
        seen += page
    assert seen == expected

    # since_id: the newest statuses after it; min_id: those right after it.
    anchor = to_mastodon_id(expected[6])
    since, _ = await timeline(client, ada, "/api/v1/timelines/home", since_id=anchor, limit=2)
    assert since == expected[:2]
    after, response = await timeline(client, ada, "/api/v1/timelines/home", min_id=anchor, limit=2)
    assert after == expected[4:6]
    newer, _ = await timeline(client, ada, link(response, "prev"))
    assert newer == expected[2:4]
    bounded, _ = await timeline(
        client, ada, "/api/v1/timelines/home", max_id=to_mastodon_id(expected[1]), since_id=anchor
    )
    assert bounded == expected[2:6]
    assert_mastodon_error(await client.get("/api/v1/timelines/home?max_id=abc", headers=ada.headers), 422)

    # A block takes the blocked friend's posts out, as in Kith's feed.
    await posting.block(resources, ada, cyd)
    after_block, _ = await timeline(client, ada, "/api/v1/timelines/home", limit=40)
    assert after_block == [post for post in expected if post not in mine[2::3]]


async def test_public_timeline_and_an_accounts_statuses(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, bob, eve = await posting.members(resources, "ada", "bob", "eve")
    await posting.befriend(resources, ada, bob)
    public = (await posting.create_post(client, eve, content="to all", visibility="public"))["id"]
    friends = (await posting.create_post(client, bob, content="to friends", visibility="friends"))["id"]
    bobs_public = (await posting.create_post(client, bob, content="bob to all", visibility="public"))["id"]

    found, _ = await timeline(client, ada, "/api/v1/timelines/public")
    assert found[:2] == [bobs_public, public] and friends not in found

    of_bob, _ = await timeline(client, ada, f"/api/v1/accounts/{to_mastodon_id(bob.id)}/statuses")
    assert of_bob == [bobs_public, friends]
    of_bob_to_eve, _ = await timeline(client, eve, f"/api/v1/accounts/{to_mastodon_id(bob.id)}/statuses")
    assert of_bob_to_eve == [bobs_public]
    pinned, _ = await timeline(
        client, ada, f"/api/v1/accounts/{to_mastodon_id(bob.id)}/statuses", pinned="true"
    )
    assert pinned == []
    await posting.block(resources, eve, bob)
    hidden = await client.get(f"/api/v1/accounts/{to_mastodon_id(bob.id)}/statuses", headers=eve.headers)
    assert_mastodon_error(hidden, 404)
    assert_mastodon_error(await client.get("/api/v1/accounts/x1/statuses", headers=eve.headers), 404)
    mine, _ = await timeline(client, eve, "/api/v1/timelines/public")
    assert bobs_public not in mine and public in mine
