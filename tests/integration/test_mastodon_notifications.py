"""Mastodon's notifications from Kith's (docs/mastodon.md#notifications)."""

from __future__ import annotations

from typing import Any

import httpx

from kith.mastodon.ids import from_mastodon_id, to_mastodon_id
from kith.runtime.resources import Resources
from tests import posting
from tests.helpers import API, Account, assert_mastodon_error


async def listed(
    client: httpx.AsyncClient, viewer: Account, path: str = "/api/v1/notifications", **query: Any
) -> tuple[list[dict[str, Any]], httpx.Response]:
    response = await client.get(path, params=query or None, headers=viewer.headers)
    assert response.status_code == 200, response.text
    return list(response.json()), response


async def test_kiths_four_kinds_as_mastodons(client: httpx.AsyncClient, resources: Resources) -> None:
    ada, bob, cyd = await posting.members(resources, "ada", "bob", "cyd")
    # bob asks ada, ada accepts: ada is told of the request, bob of the acceptance.
    asked = await client.post(f"{API}/friend-requests", json={"receiver_id": ada.id}, headers=bob.headers)
    assert asked.status_code == 201, asked.text
    accepted = await client.post(
        f"/api/v1/follow_requests/{to_mastodon_id(bob.id)}/authorize", headers=ada.headers
    )
    assert accepted.status_code == 200, accepted.text
    post = await posting.create_post(client, ada, content="mine")
    await client.post(f"{API}/posts/{post['id']}/like", headers=bob.headers)
    reply = await posting.comment(client, bob, post["id"], "nice")

    found, response = await listed(client, ada)
    assert [item["type"] for item in found] == ["mention", "favourite", "follow_request"]
    mention, favourite, request = found
    assert from_mastodon_id(mention["account"]["id"]) == bob.id
    assert from_mastodon_id(mention["status"]["id"]) == reply["id"]
    assert mention["status"]["in_reply_to_id"] == to_mastodon_id(post["id"])
    assert from_mastodon_id(favourite["status"]["id"]) == post["id"]
    assert request["status"] is None and request["created_at"].endswith("Z")
    of_bob, _ = await listed(client, bob)
    assert [item["type"] for item in of_bob] == ["follow"] and of_bob[0]["account"]["username"] == "ada"

    # types[] and exclude_types[]
    only, _ = await listed(client, ada, "/api/v1/notifications", **{"types[]": ["favourite", "mention"]})
    assert [item["type"] for item in only] == ["mention", "favourite"]
    without, _ = await listed(client, ada, **{"exclude_types[]": "mention"})
    assert [item["type"] for item in without] == ["favourite", "follow_request"]
    nothing, _ = await listed(client, ada, **{"types[]": "poll"})
    assert nothing == []

    # Paging by id, with Link.
    first, response = await listed(client, ada, limit=2)
    assert [item["id"] for item in first] == [mention["id"], favourite["id"]]
    following = response.headers["Link"].split(",")[0].split(";")[0].strip(" <>")
    rest, _ = await listed(client, ada, following.removeprefix("https://kith.example"))
    assert [item["id"] for item in rest] == [request["id"]]
    newer, _ = await listed(client, ada, min_id=request["id"], limit=1)
    assert [item["id"] for item in newer] == [favourite["id"]]

    one = await client.get(f"/api/v1/notifications/{favourite['id']}", headers=ada.headers)
    assert one.status_code == 200 and one.json() == favourite
    assert_mastodon_error(
        await client.get(f"/api/v1/notifications/{favourite['id']}", headers=cyd.headers), 404
    )

    # A comment deleted takes its notification with it; one out of reach is left out.
    await client.delete(f"{API}/comments/{reply['id']}", headers=bob.headers)
    after, _ = await listed(client, ada)
    assert [item["type"] for item in after] == ["favourite", "follow_request"]


async def test_dismiss_and_clear_delete_only_the_callers(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, bob, cyd = await posting.members(resources, "ada", "bob", "cyd")
    await posting.befriend(resources, ada, bob)
    for content in ("one", "two"):
        post = await posting.create_post(client, ada, content=content)
        await client.post(f"{API}/posts/{post['id']}/like", headers=bob.headers)
    found, _ = await listed(client, ada)
    assert len(found) == 2
    assert_mastodon_error(
        await client.post(f"/api/v1/notifications/{found[0]['id']}/dismiss", headers=cyd.headers), 404
    )
    dismissed = await client.post(f"/api/v1/notifications/{found[0]['id']}/dismiss", headers=ada.headers)
    assert dismissed.status_code == 200 and dismissed.json() == {}
    left, _ = await listed(client, ada)
    assert [item["id"] for item in left] == [found[1]["id"]]
    assert_mastodon_error(
        await client.post(f"/api/v1/notifications/{found[0]['id']}/dismiss", headers=ada.headers), 404
    )
    cleared = await client.post("/api/v1/notifications/clear", headers=ada.headers)
    assert cleared.status_code == 200
    assert (await listed(client, ada))[0] == []
    kith = await client.get(f"{API}/notifications", headers=ada.headers)
    assert kith.json()["items"] == []
