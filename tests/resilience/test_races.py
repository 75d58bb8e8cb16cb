"""Races at a larger scale than the integration tests, each followed by the invariant checker.

`tests/integration/test_social_concurrency.py` crosses one pair's friend requests at a
time, `test_counters_concurrency.py` likes from many users and like/unlike from one, and
deletes a post while it is commented (with the order forced by a held lock), and
`test_idempotency.py` sends two same-key creates at once. Here, in-process on SQLite and
PostgreSQL: many pairs crossing at once (with a third request thrown in), many users and
the same user liking one post in the same burst, a dozen same-key creates on three
endpoints, and posts deleted in the middle of a free-running stream of comments and
likes. No answer may be a 5xx, and `violations()` must be empty after each.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
from sqlalchemy import func, select

from kith.db.models import Comment, FriendRequest, Friendship, Like, Post
from kith.runtime.resources import Resources
from kith.runtime.transaction import unit_of_work
from tests.helpers import API, Account
from tests.posting import counted_rows, create_post, members
from tests.resilience.invariants import violations

PAIRS = 15


async def no_violations(database_url: str, resources: Resources) -> None:
    assert await violations(database_url, resources.settings.media_root) == []


def assert_no_5xx(responses: list[httpx.Response]) -> None:
    assert [r.text for r in responses if r.status_code >= 500] == []


async def test_many_pairs_crossing_friend_requests_at_once_end_with_one_friendship_each(
    client: httpx.AsyncClient, resources: Resources, database_url: str
) -> None:
    pairs = [tuple(await members(resources, f"ada{n}", f"bob{n}")) for n in range(PAIRS)]

    def send(sender: Account, receiver: Account) -> asyncio.Task[httpx.Response]:
        body = {"receiver_id": receiver.id}
        return asyncio.create_task(client.post(f"{API}/friend-requests", json=body, headers=sender.headers))

    # Every pair at once: A->B and B->A, and for a third of the pairs A->B a second time.
    tasks = []
    for n, (ada, bob) in enumerate(pairs):
        tasks.append([send(ada, bob), send(bob, ada)] + ([send(ada, bob)] if n % 3 == 0 else []))
    answers = [await asyncio.gather(*group) for group in tasks]
    assert_no_5xx([response for group in answers for response in group])

    async with unit_of_work(resources, write=False) as session:
        for (ada, bob), group in zip(pairs, answers, strict=True):
            statuses = Counter(response.status_code for response in group)
            # One request made, the crossing one accepted it; a repeat finds it pending or
            # the two already friends.
            assert statuses[201] == 1 and statuses[200] == 1, [r.text for r in group]
            assert {r.json()["code"] for r in group if r.status_code == 409} <= {
                "request_pending",
                "already_friends",
            }
            pending = await session.scalar(
                select(func.count())
                .select_from(FriendRequest)
                .where(FriendRequest.status == "pending")
                .where(FriendRequest.sender_id.in_((ada.id, bob.id)))
            )
            friendships = await session.scalar(
                select(func.count()).select_from(Friendship).where(Friendship.user_id.in_((ada.id, bob.id)))
            )
            assert (pending, friendships) == (0, 2)
    await no_violations(database_url, resources)


async def test_many_users_and_one_user_many_times_liking_in_one_burst(
    client: httpx.AsyncClient, resources: Resources, database_url: str
) -> None:
    author, keen = await members(resources, "author", "keen")
    fans = await members(resources, *(f"fan{n}" for n in range(30)))
    post_id = (await create_post(client, author, visibility="public"))["id"]

    def like(account: Account) -> asyncio.Task[httpx.Response]:
        return asyncio.create_task(client.post(f"{API}/posts/{post_id}/like", headers=account.headers))

    burst = (
        [like(fan) for fan in fans[:15]] + [like(keen) for _ in range(20)] + [like(fan) for fan in fans[15:]]
    )
    responses = list(await asyncio.gather(*burst))

    assert_no_5xx(responses)
    keen_answers = responses[15:35]
    # The same user's twenty likes: one made it (201), the others found it (200).
    assert sorted(r.status_code for r in keen_answers) == [200] * 19 + [201]
    assert [r.status_code for r in responses[:15] + responses[35:]] == [201] * 30
    assert all(r.json()["liked_by_me"] for r in responses)
    assert await counted_rows(resources, post_id) == (31, 31, 0, 0)
    await no_violations(database_url, resources)


async def test_a_dozen_same_key_creates_at_once_make_one_resource_per_endpoint(
    client: httpx.AsyncClient, resources: Resources, database_url: str
) -> None:
    ada, bob = await members(resources, "ada", "bob")
    post_id = (await create_post(client, bob, visibility="public"))["id"]
    creates = {
        "post": (f"{API}/posts", {"content": "once", "visibility": "public"}),
        "comment": (f"{API}/posts/{post_id}/comments", {"content": "once"}),
        "friend request": (f"{API}/friend-requests", {"receiver_id": bob.id}),
    }
    for name, (path, body) in creates.items():
        headers = {**ada.headers, "Idempotency-Key": f"same-{name}"}
        responses = list(
            await asyncio.gather(*(client.post(path, json=body, headers=headers) for _ in range(12)))
        )
        assert_no_5xx(responses)
        created = [r for r in responses if r.status_code == 201]
        refused = [r for r in responses if r.status_code != 201]
        # The first answer, then replays of it (same bytes), or 409 while it was running.
        assert created, name
        assert sum(r.headers.get("idempotent-replayed") != "true" for r in created) == 1, name
        assert {r.content for r in created} == {created[0].content}, name
        assert {(r.status_code, r.json()["code"]) for r in refused} <= {(409, "idempotency_in_progress")}, (
            name
        )
    async with unit_of_work(resources, write=False) as session:
        posts = await session.scalar(select(func.count()).select_from(Post).where(Post.author_id == ada.id))
        comments = await session.scalar(
            select(func.count()).select_from(Comment).where(Comment.post_id == post_id)
        )
        requests = await session.scalar(
            select(func.count()).select_from(FriendRequest).where(FriendRequest.sender_id == ada.id)
        )
    assert (posts, comments, requests) == (1, 1, 1)
    await no_violations(database_url, resources)


async def test_posts_deleted_amid_a_stream_of_comments_and_likes_leave_no_orphans(
    client: httpx.AsyncClient, resources: Resources, database_url: str
) -> None:
    [author] = await members(resources, "author")
    fans = await members(resources, *(f"fan{n}" for n in range(8)))
    statuses: Counter[int] = Counter()
    deleted: list[str] = []
    for _ in range(5):
        post_id = (await create_post(client, author, visibility="public"))["id"]
        first = asyncio.Event()

        async def engage(fan: Account, post_id: str = post_id, first: asyncio.Event = first) -> list[int]:
            seen = []
            for n in range(4):
                comment = await client.post(
                    f"{API}/posts/{post_id}/comments",
                    json={"content": f"{fan.username} {n}"},
                    headers=fan.headers,
                )
                like = await client.post(f"{API}/posts/{post_id}/like", headers=fan.headers)
                seen += [comment.status_code, like.status_code]
                for response in (comment, like):
                    assert response.status_code in (200, 201, 404), response.text
                    if response.status_code == 404:
                        assert response.json()["code"] == "post_not_found"
                first.set()
            return seen

        async def delete(post_id: str = post_id, first: asyncio.Event = first) -> int:
            await first.wait()  # some comments and likes are in, more are coming
            response = await client.delete(f"{API}/posts/{post_id}", headers=author.headers)
            return response.status_code

        deletion = asyncio.create_task(delete())
        engaged = await asyncio.gather(*(engage(fan) for fan in fans))
        assert await deletion == 204
        deleted.append(post_id)
        statuses.update(status for seen in engaged for status in seen)
    assert set(statuses) <= {200, 201, 404}
    assert statuses[201] > 0 and statuses[404] > 0, statuses  # the deletions landed mid-stream
    async with unit_of_work(resources, write=False) as session:
        orphans = await session.scalar(
            select(func.count()).select_from(Comment).where(Comment.post_id.not_in(select(Post.id)))
        )
        orphan_likes = await session.scalar(
            select(func.count()).select_from(Like).where(Like.post_id.not_in(select(Post.id)))
        )
        left = await session.scalar(
            select(func.count()).select_from(Comment).where(Comment.post_id.in_(deleted))
        )
    assert (orphans, orphan_likes, left) == (0, 0, 0)
    await no_violations(database_url, resources)
