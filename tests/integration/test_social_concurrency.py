"""Friend requests racing each other: the pending-pair key keeps the outcome consistent."""

from __future__ import annotations

import asyncio

import httpx

from tests.helpers import API, Account, assert_problem, signup

ROUNDS = 10


async def send(client: httpx.AsyncClient, sender: Account, receiver: Account) -> httpx.Response:
    return await client.post(
        f"{API}/friend-requests", json={"receiver_id": receiver.id}, headers=sender.headers
    )


async def friend_ids(client: httpx.AsyncClient, viewer: Account, user: Account) -> list[str]:
    response = await client.get(f"{API}/users/{user.id}/friends", headers=viewer.headers)
    assert response.status_code == 200, response.text
    return [friend["id"] for friend in response.json()["items"]]


async def pending(client: httpx.AsyncClient, account: Account, direction: str) -> list[str]:
    response = await client.get(
        f"{API}/friend-requests", params={"direction": direction}, headers=account.headers
    )
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


async def fresh_pair(client: httpx.AsyncClient, round_number: int) -> tuple[Account, Account]:
    return await signup(client, f"ada_{round_number}"), await signup(client, f"bob_{round_number}")


async def test_crossing_requests_make_exactly_one_friendship(client: httpx.AsyncClient) -> None:
    for round_number in range(ROUNDS):
        ada, bob = await fresh_pair(client, round_number)
        first, second = await asyncio.gather(send(client, ada, bob), send(client, bob, ada))
        # One request was made (201); the other found it and accepted it (200).
        assert sorted((first.status_code, second.status_code)) == [200, 201], (first.text, second.text)
        created, accepted = (first, second) if first.status_code == 201 else (second, first)
        assert accepted.json()["id"] == created.json()["id"]
        assert accepted.json()["status"] == "accepted"
        assert await friend_ids(client, ada, ada) == [bob.id]
        assert await friend_ids(client, bob, bob) == [ada.id]
        for account in (ada, bob):
            for direction in ("incoming", "outgoing"):
                assert await pending(client, account, direction) == []
            profile = await client.get(f"{API}/users/{account.id}", headers=account.headers)
            assert profile.json()["friend_count"] == 1


async def test_identical_simultaneous_requests_make_one(client: httpx.AsyncClient) -> None:
    for round_number in range(ROUNDS):
        ada, bob = await fresh_pair(client, round_number)
        first, second = await asyncio.gather(send(client, ada, bob), send(client, ada, bob))
        assert sorted((first.status_code, second.status_code)) == [201, 409], (first.text, second.text)
        created, refused = (first, second) if first.status_code == 201 else (second, first)
        assert_problem(refused, 409, "request_pending")
        assert await pending(client, bob, "incoming") == [created.json()["id"]]
        assert await pending(client, ada, "outgoing") == [created.json()["id"]]
        assert await friend_ids(client, ada, ada) == []
