"""The news feed (docs/api.md#news-feed) on the SQL path and the Redis timeline path."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import event

from kith.core.config import Settings
from kith.core.jobs import job_name
from kith.core.metrics import JOBS_DISPATCHED
from kith.feed import jobs as feed_jobs
from kith.feed import repository as feed_repository
from kith.feed.timeline import TimelineStore
from kith.main import create_app
from kith.runtime.resources import Resources
from tests.conftest import REDIS_URL, redis_available
from tests.helpers import API, Account
from tests.posting import befriend, block, member


async def post(
    client: httpx.AsyncClient, author: Account, visibility: str = "friends", text: str = "hi"
) -> str:
    response = await client.post(
        f"{API}/posts", json={"content": text, "visibility": visibility}, headers=author.headers
    )
    assert response.status_code == 201, response.text
    post_id: str = response.json()["id"]
    return post_id


async def feed_ids(client: httpx.AsyncClient, reader: Account, limit: int = 100) -> list[str]:
    """Every id in the reader's feed, walking all pages."""
    ids: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        response = await client.get(f"{API}/feed", params=params, headers=reader.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        ids.extend(item["id"] for item in body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return ids


async def test_feed_holds_own_and_friends_posts_that_the_reader_may_see(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    reader = await member(resources, "reader")
    friend = await member(resources, "friend")
    stranger = await member(resources, "stranger")
    await befriend(resources, reader, friend)
    mine = [await post(client, reader, visibility) for visibility in ("public", "friends", "private")]
    friends_public = await post(client, friend, "public")
    friends_friends = await post(client, friend, "friends")
    await post(client, friend, "private")
    await post(client, stranger, "public")
    ids = await feed_ids(client, reader)
    assert ids == sorted([*mine, friends_public, friends_friends], reverse=True)
    page = (await client.get(f"{API}/feed", headers=reader.headers)).json()
    item = page["items"][0]
    assert set(item) >= {
        "id",
        "author",
        "content",
        "visibility",
        "media",
        "like_count",
        "comment_count",
        "liked_by_me",
        "created_at",
        "edited_at",
    }
    assert item["author"]["username"] == "friend"


async def test_feed_follows_friendships_blocks_deletions_and_visibility(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    reader, friend = await member(resources, "reader"), await member(resources, "friend")
    earlier = await post(client, friend, "friends")
    assert await feed_ids(client, reader) == []
    # A new friend's earlier posts appear.
    request = await client.post(
        f"{API}/friend-requests", json={"receiver_id": friend.id}, headers=reader.headers
    )
    await client.patch(
        f"{API}/friend-requests/{request.json()['id']}", json={"action": "accept"}, headers=friend.headers
    )
    assert await feed_ids(client, reader) == [earlier]
    hidden = await post(client, friend, "friends")
    await client.patch(f"{API}/posts/{hidden}", json={"visibility": "private"}, headers=friend.headers)
    assert await feed_ids(client, reader) == [earlier]
    await client.patch(f"{API}/posts/{hidden}", json={"visibility": "friends"}, headers=friend.headers)
    assert await feed_ids(client, reader) == [hidden, earlier]
    await client.delete(f"{API}/posts/{hidden}", headers=friend.headers)
    assert await feed_ids(client, reader) == [earlier]
    # An unfriended user's posts leave it.
    await client.delete(f"{API}/friends/{friend.id}", headers=reader.headers)
    assert await feed_ids(client, reader) == []


async def test_feed_pages_with_cursor_and_link(client: httpx.AsyncClient, resources: Resources) -> None:
    reader = await member(resources, "reader")
    ids = [await post(client, reader) for _ in range(7)]
    first = await client.get(f"{API}/feed?limit=3", headers=reader.headers)
    assert [item["id"] for item in first.json()["items"]] == ids[::-1][:3]
    assert 'rel="next"' in first.headers["link"]
    assert await feed_ids(client, reader, limit=3) == ids[::-1]
    assert (await client.get(f"{API}/feed?limit=101", headers=reader.headers)).status_code == 422
    assert (await client.get(f"{API}/feed?cursor=nonsense", headers=reader.headers)).status_code == 422


async def test_feed_query_count_does_not_grow_with_page_size(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    reader, friend = await member(resources, "reader"), await member(resources, "friend")
    await befriend(resources, reader, friend)
    for index in range(60):
        await post(client, reader if index % 2 else friend, "public")
        if index % 10 == 0:
            await client.post(f"{API}/posts", json={"content": "x"}, headers=friend.headers)
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(resources.engine.sync_engine, "before_cursor_execute", count)
    try:
        counts = []
        for limit in (5, 50):
            statements.clear()
            response = await client.get(f"{API}/feed?limit={limit}", headers=reader.headers)
            assert len(response.json()["items"]) == limit
            counts.append(len(statements))
    finally:
        event.remove(resources.engine.sync_engine, "before_cursor_execute", count)
    assert counts[0] == counts[1]
    # The session check and the page with everything it shows (+ BEGIN on some drivers).
    assert counts[0] <= 3


@pytest.mark.sqlite_only
@pytest.mark.parametrize("window", [0, 1, 3, 10])
async def test_sqlite_pages_are_the_same_whatever_the_walk_finds_in_its_window(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch, window: int
) -> None:
    # SQLite walks only the newest `FEED_WINDOW` posts for a page and takes the rest from
    # below the window: with strangers' posts between the feed's, every window size must
    # give the same pages as the feed's definition.
    monkeypatch.setattr(feed_repository, "FEED_WINDOW", window)
    reader, friend, stranger = [await member(resources, name) for name in ("reader", "friend", "stranger")]
    await befriend(resources, reader, friend)
    expected = []
    for index in range(12):
        author = (reader, friend, stranger, stranger)[index % 4]
        posted = await post(client, author, "public" if index % 3 else "friends")
        if author is not stranger:
            expected.append(posted)
        await post(client, stranger, "public")
    expected.reverse()
    for limit in (1, 2, 5, 100):
        assert await feed_ids(client, reader, limit=limit) == expected


@hypothesis_settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    limits=st.lists(st.integers(min_value=1, max_value=7), min_size=1, max_size=12), inserts=st.integers(0, 3)
)
async def test_walking_pages_while_others_post_never_repeats_or_skips(
    app: FastAPI, limits: list[int], inserts: int
) -> None:
    resources: Resources = app.state.resources
    suffix = uuid.uuid4().hex[:8]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        reader, friend = await member(resources, f"r{suffix}"), await member(resources, f"f{suffix}")
        await befriend(resources, reader, friend)
        existing = set()
        for index in range(15):
            existing.add(await post(client, reader if index % 3 else friend, "public"))
        seen: list[str] = []
        cursor = None
        for step in range(200):
            limit = limits[step % len(limits)]
            params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
            body = (await client.get(f"{API}/feed", params=params, headers=reader.headers)).json()
            seen.extend(item["id"] for item in body["items"])
            for _ in range(inserts):
                await post(client, friend, "friends", "meanwhile")
            cursor = body["next_cursor"]
            if cursor is None:
                break
    assert len(seen) == len(set(seen)), "a post was repeated"
    assert existing <= set(seen), "a post that existed when the walk began was skipped"


# --- both paths, compared -------------------------------------------------------------

needs_redis = pytest.mark.skipif(not redis_available(), reason="Redis is not reachable")


def _with_redis(settings: Settings, **changes: object) -> FastAPI:
    """An app on the test's database with Redis timelines and in-process jobs, on a job
    queue (and so a timeline epoch) of its own."""
    update = {
        "redis_url": REDIS_URL,
        "feed_timelines": True,
        "job_backend": "memory",
        "job_queue": f"kith:test:{uuid.uuid4().hex[:8]}",
    }
    return create_app(settings.model_copy(update=update | changes))


@pytest.fixture
async def redis_app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = _with_redis(settings, feed_timeline_size=50)
    async with application.router.lifespan_context(application):
        yield application


@needs_redis
async def test_redis_and_sql_paths_return_the_same_pages(app: FastAPI, redis_app: FastAPI) -> None:
    """One scenario, run on an app without Redis and on one with it, over one database."""
    sql = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sql")
    cached = httpx.AsyncClient(transport=httpx.ASGITransport(app=redis_app), base_url="http://redis")
    resources: Resources = redis_app.state.resources
    # Redis is shared by every test; these users are new, so their timelines are too.
    reader, friend, other = (
        await member(resources, "reader"),
        await member(resources, "friend"),
        await member(resources, "other"),
    )
    await befriend(resources, reader, friend)

    async def settle() -> None:
        await resources.jobs.wait_idle()

    async def compare(limit: int = 7) -> list[str]:
        await settle()
        pages = []
        for client in (sql, cached):
            ids: list[str] = []
            cursor = None
            while True:
                params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
                body = (await client.get(f"{API}/feed", params=params, headers=reader.headers)).json()
                ids.extend(item["id"] for item in body["items"])
                cursor = body["next_cursor"]
                if cursor is None:
                    break
            pages.append(ids)
        assert pages[0] == pages[1]
        return pages[0]

    async with sql, cached:
        # More posts than a timeline keeps (50): later pages come from the database.
        friends_posts = set()
        for index in range(70):
            author = friend if index % 2 else reader
            created = await post(cached, author, ("public", "friends", "private")[index % 3])
            if author is friend:
                friends_posts.add(created)
        await cached.get(f"{API}/feed", headers=reader.headers)  # the reader is active: timeline built
        assert len(await compare()) == 70 - 70 // 6  # friend's private posts are not shown
        fresh = await post(cached, friend, "friends")
        assert (await compare())[0] == fresh
        await cached.patch(f"{API}/posts/{fresh}", json={"visibility": "private"}, headers=friend.headers)
        assert fresh not in await compare()
        await cached.patch(f"{API}/posts/{fresh}", json={"visibility": "public"}, headers=friend.headers)
        assert (await compare())[0] == fresh
        await cached.delete(f"{API}/posts/{fresh}", headers=friend.headers)
        assert fresh not in await compare(limit=20)
        # A new friend's older posts appear on both paths.
        older = await post(cached, other, "friends")
        request = await cached.post(
            f"{API}/friend-requests", json={"receiver_id": other.id}, headers=reader.headers
        )
        await cached.patch(
            f"{API}/friend-requests/{request.json()['id']}", json={"action": "accept"}, headers=other.headers
        )
        assert older in await compare()
        await block(resources, reader, friend)
        remaining = await compare(limit=11)
        assert friends_posts.isdisjoint(remaining)
        assert older in remaining
        await cached.delete(f"{API}/friends/{other.id}", headers=reader.headers)
        mine_only = await compare(limit=100)
        assert older not in mine_only


@needs_redis
async def test_inactive_readers_are_skipped_by_fan_out(redis_app: FastAPI) -> None:
    resources: Resources = redis_app.state.resources
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=redis_app), base_url="http://redis"
    ) as client:
        reader, friend = await member(resources, "reader"), await member(resources, "friend")
        await befriend(resources, reader, friend)
        await post(client, friend)
        await resources.jobs.wait_idle()
        assert resources.redis is not None
        # Never read: no timeline was made for the reader.
        assert await resources.redis.exists(f"kith:tl:{reader.id}") == 0
        await client.get(f"{API}/feed", headers=reader.headers)
        assert await resources.redis.zcard(f"kith:tl:{reader.id}") == 1
        await post(client, friend)
        await resources.jobs.wait_idle()
        assert await resources.redis.zcard(f"kith:tl:{reader.id}") == 2


def _fan_out_jobs_queued() -> float:
    return float(JOBS_DISPATCHED.labels(job_name(feed_jobs.fan_out_post))._value.get())


@needs_redis
@pytest.mark.parametrize("in_request_max", [1000, 1, 0])
async def test_a_post_reaches_warm_timelines_in_its_request_or_by_a_job_past_the_limit(
    settings: Settings, in_request_max: int
) -> None:
    """Up to `KITH_FEED_PUSH_IN_REQUEST_MAX` friends, the request pushes its post itself
    after the commit: the reader's timeline holds it when the response arrives, and no job
    was queued. Past it, a job does the push: same timeline, and the request stays flat."""
    application = _with_redis(settings, feed_push_in_request_max=in_request_max)
    async with (
        application.router.lifespan_context(application),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://redis") as client,
    ):
        resources: Resources = application.state.resources
        assert resources.redis is not None
        reader, friend = await member(resources, "reader"), await member(resources, "friend")
        await befriend(resources, reader, friend)
        await client.get(f"{API}/feed", headers=reader.headers)  # the reader's timeline is warm
        await resources.jobs.wait_idle()
        queued = _fan_out_jobs_queued()
        new = await post(client, friend)
        in_request = await resources.redis.zrange(f"kith:tl:{reader.id}", 0, -1)
        await resources.jobs.wait_idle()
        # The friend's audience: themself and one friend, the reader.
        if in_request_max >= 1:
            assert new.encode() in in_request
            assert _fan_out_jobs_queued() == queued
        else:
            assert _fan_out_jobs_queued() == queued + 1
        assert await resources.redis.zrange(f"kith:tl:{reader.id}", 0, -1) == [new.encode()]
        assert await feed_ids(client, reader) == [new]


@needs_redis
async def test_with_timelines_off_redis_holds_no_timeline_and_old_ones_turn_cold(settings: Settings) -> None:
    """The default with Redis: a post pushes nothing and the feed is the SQL page. Timelines
    warmed while they were on lack the posts made since, so an instance that starts with
    them off makes every one cold: turned back on, they are rebuilt, never trusted."""
    queue = f"kith:test:{uuid.uuid4().hex[:8]}"  # and so an epoch of this test's own
    with_timelines = _with_redis(settings, job_queue=queue)
    async with (
        with_timelines.router.lifespan_context(with_timelines),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=with_timelines), base_url="http://on") as on,
    ):
        resources: Resources = with_timelines.state.resources
        reader, friend = await member(resources, "reader"), await member(resources, "friend")
        await befriend(resources, reader, friend)
        first = await post(on, friend)
        assert await feed_ids(on, reader) == [first]
        store = feed_jobs.timelines(resources)
        assert store is not None and await store.is_warm(reader.id)

        without = _with_redis(settings, job_queue=queue, feed_timelines=False)
        async with (
            without.router.lifespan_context(without),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=without), base_url="http://off") as off,
        ):
            assert feed_jobs.timelines(without.state.resources) is None
            queued = _fan_out_jobs_queued()
            second = await post(off, friend)
            assert await feed_ids(off, reader) == [second, first]
            assert _fan_out_jobs_queued() == queued
            assert await store.older_than(reader.id, None, 100) == [first], "nothing pushed"
        # The instance that started with timelines off made the warm one cold.
        assert not await store.is_warm(reader.id)
        assert await feed_ids(on, reader) == [second, first]


