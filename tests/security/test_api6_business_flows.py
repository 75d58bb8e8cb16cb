"""OWASP API6:2023 Unrestricted Access to Sensitive Business Flows.

The flows worth automating against a social network: spamming friend requests, inflating
likes (and the notifications they send), and flooding moderators with reports. Each has
a limit of its own besides the rate limits (tests/integration/test_rate_limits.py checks
every rate limit, and test_default_limits_are_the_contracts their defaults: 50 friend
requests a day, 30 posts and 60 comments a minute, 5 registrations an hour per address).
"""

from __future__ import annotations

import asyncio

import httpx

from kith.db.models import FriendRequest, FriendRequestStatus, Role
from kith.db.models.social import pair_key
from kith.runtime.resources import Resources
from kith.runtime.transaction import unit_of_work
from tests.helpers import API, assert_problem
from tests.posting import block, counted_rows, create_post, member


async def test_friend_request_spam_meets_the_pending_cap(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    spammer = await member(resources, "spammer")
    targets = [await member(resources, f"target{i}") for i in range(101)]
    # 100 requests waiting for an answer, as if sent over a few days (the daily rate limit
    # would stop one day's worth at 50).
    async with unit_of_work(resources) as session:
        for target in targets[:100]:
            session.add(
                FriendRequest(
                    sender_id=spammer.id,
                    receiver_id=target.id,
                    status=FriendRequestStatus.pending,
                    pending_pair=pair_key(spammer.id, target.id),
                )
            )
    response = await client.post(
        f"{API}/friend-requests", json={"receiver_id": targets[100].id}, headers=spammer.headers
    )
    assert_problem(response, 429, "too_many_pending_requests")
    # Answered or withdrawn requests free the slots again.
    pending = await client.get(
        f"{API}/friend-requests", params={"direction": "outgoing", "limit": 1}, headers=spammer.headers
    )
    first = pending.json()["items"][0]["id"]
    assert (await client.delete(f"{API}/friend-requests/{first}", headers=spammer.headers)).status_code == 204
    again = await client.post(
        f"{API}/friend-requests", json={"receiver_id": targets[100].id}, headers=spammer.headers
    )
    assert again.status_code == 201


async def test_a_declined_or_blocked_request_cannot_be_repeated(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    pest, ada, bob = (
        await member(resources, "pest"),
        await member(resources, "ada"),
        await member(resources, "bob"),
    )
    sent = await client.post(f"{API}/friend-requests", json={"receiver_id": ada.id}, headers=pest.headers)
    await client.patch(
        f"{API}/friend-requests/{sent.json()['id']}", json={"action": "reject"}, headers=ada.headers
    )
    for _ in range(3):
        again = await client.post(
            f"{API}/friend-requests", json={"receiver_id": ada.id}, headers=pest.headers
        )
        assert_problem(again, 400, "request_rejected_recently")
    resources.clock.advance(hours=24, seconds=1)
    assert (
        await client.post(f"{API}/friend-requests", json={"receiver_id": ada.id}, headers=pest.headers)
    ).status_code == 201
    await block(resources, bob, pest)
    blocked = await client.post(f"{API}/friend-requests", json={"receiver_id": bob.id}, headers=pest.headers)
    assert_problem(blocked, 404, "user_not_found")


async def test_likes_cannot_be_inflated_nor_used_to_spam_notifications(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, fan = await member(resources, "ada"), await member(resources, "fan")
    post = await create_post(client, ada, content="like me", visibility="public")
    like = f"{API}/posts/{post['id']}/like"
    statuses = [
        response.status_code
        for response in await asyncio.gather(*(client.post(like, headers=fan.headers) for _ in range(20)))
    ]
    assert statuses.count(201) == 1 and statuses.count(200) == 19
    for _ in range(10):
        await client.delete(like, headers=fan.headers)
        await client.post(like, headers=fan.headers)
    like_count, like_rows, _, _ = await counted_rows(resources, post["id"])
    assert (like_count, like_rows) == (1, 1)
    notifications = (await client.get(f"{API}/notifications", headers=ada.headers)).json()["items"]
    assert [item["type"] for item in notifications] == ["post_liked"]
    assert (await client.get(f"{API}/notifications/unread-count", headers=ada.headers)).json() == {"count": 1}


async def test_report_floods_are_one_report_per_reporter_and_one_decision(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    target = await member(resources, "target")
    moderator = await member(resources, "mod", Role.moderator)
    post = await create_post(client, target, content="disputed", visibility="public")
    body = {"target_type": "post", "target_id": post["id"], "reason": "spam"}
    reporters = [await member(resources, f"reporter{i}") for i in range(5)]
    first = await client.post(f"{API}/reports", json=body, headers=reporters[0].headers)
    assert first.status_code == 201
    for _ in range(3):
        assert_problem(
            await client.post(f"{API}/reports", json=body, headers=reporters[0].headers),
            409,
            "already_reported",
        )
    for reporter in reporters[1:]:
        assert (await client.post(f"{API}/reports", json=body, headers=reporter.headers)).status_code == 201
    queue = await client.get(f"{API}/moderation/reports", headers=moderator.headers)
    assert len(queue.json()["items"]) == 5
    decision = await client.patch(
        f"{API}/moderation/reports/{first.json()['id']}",
        json={"action": "remove_content"},
        headers=moderator.headers,
    )
    assert decision.status_code == 200
    # One decision settles every open report on the target.
    assert (await client.get(f"{API}/moderation/reports", headers=moderator.headers)).json()["items"] == []
