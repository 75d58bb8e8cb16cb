"""The Redis timelines' push (kith.feed.timeline): only warm timelines take a post, a full
timeline takes nothing older than what it holds, every timeline stays at its size, and an
audience larger than one script call's batch is served whole. And their repair: a new epoch
makes every timeline cold, and a process whose write failed brings one in once Redis
answers (docs/reliability.md)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from kith.feed import timeline
from kith.feed.timeline import TimelineRepair, TimelineStore
from tests.conftest import REDIS_URL, redis_available

pytestmark = pytest.mark.skipif(not redis_available(), reason="Redis is not reachable")


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    try:
        yield client
    finally:
        await client.aclose()


def readers(count: int) -> list[str]:
    return [f"test-{uuid.uuid4()}" for _ in range(count)]


async def test_only_warm_timelines_take_a_post_and_each_stays_at_its_size(redis: Redis) -> None:
    store = TimelineStore(redis, size=3, active_seconds=60)
    warm, cold = readers(2), readers(2)
    for user_id in warm:
        await store.start_rebuild(user_id)
    for n in range(1, 6):
        assert await store.push(f"post-{n}", [*warm, *cold]) == 2
    for user_id in warm:
        assert await store.older_than(user_id, None, 10) == ["post-5", "post-4", "post-3"]
    for user_id in cold:
        assert await store.older_than(user_id, None, 10) == []
    await redis.delete(*(key for user_id in warm + cold for key in store._keys(user_id)))


async def test_a_full_timeline_takes_nothing_older_than_what_it_holds(redis: Redis) -> None:
    store = TimelineStore(redis, size=2, active_seconds=60)
    (user_id,) = readers(1)
    await store.start_rebuild(user_id)
    await store.rebuild(user_id, ["p-08", "p-09"])
    assert await store.push("p-07", [user_id]) == 0
    assert await store.push("p-10", [user_id]) == 1
    assert await store.older_than(user_id, None, 10) == ["p-10", "p-09"]
    await redis.delete(*store._keys(user_id))


async def test_an_audience_larger_than_a_batch_is_served_whole(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(timeline, "PUSH_BATCH", 3)
    store = TimelineStore(redis, size=5, active_seconds=60)
    audience = readers(8)
    for user_id in audience[::2]:
        await store.start_rebuild(user_id)
    assert await store.push("post-1", audience) == 4
    for user_id in audience[::2]:
        assert await store.older_than(user_id, None, 5) == ["post-1"]
    await redis.delete(*(key for user_id in audience for key in store._keys(user_id)))


def isolated(redis: Redis, size: int = 5) -> TimelineStore:
    """A store with an epoch of its own: other tests on this Redis never change it."""
    return TimelineStore(redis, size=size, active_seconds=60, epoch_key=f"test-epoch:{uuid.uuid4()}")


async def test_a_new_epoch_makes_every_timeline_cold_until_it_is_rebuilt(redis: Redis) -> None:
    store = isolated(redis)
    first, second = readers(2)
    for user_id in (first, second):
        await store.start_rebuild(user_id)
        assert await store.is_warm(user_id)
    await store.forget_all()
    assert not await store.is_warm(first)
    assert not await store.is_warm(second)
    # Pushes still land (the marker exists), but a cold timeline is emptied when rebuilt.
    assert await store.push("post-1", [first]) == 1
    await store.start_rebuild(first)
    assert await store.is_warm(first)
    assert await store.older_than(first, None, 10) == []
    assert not await store.is_warm(second)
    await redis.delete(store.epoch_key, *(key for user_id in (first, second) for key in store._keys(user_id)))


async def test_a_lost_epoch_trusts_no_timeline_and_a_rebuild_starts_a_new_one(redis: Redis) -> None:
    store = isolated(redis)
    (user_id,) = readers(1)
    await store.start_rebuild(user_id)
    old = await redis.get(store.epoch_key)
    await redis.delete(store.epoch_key)
    assert not await store.is_warm(user_id)
    await store.start_rebuild(user_id)
    assert await store.is_warm(user_id)
    assert await redis.get(store.epoch_key) not in (None, old)
    await redis.delete(store.epoch_key, *store._keys(user_id))


async def test_the_repair_retries_until_redis_answers_and_again_after_a_later_failure(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = isolated(redis)
    (user_id,) = readers(1)
    await store.start_rebuild(user_id)
    repair = TimelineRepair(store, retry_seconds=0)
    attempts: list[str] = []
    forget_all = store.forget_all

    async def flaky() -> None:
        attempts.append("tried")
        if len(attempts) <= 2:
            raise RedisConnectionError("injected")
        if len(attempts) == 3:
            repair.needed()  # a write fails while the repair runs: it must run once more
        await forget_all()

    monkeypatch.setattr(store, "forget_all", flaky)
    repair.needed()
    repair.needed()
    assert repair.pending
    async with asyncio.timeout(5):
        await repair.settled()
    assert len(attempts) == 4
    assert not await store.is_warm(user_id)
    await redis.delete(store.epoch_key, *store._keys(user_id))
