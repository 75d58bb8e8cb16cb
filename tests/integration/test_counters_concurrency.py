"""Counters under concurrent requests: they always equal the rows they count.

Each test fires its requests at once through the API, on SQLite (writers queue for
the database lock) and on PostgreSQL (transactions really overlap, and a held row
lock lines requests up so the deletion lands between their read and their write).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from sqlalchemy import func, select, text

from kith.db.engine import WRITE_INTENT
from kith.db.models import Comment, Like, Post
from kith.runtime.resources import Resources
from kith.runtime.transaction import unit_of_work
from tests.helpers import API, Account
from tests.posting import counted_rows, create_post, member, members


async def test_hundred_users_liking_at_once_make_a_hundred_likes(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    author = await member(resources, "author")
    post_id = (await create_post(client, author, visibility="public"))["id"]
    fans = await members(resources, *(f"fan{n}" for n in range(100)))

    responses = await asyncio.gather(
        *(client.post(f"{API}/posts/{post_id}/like", headers=fan.headers) for fan in fans)
    )

    assert [response.status_code for response in responses] == [201] * 100
    # Each like saw its own increment: the counts returned are 1 to 100, each once.
    assert sorted(response.json()["like_count"] for response in responses) == list(range(1, 101))
    assert await counted_rows(resources, post_id) == (100, 100, 0, 0)
    post = (await client.get(f"{API}/posts/{post_id}", headers=author.headers)).json()
    assert post["like_count"] == 100


async def test_one_user_liking_and_unliking_at_once_keeps_count_equal_to_rows(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    author, fan, other = await members(resources, "author", "fan", "other")
    post_id = (await create_post(client, author, visibility="public"))["id"]
    await client.post(f"{API}/posts/{post_id}/like", headers=other.headers)

    for _ in range(3):
        requests = []
        for n in range(30):
            method = "POST" if n % 3 != 2 else "DELETE"
            requests.append(client.request(method, f"{API}/posts/{post_id}/like", headers=fan.headers))
        responses = await asyncio.gather(*requests)
        assert {response.status_code for response in responses} <= {200, 201, 204}
        like_count, likes, _, _ = await counted_rows(resources, post_id)
        assert like_count == likes
        assert likes in (1, 2)
    # Taking the fan's like back leaves exactly the other user's.
    await client.delete(f"{API}/posts/{post_id}/like", headers=fan.headers)
    assert await counted_rows(resources, post_id) == (1, 1, 0, 0)


async def waiting_for_locks(resources: Resources, count: int) -> None:
    """Wait until `count` transactions wait for a lock (PostgreSQL); SQLite cannot tell, so pause."""
    if resources.engine.dialect.name != "postgresql":
        await asyncio.sleep(0.3)
        return
    query = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    for _ in range(200):
        async with resources.engine.connect() as connection:
            if (await connection.scalar(query)) >= count:
                return
        await asyncio.sleep(0.02)
    raise AssertionError(f"fewer than {count} requests are waiting for the post")


@asynccontextmanager
async def post_locked(resources: Resources, post_id: str) -> AsyncIterator[None]:
    """Hold the post row (PostgreSQL) or the database (SQLite) so requests pile up behind it."""
    async with resources.session_factory() as session:
        await session.connection(execution_options={WRITE_INTENT: True})
        await session.execute(select(Post.id).where(Post.id == post_id).with_for_update())
        yield
        await session.rollback()


@pytest.mark.parametrize("deletion_queued", ["first", "between"])
async def test_deleting_a_post_while_it_is_commented_and_liked_leaves_nothing_behind(
    client: httpx.AsyncClient, resources: Resources, deletion_queued: str
) -> None:
    author = await member(resources, "author")
    fans = await members(resources, *(f"fan{n}" for n in range(6)))
    post_id = (await create_post(client, author, visibility="public"))["id"]

    def engage(fans: list[Account]) -> list[asyncio.Task[httpx.Response]]:
        tasks = []
        for fan in fans:
            body = {"content": f"from {fan.username}"}
            comment = client.post(f"{API}/posts/{post_id}/comments", json=body, headers=fan.headers)
            tasks.append(asyncio.create_task(comment))
            tasks.append(asyncio.create_task(client.post(f"{API}/posts/{post_id}/like", headers=fan.headers)))
        return tasks

    # The requests have loaded the post and wait behind a held lock to write; the
    # deletion waits first in line, or between two groups. Released together, they
    # overlap as closely as requests can.
    async with post_locked(resources, post_id):
        first = [] if deletion_queued == "first" else engage(fans[:3])
        await waiting_for_locks(resources, len(first))
        deletion = asyncio.create_task(client.delete(f"{API}/posts/{post_id}", headers=author.headers))
        await waiting_for_locks(resources, len(first) + 1)
        last = engage(fans[len(first) // 2 :])
        await waiting_for_locks(resources, len(first) + 1 + len(last))
    responses = await asyncio.gather(*first, deletion, *last)

    statuses = [response.status_code for response in responses]
    assert (await deletion).status_code == 204
    assert set(statuses) <= {201, 204, 404}, [response.text for response in responses]
    for response in responses:
        if response.status_code == 404:
            assert response.json()["code"] == "post_not_found"
    async with unit_of_work(resources, write=False) as session:
        orphans = await session.scalar(
            select(func.count()).select_from(Comment).where(Comment.post_id == post_id)
        )
        likes = await session.scalar(select(func.count()).select_from(Like).where(Like.post_id == post_id))
    assert (orphans, likes) == (0, 0)
    assert (await client.get(f"{API}/posts/{post_id}", headers=author.headers)).status_code == 404