@needs_redis
async def test_timeline_writes_that_never_reached_redis_leave_no_gap(
    app: FastAPI, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fan-out and a new friendship's drop fail, the job is not tried again: once the
    repair has run, the reader's timeline in Redis equals the SQL feed (docs/reliability.md)."""
    # Nothing retries the lost writes: the repair must stand in for them.
    application = _with_redis(settings, job_max_attempts=1, redis_retry_seconds=0.05)
    sql = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sql")
    cached = httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://redis")
    async with application.router.lifespan_context(application), sql, cached:
        resources: Resources = application.state.resources
        reader, friend, other = [await member(resources, name) for name in ("reader", "friend", "other")]
        await befriend(resources, reader, friend)
        first = await post(cached, friend)
        others = await post(cached, other, "public")  # not the reader's friend yet
        second = await post(cached, friend)
        await resources.jobs.wait_idle()
        assert await feed_ids(cached, reader) == [second, first]  # the timeline is warm

        async def unreachable(*args: object, **kwargs: object) -> None:
            raise RedisConnectionError("injected")

        with monkeypatch.context() as patched:
            patched.setattr(TimelineStore, "push", unreachable)
            patched.setattr(TimelineStore, "forget", unreachable)
            request = await cached.post(
                f"{API}/friend-requests", json={"receiver_id": other.id}, headers=reader.headers
            )
            accepted = await cached.patch(
                f"{API}/friend-requests/{request.json()['id']}",
                json={"action": "accept"},
                headers=other.headers,
            )
            assert accepted.status_code == 200, accepted.text
            third = await post(cached, friend)
            await resources.jobs.wait_idle()

        repair = feed_jobs.repair(resources)
        assert repair is not None
        async with asyncio.timeout(10):
            await repair.settled()
        # The breaker (0.05 s) closed before the repair's first try (0.1 s): reads use Redis.
        assert not resources.redis_breaker.open
        expected = [third, second, others, first]
        assert await feed_ids(sql, reader) == expected
        assert await feed_ids(cached, reader) == expected
        # Served from Redis: the timeline was rebuilt, and holds the whole feed.
        store = feed_jobs.timelines(resources)
        assert store is not None
        assert await store.is_warm(reader.id)
        assert await store.older_than(reader.id, None, 100) == expected
    await asyncio.sleep(0)


@needs_redis
async def test_feed_answers_from_sql_when_redis_is_down(settings: Settings) -> None:
    down = {"redis_url": "redis://127.0.0.1:1/0", "feed_timelines": True}
    application = create_app(settings.model_copy(update=down))
    async with application.router.lifespan_context(application):
        resources: Resources = application.state.resources
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://down") as client:
            reader = await member(resources, "reader")
            mine = await post(client, reader)
            await resources.jobs.wait_idle()
            assert await feed_ids(client, reader) == [mine]
    await asyncio.sleep(0)
