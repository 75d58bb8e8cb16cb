"""Friends and blocks (docs/api.md#friends-and-blocks) and the social parts of docs/api.md#users
through the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest

from kith.auth import service as auth
from kith.core.pagination import encode_cursor
from kith.db.models import Post, Role, Visibility
from kith.runtime.resources import Resources
from kith.runtime.transaction import unit_of_work
from tests import posting
from tests.helpers import API, PASSWORD, Account, assert_problem, field_errors, signup, staff

SUMMARY_FIELDS = {"id", "username", "display_name", "avatar_url"}
REQUEST_FIELDS = {"id", "sender", "receiver", "status", "created_at"}
UNKNOWN_ID = "01890a5d-ac96-774b-bcce-b302099a8057"


# --- helpers ------------------------------------------------------------------------


async def send(client: httpx.AsyncClient, sender: Account, receiver_id: str) -> httpx.Response:
    return await client.post(
        f"{API}/friend-requests", json={"receiver_id": receiver_id}, headers=sender.headers
    )


async def sent(client: httpx.AsyncClient, sender: Account, receiver: Account) -> dict[str, Any]:
    response = await send(client, sender, receiver.id)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def answer(client: httpx.AsyncClient, account: Account, request_id: str, action: str) -> httpx.Response:
    return await client.patch(
        f"{API}/friend-requests/{request_id}", json={"action": action}, headers=account.headers
    )


async def cancel(client: httpx.AsyncClient, account: Account, request_id: str) -> httpx.Response:
    return await client.delete(f"{API}/friend-requests/{request_id}", headers=account.headers)


async def befriend(client: httpx.AsyncClient, first: Account, second: Account) -> None:
    request = await sent(client, first, second)
    response = await answer(client, second, request["id"], "accept")
    assert response.status_code == 200, response.text


async def requests(client: httpx.AsyncClient, account: Account, **params: str | int) -> dict[str, Any]:
    response = await client.get(f"{API}/friend-requests", params=params, headers=account.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def request_ids(client: httpx.AsyncClient, account: Account, **params: str | int) -> list[str]:
    return [item["id"] for item in (await requests(client, account, **params))["items"]]


async def friends_page(
    client: httpx.AsyncClient, viewer: Account, user_id: str, **params: str | int
) -> httpx.Response:
    return await client.get(f"{API}/users/{user_id}/friends", params=params, headers=viewer.headers)


async def friend_ids(client: httpx.AsyncClient, viewer: Account, user_id: str) -> list[str]:
    response = await friends_page(client, viewer, user_id, limit=100)
    assert response.status_code == 200, response.text
    return [friend["id"] for friend in response.json()["items"]]


async def profile(client: httpx.AsyncClient, viewer: Account, user_id: str) -> dict[str, Any]:
    response = await client.get(f"{API}/users/{user_id}", headers=viewer.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def block(client: httpx.AsyncClient, blocker: Account, user_id: str) -> httpx.Response:
    return await client.post(f"{API}/blocks", json={"user_id": user_id}, headers=blocker.headers)


async def unblock(client: httpx.AsyncClient, blocker: Account, user_id: str) -> httpx.Response:
    return await client.delete(f"{API}/blocks/{user_id}", headers=blocker.headers)


async def search_names(client: httpx.AsyncClient, viewer: Account, q: str) -> list[str]:
    response = await client.get(f"{API}/users", params={"q": q}, headers=viewer.headers)
    assert response.status_code == 200, response.text
    return [item["username"] for item in response.json()["items"]]


async def suspend(client: httpx.AsyncClient, admin: Account, user_id: str, suspended: bool = True) -> None:
    response = await client.patch(
        f"{API}/admin/users/{user_id}", json={"suspended": suspended}, headers=admin.headers
    )
    assert response.status_code == 200, response.text


def summary(account: Account) -> dict[str, Any]:
    return {
        "id": account.id,
        "username": account.username,
        "display_name": account.username,
        "avatar_url": None,
    }


def comparable(problem: httpx.Response) -> dict[str, Any]:
    """A problem body without its request id, to compare two answers."""
    body: dict[str, Any] = problem.json()
    body.pop("request_id")
    return body


# --- POST /friend-requests ----------------------------------------------------------


async def test_send_request(client: httpx.AsyncClient) -> None:
    ada = await signup(client, "ada")
    bob = await signup(client, "bob")
    response = await send(client, ada, bob.id)
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == REQUEST_FIELDS
    assert body["sender"] == summary(ada)
    assert body["receiver"] == summary(bob)
    assert body["status"] == "pending"
    assert body["created_at"].endswith("Z")
    assert response.headers["location"] == f"https://kith.example{API}/friend-requests/{body['id']}"
    # Both ends can read it at its Location; nobody else can.
    for account in (ada, bob):
        fetched = await client.get(f"{API}/friend-requests/{body['id']}", headers=account.headers)
        assert fetched.status_code == 200
        assert fetched.json() == body
    eve = await signup(client, "eve")
    response = await client.get(f"{API}/friend-requests/{body['id']}", headers=eve.headers)
    assert_problem(response, 404, "friend_request_not_found")
    assert (await profile(client, ada, bob.id))["relationship"] == "request_sent"
    assert (await profile(client, bob, ada.id))["relationship"] == "request_received"


async def test_reverse_request_accepts_the_pending_one(client: httpx.AsyncClient) -> None:
    ada = await signup(client, "ada")
    bob = await signup(client, "bob")
    first = await sent(client, ada, bob)
    response = await send(client, bob, ada.id)
    assert response.status_code == 200, response.text
    assert "location" not in response.headers
    body = response.json()
    # The answer is Ada's request, now accepted: Bob did not make a second one.
    assert body == {**first, "status": "accepted"}
    assert await friend_ids(client, ada, ada.id) == [bob.id]
    assert await friend_ids(client, bob, bob.id) == [ada.id]
    for account in (ada, bob):
        for direction in ("incoming", "outgoing"):
            assert await request_ids(client, account, direction=direction) == []
    assert await request_ids(client, bob, status="accepted") == [first["id"]]
    assert await request_ids(client, ada, direction="outgoing", status="accepted") == [first["id"]]
    assert (await profile(client, ada, bob.id))["relationship"] == "friends"
    assert (await profile(client, bob, ada.id))["relationship"] == "friends"


async def test_cannot_befriend_self(client: httpx.AsyncClient) -> None:
    ada = await signup(client, "ada")
    assert_problem(await send(client, ada, ada.id), 400, "cannot_befriend_self")
    assert await request_ids(client, ada, direction="outgoing") == []


async def test_unknown_receiver_is_404(client: httpx.AsyncClient) -> None:
    ada = await signup(client, "ada")
    for receiver_id in (UNKNOWN_ID, "not-an-id"):
        assert_problem(await send(client, ada, receiver_id), 404, "user_not_found")


async def test_request_body_is_validated(client: httpx.AsyncClient) -> None:
    ada = await signup(client, "ada")
    bob = await signup(client, "bob")
    for body, field in (
        ({}, "body.receiver_id"),
        ({"receiver_id": ""}, "body.receiver_id"),
        ({"receiver_id": bob.id, "status": "accepted"}, "body.status"),
    ):
        response = await client.post(f"{API}/friend-requests", json=body, headers=ada.headers)
        assert_problem(response, 422, "validation_error")
        assert field_errors(response) == {field}


async def test_suspended_receiver_is_404_even_for_staff(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    admin = await staff(client, resources, "boss", Role.admin)
    moderator = await staff(client, resources, "mod", Role.moderator)
    ada = await signup(client, "ada")
    bob = await signup(client, "bob")
    await suspend(client, admin, bob.id)
    assert_problem(await send(client, ada, bob.id), 404, "user_not_found")
    assert_problem(await send(client, moderator, bob.id), 404, "user_not_found")


async def test_already_friends_is_409(client: httpx.AsyncClient) -> None:
    ada = await signup(client, "ada")
    bob = await signup(client, "bob")
    await befriend(client, ada, bob)
    assert_problem(await send(client, ada, bob.id), 409, "already_friends")
    assert_problem(await send(client, bob, ada.id), 409, "already_friends")


async def test_second_request_while_pending_is_409(client: httpx.AsyncClient) -> None:
    ada = await signup(client, "ada")
    bob = await signup(client, "bob")
    first = await sent(client, ada, bob)
    assert_problem(await send(client, ada, bob.id), 409, "request_pending")
    assert await request_ids(client, bob) == [first["id"]]


async def test_rejected_request_can_be_sent_again_after_24_hours(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada = await signup(client, "ada")
    bob = await signup(client, "bob")
    first = await sent(client, ada, bob)
    assert (await answer(client, bob, first["id"], "reject")).status_code == 200
    assert_problem(await send(client, ada, bob.id), 400, "request_rejected_recently")
    resources.clock.advance(hours=23, minutes=59)
    assert_problem(await send(client, ada, bob.id), 400, "request_rejected_recently")
    resources.clock.advance(minutes=2)
    second = await sent(client, ada, bob)
    assert second["id"] != first["id"]
    assert await request_ids(client, bob) == [second["id"]]


async def test_the_rejecting_user_may_ask_at_once(client: httpx.AsyncClient) -> None:
    ada = await signup(client, "ada")
    bob = await signup(client, "bob")
    first = await sent(client, ada, bob)
    await answer(client, bob, first["id"], "reject")
    # The 24-hour wait binds the rejected sender, not the one who said no.
    response = await send(client, bob, ada.id)
    assert response.status_code == 201, response.text
    assert response.json()["sender"]["id"] == bob.id


async def test_at_most_100_pending_outgoing_requests(client: httpx.AsyncClient, resources: Resources) -> None:
    ada = await signup(client, "ada")
    bob = await signup(client, "bob")
    # Receivers need no login: made directly, to save 100 rounds of password hashing.
    async with unit_of_work(resources) as session:
        receivers = [
            await auth.create_user(
                session,
                resources.passwords,
                username=f"user_{n:03}",
                email=f"user_{n:03}@example.com",
                password=PASSWORD,
            )
            for n in range(101)
        ]
    await sent(client, bob, ada)
    created = []
    for receiver in receivers[:100]:
        response = await send(client, ada, receiver.id)
        assert response.status_code == 201, response.text
        created.append(response.json()["id"])
    body = assert_problem(await send(client, ada, receivers[100].id), 429, "too_many_pending_requests")
    assert "100" in body["detail"]
    assert len(await request_ids(client, ada, direction="outgoing", limit=100)) == 100
    # At the cap, Bob's waiting request can still be accepted, by asking him back.
    response = await send(client, ada, bob.id)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "accepted"
    # A request that stops waiting frees a place.
    assert_problem(await send(client, ada, receivers[100].id), 429, "too_many_pending_requests")
    assert (await cancel(client, ada, created[0])).status_code == 204
    assert (await send(client, ada, receivers[100].id)).status_code == 201
    assert_problem(await send(client, ada, receivers[0].id), 429, "too_many_pending_requests")


async def test_friend_requests_need_authentication(client: httpx.AsyncClient) -> None:
    bob = await signup(client, "bob")
    assert_problem(
        await client.post(f"{API}/friend-requests", json={"receiver_id": bob.id}), 401, "not_authenticated"
    )
    assert_problem(await client.get(f"{API}/friend-requests"), 401, "not_authenticated")


# --- GET /friend-requests -----------------------------------------------------------


async def test_list_requests_by_direction_and_status(client: httpx.AsyncClient) -> None:
    ada = await signup(client, "ada")
    bob = await signup(client, "bob")
    cyd = await signup(client, "cyd")
    dan = await signup(client, "dan")
    eve = await signup(client, "eve")
    to_ada = await sent(client, bob, ada)
    from_ada = await sent(client, ada, cyd)
    rejected = await sent(client, dan, ada)
    await answer(client, ada, rejected["id"], "reject")
    cancelled = await sent(client, ada, eve)
    await cancel(client, ada, cancelled["id"])
    accepted = await sent(client, eve, ada)
    await answer(client, ada, accepted["id"], "accept")
    unrelated = await sent(client, bob, cyd)

    page = await requests(client, ada)  # defaults: incoming, pending
    assert page == {"items": [to_ada], "next_cursor": None}
    assert await request_ids(client, ada, direction="incoming", status="pending") == [to_ada["id"]]
    assert await request_ids(client, ada, direction="outgoing") == [from_ada["id"]]
    assert await request_ids(client, ada, status="rejected") == [rejected["id"]]
    # A cancelled request is gone, and `cancelled` is no status to ask for.
    assert cancelled["id"] not in await request_ids(client, ada, direction="outgoing")
    response = await client.get(f"{API}/friend-requests", params={"status": "cancelled"}, headers=ada.headers)
    assert_problem(response, 422, "validation_error")
    assert field_errors(response) == {"query.status"}
    assert await request_ids(client, ada, status="accepted") == [accepted["id"]]
    assert await request_ids(client, ada, direction="outgoing", status="accepted") == []
    # Only the caller's own requests.
    assert await request_ids(client, cyd) == [unrelated["id"], from_ada["id"]]
    assert await request_ids(client, bob, direction="outgoing") == [unrelated["id"], to_ada["id"]]


async def test_list_requests_pages_newest_first(client: httpx.AsyncClient) -> None:
    ada = await signup(client, "ada")
    others = [await signup(client, f"fan_{n}") for n in range(5)]
    made = [(await sent(client, other, ada))["id"] for other in others]
    response = await client.get(f"{API}/friend-requests", params={"limit": 2}, headers=ada.headers)
    first = response.json()
    assert [item["id"] for item in first["items"]] == made[::-1][:2]
    assert first["next_cursor"]
    assert response.headers["link"].endswith('; rel="next"')
    seen = [item["id"] for item in first["items"]]
    cursor = first["next_cursor"]
    while cursor:
        page = await requests(client, ada, limit=2, cursor=cursor)
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
    assert seen == made[::-1]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"direction": "sideways"}, "query.direction"),
        ({"status": "lost"}, "query.status"),
        ({"limit": 101}, "query.limit"),
    ],
)
async def test_list_requests_refuses_bad_parameters(
    client: httpx.AsyncClient, params: dict[str, str | int], field: str
) -> None:
    ada = await signup(client, "ada")
    response = await client.get(f"{API}/friend-requests", params=params, headers=ada.headers)
    assert_problem(response, 422, "validation_error")
    assert field_errors(response) == {field}


# --- PATCH /friend-requests/{id} ----------------------------------------------------


async def test_accept_request(client: httpx.AsyncClient) -> None:
    ada = await signup(client, "ada")
    bob = await signup(client, "bob")
    request = await sent(client, ada, bob)
    response = await answer(client, bob, request["id"], "accept")
    assert response.status_code == 200
    assert response.json() == {**request, "status": "accepted"}
    assert await friend_ids(client, ada, ada.id) == [bob.id]
    assert await friend_ids(client, ada, bob.id) == [ada.id]
    assert (await profile(client, ada, bob.id))["friend_count"] == 1


async def test_reject_request(client: httpx.AsyncClient) -> None:
    ada = await signup(client, "ada")
    bob = await signup(client, "bob")
    request = await sent(client, ada, bob)
    response = await answer(client, bob, request["id"], "reject")
    assert response.status_code == 200
    assert response.json() == {**request, "status": "rejected"}
    assert await friend_ids(client, ada, ada.id) == []
    assert await request_ids(client, bob) == []
    assert await request_ids(client, ada, direction="outgoing", status="rejected") == [request["id"]]
    assert (await profile(client, ada, bob.id))["relationship"] == "none"


async def test_only_the_receiver_may_answer(client: httpx.AsyncClient) -> None:
    ada = await signup(client, "ada")
    bob = await signup(client, "bob")
    eve = await signup(client, "eve")
    request = await sent(client, ada, bob)
    for account in (ada, eve):
        for action in ("accept", "reject"):
            assert_problem(
                await answer(client, account, request["id"], action), 404, "friend_request_not_found"
            )
    assert_problem(await answer(client, bob, UNKNOWN_ID, "accept"), 404, "friend_request_not_found")
    assert await request_ids(client, bob) == [request["id"]]


async def test_answering_twice_is_409(client: httpx.AsyncClient) -> None:
    ada = await signup(client, "ada")
    bob = await signup(client, "bob")
    request = await sent(client, ada, bob)
    await answer(client, bob, request["id"], "reject")
    assert_problem(await answer(client, bob, request["id"], "accept"), 409, "not_pending")
    assert await friend_ids(client, bob, bob.id) == []
    other = await sent(client, bob, ada)
    await answer(client, ada, other["id"], "accept")
    assert_problem(await answer(client, ada, other["id"], "reject"), 409, "not_pending")
    assert await friend_ids(client, bob, bob.id) == [ada.id]
    cyd = await signup(client, "cyd")
    cancelled = await sent(client, cyd, bob)
    await cancel(client, cyd, cancelled["id"])
    assert_problem(await answer(client, bob, cancelled["id"], "accept"), 404, "friend_request_not_found")
    assert await friend_ids(client, bob, bob.id) == [ada.id]


async def test_answer_body_is_validated(client: httpx.AsyncClient) -> None:
    ada = await signup(client, "ada")
    bob = await signup(client, "bob")
    request = await sent(client, ada, bob)
    for body, field in (
        ({"action": "maybe"}, "body.action"),
        ({}, "body.action"),
        ({"action": "accept", "status": "accepted"}, "body.status"),
    ):
        response = await client.patch(
            f"{API}/friend-requests/{request['id']}", json=body, headers=bob.headers
        )
        assert_problem(response, 422, "validation_error")
        assert field_errors(response) == {field}
    assert await request_ids(client, bob) == [request["id"]]


# --- DELETE /friend-requests/{id} ---------------------------------------------------


async def test_sender_cancels_pending_request(client: httpx.AsyncClient) -> None:
    ada = await signup(client, "ada")
    bob = await signup(client, "bob")
    request = await sent(client, ada, bob)
    response = await cancel(client, ada, request["id"])
    assert response.status_code == 204
    assert response.content == b""
    assert await request_ids(client, bob) == []
    assert await request_ids(client, ada, direction="outgoing") == []
    # Gone for both sides, as DELETE promises: read, answered or cancelled again, it is 404.
    for account in (ada, bob):
        response = await client.get(f"{API}/friend-requests/{request['id']}", headers=account.headers)
        assert_problem(response, 404, "friend_request_not_found")
    assert_problem(await answer(client, bob, request["id"], "accept"), 404, "friend_request_not_found")
    assert_problem(await cancel(client, ada, request["id"]), 404, "friend_request_not_found")
    assert (await profile(client, bob, ada.id))["relationship"] == "none"
    # Nothing stands in the way of a new request, either way.
    assert (await send(client, bob, ada.id)).status_code == 201


async def test_only_the_sender_may_cancel(client: httpx.AsyncClient) -> None:
    ada = await signup(client, "ada")
    bob = await signup(client, "bob")
    eve = await signup(client, "eve")
    request = await sent(client, ada, bob)
    for account in (bob, eve):
        assert_problem(await cancel(client, account, request["id"]), 404, "friend_request_not_found")
    assert_problem(await cancel(client, ada, UNKNOWN_ID), 404, "friend_request_not_found")
    assert await request_ids(client, bob) == [request["id"]]


async def test_cancel_needs_a_pending_request(client: httpx.AsyncClient) -> None:
    ada = await signup(client, "ada")
    bob = await signup(client, "bob")
    cyd = await signup(client, "cyd")
    request = await sent(client, ada, bob)
    assert (await cancel(client, ada, request["id"])).status_code == 204
    assert_problem(await cancel(client, ada, request["id"]), 404, "friend_request_not_found")
    rejected = await sent(client, bob, cyd)
    await answer(client, cyd, rejected["id"], "reject")
    assert_problem(await cancel(client, bob, rejected["id"]), 409, "not_pending")
    accepted = await sent(client, ada, cyd)
    await answer(client, cyd, accepted["id"], "accept")
    assert_problem(await cancel(client, ada, accepted["id"]), 409, "not_pending")
    assert await friend_ids(client, ada, ada.id) == [cyd.id]


# --- friendships --------------------------------------------------------------------


async def test_unfriend(client: httpx.AsyncClient) -> None:
    ada = await signup(client, "ada")
    bob = await signup(client, "bob")
    await befriend(client, ada, bob)
    response = await client.delete(f"{API}/friends/{ada.id}", headers=bob.headers)
    assert response.status_code == 204
    assert response.content == b""
    assert await friend_ids(client, ada, ada.id) == []
    assert await friend_ids(client, bob, bob.id) == []
    assert (await profile(client, ada, bob.id))["relationship"] == "none"
    assert (await profile(client, ada, bob.id))["friend_count"] == 0
    for user_id in (ada.id, UNKNOWN_ID, bob.id):
        response = await client.delete(f"{API}/friends/{user_id}", headers=bob.headers)
        assert_problem(response, 404, "not_friends")
    # They may become friends again.
    await befriend(client, ada, bob)
    assert await friend_ids(client, bob, bob.id) == [ada.id]


async def test_friends_list_newest_friendship_first(client: httpx.AsyncClient, resources: Resources) -> None:
    ada = await signup(client, "ada")
    viewer = await signup(client, "viewer")
    friends = [await signup(client, f"pal_{n}") for n in range(5)]
    for pal in friends:
        await befriend(client, ada, pal)
        resources.clock.advance(minutes=1)
    response = await friends_page(client, viewer, ada.id, limit=2)
    assert response.status_code == 200
    page = response.json()
    assert response.headers["link"].endswith('; rel="next"')
    first = page["items"][0]
    assert set(first) == SUMMARY_FIELDS | {"friends_since"}
    assert {key: first[key] for key in SUMMARY_FIELDS} == summary(friends[-1])
    assert first["friends_since"].endswith("Z")
    seen = [item["id"] for item in page["items"]]
    since = [datetime.fromisoformat(item["friends_since"]) for item in page["items"]]
    cursor = page["next_cursor"]
    while cursor:
        response = await friends_page(client, viewer, ada.id, limit=2, cursor=cursor)
        seen += [item["id"] for item in response.json()["items"]]
        since += [datetime.fromisoformat(item["friends_since"]) for item in response.json()["items"]]
        cursor = response.json()["next_cursor"]
    assert seen == [pal.id for pal in reversed(friends)]
    assert since == sorted(since, reverse=True)
    assert (await profile(client, viewer, ada.id))["friend_count"] == 5


async def test_friends_list_pages_through_equal_timestamps(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    ada = await signup(client, "ada")
    friends = [await signup(client, f"pal_{n}") for n in range(4)]
    # Friendships made at one instant: the friend's id breaks the tie, and no page repeats one.
    instant = resources.clock.now()
    monkeypatch.setattr(resources.clock, "now", lambda: instant)
    for pal in friends:
        request = await sent(client, pal, ada)
        await answer(client, ada, request["id"], "accept")
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 1} if cursor is None else {"limit": 1, "cursor": cursor}
        page = (await friends_page(client, ada, ada.id, **params)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted((pal.id for pal in friends), reverse=True)
    assert {item["friends_since"] for item in page["items"]} == {
        instant.isoformat(timespec="milliseconds")[:23] + "Z"
    }


async def test_friends_list_hides_hidden_users(client: httpx.AsyncClient, resources: Resources) -> None:
    admin = await staff(client, resources, "boss", Role.admin)
    moderator = await staff(client, resources, "mod", Role.moderator)
    ada = await signup(client, "ada")
    bob = await signup(client, "bob")
    cyd = await signup(client, "cyd")
    viewer = await signup(client, "viewer")
    await befriend(client, ada, bob)
    await befriend(client, ada, cyd)
    await suspend(client, admin, bob.id)
    # Suspended friends leave the list and the count for users; staff still see them.
    assert await friend_ids(client, viewer, ada.id) == [cyd.id]
    assert (await profile(client, viewer, ada.id))["friend_count"] == 1
    assert set(await friend_ids(client, moderator, ada.id)) == {bob.id, cyd.id}
    assert (await profile(client, moderator, ada.id))["friend_count"] == 2
    # A friend in a block with the viewer is left out for that viewer only.
    assert (await block(client, cyd, viewer.id)).status_code == 201
    assert await friend_ids(client, viewer, ada.id) == []
    assert (await profile(client, viewer, ada.id))["friend_count"] == 0
    await suspend(client, admin, bob.id, suspended=False)
    assert set(await friend_ids(client, ada, ada.id)) == {bob.id, cyd.id}


async def test_friends_list_of_hidden_user_is_404(client: httpx.AsyncClient, resources: Resources) -> None:
    admin = await staff(client, resources, "boss", Role.admin)
    viewer = await signup(client, "viewer")
    gone = await signup(client, "gone")
    for user_id in (UNKNOWN_ID, gone.id):
        if user_id == gone.id:
            await suspend(client, admin, gone.id)
        assert_problem(await friends_page(client, viewer, user_id), 404, "user_not_found")


async def test_friends_list_refuses_bad_cursor(client: httpx.AsyncClient) -> None:
    ada = await signup(client, "ada")
    # Garbage, and a well-formed cursor of another list (keyed by id alone).
    for cursor in ("bm90IGEgY3Vyc29y", encode_cursor(ada.id)):
        response = await friends_page(client, ada, ada.id, cursor=cursor)
        assert_problem(response, 422, "invalid_cursor")


# --- blocks -------------------------------------------------------------------------


async def test_block_and_unblock(client: httpx.AsyncClient) -> None:
    ada = await signup(client, "ada")
    bob = await signup(client, "bob")
    response = await block(client, ada, bob.id)
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"user", "created_at"}
    assert body["user"] == summary(bob)
    assert body["created_at"].endswith("Z")
    listing = await client.get(f"{API}/blocks", headers=ada.headers)
    assert listing.json() == {"items": [body], "next_cursor": None}
    assert (await client.get(f"{API}/blocks", headers=bob.headers)).json()["items"] == []
    assert_problem(await block(client, ada, bob.id), 409, "already_blocked")
    response = await unblock(client, ada, bob.id)
    assert response.status_code == 204
    assert response.content == b""
    assert (await client.get(f"{API}/blocks", headers=ada.headers)).json()["items"] == []
    assert_problem(await unblock(client, ada, bob.id), 404, "not_blocked")
    assert (await profile(client, bob, ada.id))["relationship"] == "none"


async def test_block_errors(client: httpx.AsyncClient) -> None:
    ada = await signup(client, "ada")
    bob = await signup(client, "bob")
    assert_problem(await block(client, ada, ada.id), 400, "cannot_block_self")
    assert_problem(await block(client, ada, UNKNOWN_ID), 404, "user_not_found")
    assert_problem(await unblock(client, ada, UNKNOWN_ID), 404, "not_blocked")
    # Only the blocker can lift a block.
    await block(client, ada, bob.id)
    assert_problem(await unblock(client, bob, ada.id), 404, "not_blocked")
    response = await client.post(
        f"{API}/blocks", json={"user_id": bob.id, "silent": True}, headers=ada.headers
    )
    assert_problem(response, 422, "validation_error")
    assert field_errors(response) == {"body.silent"}


async def test_blocks_list_pages_newest_first(client: httpx.AsyncClient, resources: Resources) -> None:
    ada = await signup(client, "ada")
    targets = [await signup(client, f"pest_{n}") for n in range(5)]
    for target in targets:
        assert (await block(client, ada, target.id)).status_code == 201
        resources.clock.advance(seconds=1)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 2} if cursor is None else {"limit": 2, "cursor": cursor}
        page = (await client.get(f"{API}/blocks", params=params, headers=ada.headers)).json()
        assert len(page["items"]) <= 2
        seen += [item["user"]["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [target.id for target in reversed(targets)]


async def test_block_ends_friendship_and_hides_both_ways(client: httpx.AsyncClient) -> None:
    ada = await signup(client, "ada")
    bob = await signup(client, "bob")
    cyd = await signup(client, "cyd")
    await befriend(client, ada, bob)
    await befriend(client, ada, cyd)
    await befriend(client, bob, cyd)
    assert (await block(client, ada, bob.id)).status_code == 201
    unknown = await client.get(f"{API}/users/{UNKNOWN_ID}", headers=bob.headers)
    for viewer, other in ((ada, bob), (bob, ada)):
        # The profile is gone, with the very answer an unknown user gets.
        response = await client.get(f"{API}/users/{other.id}", headers=viewer.headers)
        assert_problem(response, 404, "user_not_found")
        assert comparable(response) == comparable(unknown)
        assert_problem(await friends_page(client, viewer, other.id), 404, "user_not_found")
        assert other.username not in await search_names(client, viewer, "")
        assert await search_names(client, viewer, other.username) == []
        response = await send(client, viewer, other.id)
        assert_problem(response, 404, "user_not_found")
        assert comparable(response) == comparable(await send(client, viewer, UNKNOWN_ID))
        # Each disappears from the other's view of a common friend's list.
        assert other.id not in await friend_ids(client, viewer, cyd.id)
        assert other.id not in await friend_ids(client, viewer, viewer.id)
    assert_problem(await client.delete(f"{API}/friends/{ada.id}", headers=bob.headers), 404, "not_friends")
    # Others still see both, with the friendship between them gone.
    assert await friend_ids(client, cyd, ada.id) == [cyd.id]
    assert await friend_ids(client, cyd, bob.id) == [cyd.id]
    assert {"ada", "bob"} <= set(await search_names(client, cyd, ""))


async def test_a_blocked_user_cannot_tell_the_blocker_from_a_user_who_does_not_exist(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada = await signup(client, "ada")
    bob = await signup(client, "bob")
    await block(client, ada, bob.id)
    # Bob trying to block Ada back gets what he gets for an id nobody has: nothing of Ada.
    back = await block(client, bob, ada.id)
    nobody = await block(client, bob, "0190c0de-0000-7000-8000-000000000000")
    for response in (back, nobody):
        assert_problem(response, 404, "user_not_found")
    assert {k: v for k, v in back.json().items() if k not in ("request_id", "instance")} == {
        k: v for k, v in nobody.json().items() if k not in ("request_id", "instance")
    }
    assert (await client.get(f"{API}/blocks", headers=bob.headers)).json()["items"] == []
    assert_problem(await client.get(f"{API}/users/{ada.id}", headers=bob.headers), 404, "user_not_found")
    # Blocks both ways (made before this rule): neither's list shows the other's profile.
    await posting.block(resources, bob, ada)
    assert (await client.get(f"{API}/blocks", headers=ada.headers)).json()["items"] == []
    assert (await client.get(f"{API}/blocks", headers=bob.headers)).json()["items"] == []
    # Ada lifting her block does not lift Bob's; his list shows Ada again only now.
    assert (await unblock(client, ada, bob.id)).status_code == 204
    assert [
        item["user"]["id"]
        for item in (await client.get(f"{API}/blocks", headers=bob.headers)).json()["items"]
    ] == [ada.id]
    assert_problem(await client.get(f"{API}/users/{bob.id}", headers=ada.headers), 404, "user_not_found")
    assert (await unblock(client, bob, ada.id)).status_code == 204
    assert (await profile(client, bob, ada.id))["relationship"] == "none"


async def test_block_removes_pending_requests_both_ways(client: httpx.AsyncClient) -> None:
    ada = await signup(client, "ada")
    bob = await signup(client, "bob")
    cyd = await signup(client, "cyd")
    request = await sent(client, ada, bob)
    other = await sent(client, cyd, ada)
    await block(client, bob, ada.id)
    for account in (ada, bob):
        for direction in ("incoming", "outgoing"):
            for status in ("pending", "accepted", "rejected"):
                ids = await request_ids(client, account, direction=direction, status=status)
                assert request["id"] not in ids
    response = await client.get(f"{API}/friend-requests/{request['id']}", headers=ada.headers)
    assert_problem(response, 404, "friend_request_not_found")
    assert_problem(await answer(client, bob, request["id"], "accept"), 404, "friend_request_not_found")
    # Requests with others are untouched.
    assert await request_ids(client, ada) == [other["id"]]
    await block(client, cyd, ada.id)  # the receiver's side works the same
    assert await request_ids(client, ada) == []
    assert await request_ids(client, cyd, direction="outgoing") == []
    # After the block is lifted, either may ask afresh.
    await unblock(client, bob, ada.id)
    assert (await profile(client, ada, bob.id))["relationship"] == "none"
    assert (await send(client, bob, ada.id)).status_code == 201


async def test_unblock_does_not_restore_friendship(client: httpx.AsyncClient) -> None:
    ada = await signup(client, "ada")
    bob = await signup(client, "bob")
    request = await sent(client, ada, bob)
    await answer(client, bob, request["id"], "accept")
    await block(client, bob, ada.id)
    # Old, answered requests between them leave both sides' lists while the block lasts.
    assert await request_ids(client, ada, direction="outgoing", status="accepted") == []
    assert await request_ids(client, bob, status="accepted") == []
    response = await client.get(f"{API}/friend-requests/{request['id']}", headers=ada.headers)
    assert_problem(response, 404, "friend_request_not_found")
    await unblock(client, bob, ada.id)
    assert await request_ids(client, bob, status="accepted") == [request["id"]]
    await block(client, ada, bob.id)
    await unblock(client, ada, bob.id)
    assert (await profile(client, ada, bob.id))["relationship"] == "none"
    assert await friend_ids(client, ada, ada.id) == []
    assert bob.username in await search_names(client, ada, "bob")


async def test_blocks_need_authentication(client: httpx.AsyncClient) -> None:
    bob = await signup(client, "bob")
    assert_problem(await client.post(f"{API}/blocks", json={"user_id": bob.id}), 401, "not_authenticated")
    assert_problem(await client.get(f"{API}/blocks"), 401, "not_authenticated")
    assert_problem(await client.delete(f"{API}/blocks/{bob.id}"), 401, "not_authenticated")
    assert_problem(await client.delete(f"{API}/friends/{bob.id}"), 401, "not_authenticated")
    assert_problem(await client.get(f"{API}/users/{bob.id}/friends"), 401, "not_authenticated")


# --- GET /users/{id}: the social fields ---------------------------------------------


async def add_post(resources: Resources, author: Account, visibility: Visibility) -> None:
    async with unit_of_work(resources) as session:
        session.add(Post(author_id=author.id, content=f"a {visibility} post", visibility=visibility))


async def test_profile_counts_and_relationship(client: httpx.AsyncClient, resources: Resources) -> None:
    moderator = await staff(client, resources, "mod", Role.moderator)
    ada = await signup(client, "ada")
    friend = await signup(client, "friend")
    stranger = await signup(client, "stranger")
    await befriend(client, ada, friend)
    for visibility in (Visibility.public, Visibility.friends, Visibility.private, Visibility.public):
        await add_post(resources, ada, visibility)
    await add_post(resources, friend, Visibility.public)
    body = await profile(client, stranger, ada.id)
    assert set(body) == {
        "id",
        "username",
        "display_name",
        "bio",
        "avatar_url",
        "created_at",
        "friend_count",
        "post_count",
        "relationship",
    }
    assert (body["friend_count"], body["post_count"], body["relationship"]) == (1, 2, "none")
    body = await profile(client, friend, ada.id)
    assert (body["friend_count"], body["post_count"], body["relationship"]) == (1, 3, "friends")
    body = await profile(client, ada, ada.id)
    assert (body["friend_count"], body["post_count"], body["relationship"]) == (1, 4, "self")
    body = await profile(client, moderator, ada.id)
    assert (body["friend_count"], body["post_count"], body["relationship"]) == (1, 4, "none")
    assert (await profile(client, stranger, stranger.id))["post_count"] == 0
    # A block hides posts too; after it is lifted the public ones count again.
    await block(client, stranger, ada.id)
    await unblock(client, stranger, ada.id)
    assert (await profile(client, stranger, ada.id))["post_count"] == 2


async def test_account_deletion_removes_friendships_and_requests(client: httpx.AsyncClient) -> None:
    ada = await signup(client, "ada")
    bob = await signup(client, "bob")
    cyd = await signup(client, "cyd")
    dan = await signup(client, "dan")
    await befriend(client, ada, bob)
    incoming = await sent(client, cyd, ada)
    await sent(client, ada, dan)
    assert (await profile(client, bob, bob.id))["friend_count"] == 1
    response = await client.request(
        "DELETE", f"{API}/users/me", json={"password": PASSWORD}, headers=ada.headers
    )
    assert response.status_code == 204
    assert (await profile(client, bob, bob.id))["friend_count"] == 0
    assert await friend_ids(client, bob, bob.id) == []
    assert await request_ids(client, cyd, direction="outgoing") == []
    assert await request_ids(client, dan) == []
    assert_problem(await cancel(client, cyd, incoming["id"]), 404, "friend_request_not_found")
    # Accepted history goes too: Bob's record of the request is gone with Ada.
    assert await request_ids(client, bob, status="accepted") == []
