"""Notification rules through the API: which actions notify whom, and clean-up.

See docs/api.md#notifications-and-the-live-stream.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import websockets
from fastapi import FastAPI

from kith.runtime.resources import Resources
from tests.helpers import API, Account
from tests.live import serve
from tests.posting import befriend, member


async def notes(client: httpx.AsyncClient, account: Account, **params: Any) -> list[dict[str, Any]]:
    response = await client.get(f"{API}/notifications", params=params, headers=account.headers)
    assert response.status_code == 200
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def unread(client: httpx.AsyncClient, account: Account) -> int:
    count: int = (await client.get(f"{API}/notifications/unread-count", headers=account.headers)).json()[
        "count"
    ]
    return count


async def make_post(client: httpx.AsyncClient, author: Account) -> str:
    response = await client.post(
        f"{API}/posts", json={"content": "hello", "visibility": "public"}, headers=author.headers
    )
    assert response.status_code == 201
    post_id: str = response.json()["id"]
    return post_id


async def test_friend_request_accept_and_cancel(client: httpx.AsyncClient, resources: Resources) -> None:
    ann, ben = await member(resources, "ann"), await member(resources, "ben")
    sent = await client.post(f"{API}/friend-requests", json={"receiver_id": ben.id}, headers=ann.headers)
    request_id = sent.json()["id"]
    [note] = await notes(client, ben)
    assert note["type"] == "friend_request"
    assert note["actor"]["id"] == ann.id
    assert note["friend_request_id"] == request_id
    assert await notes(client, ann) == []
    await client.patch(f"{API}/friend-requests/{request_id}", json={"action": "accept"}, headers=ben.headers)
    [accepted] = await notes(client, ann)
    assert accepted["type"] == "friend_accepted"
    assert accepted["actor"]["id"] == ben.id
    # A cancelled request takes its notification with it.
    cid = await member(resources, "cid")
    pending = await client.post(f"{API}/friend-requests", json={"receiver_id": cid.id}, headers=ann.headers)
    assert len(await notes(client, cid)) == 1
    await client.delete(f"{API}/friend-requests/{pending.json()['id']}", headers=ann.headers)
    assert await notes(client, cid) == []


async def test_crossing_request_notifies_the_first_sender(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ann, ben = await member(resources, "ann"), await member(resources, "ben")
    await client.post(f"{API}/friend-requests", json={"receiver_id": ben.id}, headers=ann.headers)
    crossing = await client.post(f"{API}/friend-requests", json={"receiver_id": ann.id}, headers=ben.headers)
    assert crossing.status_code == 200
    assert [note["type"] for note in await notes(client, ann)] == ["friend_accepted"]


async def test_like_unlike_like_leaves_one_unread_notification(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    author, fan = await member(resources, "author"), await member(resources, "fan")
    post_id = await make_post(client, author)
    for method in ("POST", "DELETE", "POST", "DELETE", "POST"):
        await client.request(method, f"{API}/posts/{post_id}/like", headers=fan.headers)
    liked = await notes(client, author, unread_only=True)
    assert [(n["type"], n["actor"]["id"], n["post_id"]) for n in liked] == [("post_liked", fan.id, post_id)]
    assert await unread(client, author) == 1
    # Read, then liked again after an unlike: a new unread one, still only one unread.
    await client.post(f"{API}/notifications/read", json={"all": True}, headers=author.headers)
    await client.delete(f"{API}/posts/{post_id}/like", headers=fan.headers)
    await client.post(f"{API}/posts/{post_id}/like", headers=fan.headers)
    assert await unread(client, author) == 1


async def test_no_notification_for_acting_on_ones_own_content(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    author = await member(resources, "author")
    post_id = await make_post(client, author)
    await client.post(f"{API}/posts/{post_id}/like", headers=author.headers)
    await client.post(f"{API}/posts/{post_id}/comments", json={"content": "me"}, headers=author.headers)
    assert await notes(client, author) == []


async def test_comment_notifies_and_deletions_clean_up(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    author, fan = await member(resources, "author"), await member(resources, "fan")
    post_id = await make_post(client, author)
    comment = await client.post(
        f"{API}/posts/{post_id}/comments", json={"content": "nice"}, headers=fan.headers
    )
    comment_id = comment.json()["id"]
    [note] = await notes(client, author)
    assert (note["type"], note["post_id"], note["comment_id"]) == ("post_commented", post_id, comment_id)
    await client.delete(f"{API}/comments/{comment_id}", headers=fan.headers)
    assert await notes(client, author) == []
    await client.post(f"{API}/posts/{post_id}/like", headers=fan.headers)
    await client.post(f"{API}/posts/{post_id}/comments", json={"content": "again"}, headers=fan.headers)
    assert len(await notes(client, author)) == 2
    await client.delete(f"{API}/posts/{post_id}", headers=author.headers)
    assert await notes(client, author) == []
    assert await unread(client, author) == 0


async def test_a_block_hides_what_either_did_before_from_the_others_notifications(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, bob, cat = (
        await member(resources, "ada"),
        await member(resources, "bob"),
        await member(resources, "cat"),
    )
    post = await make_post(client, ada)
    for fan in (bob, cat):
        await client.post(f"{API}/posts/{post}/like", headers=fan.headers)
        await client.post(f"{API}/posts/{post}/comments", json={"content": "hi"}, headers=fan.headers)
    assert {note["actor"]["id"] for note in await notes(client, ada)} == {bob.id, cat.id}
    assert await unread(client, ada) == 4
    # Ada blocks Bob: his earlier actions leave her list and her count; Cat's stay.
    assert (
        await client.post(f"{API}/blocks", json={"user_id": bob.id}, headers=ada.headers)
    ).status_code == 201
    assert {note["actor"]["id"] for note in await notes(client, ada)} == {cat.id}
    assert {note["actor"]["id"] for note in await notes(client, ada, unread_only="true")} == {cat.id}
    assert await unread(client, ada) == 2
    # The other way too: Cat blocks Ada, and Ada no longer sees Cat in hers.
    assert (
        await client.post(f"{API}/blocks", json={"user_id": ada.id}, headers=cat.headers)
    ).status_code == 201
    assert await notes(client, ada) == []
    assert await unread(client, ada) == 0
    # Lifting Ada's block brings Bob's back: nothing was deleted, only hidden.
    assert (await client.delete(f"{API}/blocks/{bob.id}", headers=ada.headers)).status_code == 204
    assert {note["actor"]["id"] for note in await notes(client, ada)} == {bob.id}


async def test_like_over_http_reaches_the_stream_within_a_second(app: FastAPI, resources: Resources) -> None:
    author, fan = await member(resources, "author"), await member(resources, "fan")
    await befriend(resources, author, fan)
    async with serve(app) as base, httpx.AsyncClient(base_url=base) as http:
        post_id = await make_post(http, author)
        url = base.replace("http://", "ws://") + f"{API}/stream"
        async with websockets.connect(url, additional_headers=author.headers) as ws:
            assert json.loads(await ws.recv())["event"] == "unread_count"
            started = time.perf_counter()
            assert (await http.post(f"{API}/posts/{post_id}/like", headers=fan.headers)).status_code == 201
            event = json.loads(await asyncio.wait_for(ws.recv(), 1.0))
            assert time.perf_counter() - started < 1.0
    assert event["event"] == "notification"
    assert event["data"]["type"] == "post_liked"
    assert event["data"]["post_id"] == post_id
    assert event["data"]["actor"]["id"] == fan.id
