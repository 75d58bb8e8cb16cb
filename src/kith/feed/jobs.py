"""Background work of the Redis feed path: fan-out on write, invalidation.

Only with `KITH_FEED_TIMELINES` on (and Redis configured); off, the default, every feed
page is the SQL query and nothing here runs (docs/decisions.md#feed says why).

A timeline write that cannot reach Redis is not retried: it hands the timelines to this
process's `TimelineRepair`, which makes every timeline cold once Redis answers, so none is
served without the post or friendship the write was for (docs/reliability.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from weakref import WeakKeyDictionary

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from kith.core.jobs import job
from kith.feed import repository
from kith.feed.timeline import TimelineRepair, TimelineStore
from kith.runtime.resources import Resources
from kith.runtime.transaction import unit_of_work

log = structlog.get_logger("kith.feed")

# One store and one repair per process's Redis client: the repair's state is the process's.
_stores: WeakKeyDictionary[Redis, tuple[TimelineStore, TimelineRepair]] = WeakKeyDictionary()


def _store_and_repair(resources: Resources, redis: Redis) -> tuple[TimelineStore, TimelineRepair]:
    held = _stores.get(redis)
    if held is None:
        settings = resources.settings
        store = TimelineStore(
            redis,
            size=settings.feed_timeline_size,
            active_seconds=settings.feed_active_days * 86_400,
            # Instances that share a Redis share the job queue's name, and so the epoch.
            epoch_key=f"{settings.job_queue}:timelines:epoch",
        )
        held = _stores[redis] = (store, TimelineRepair(store, settings.redis_retry_seconds))
    return held


def _redis(resources: Resources) -> Redis | None:
    """The Redis that holds the timelines, None when there are none."""
    return resources.redis if resources.settings.feed_timelines else None


def timelines(resources: Resources) -> TimelineStore | None:
    redis = _redis(resources)
    return None if redis is None else _store_and_repair(resources, redis)[0]


def repair(resources: Resources) -> TimelineRepair | None:
    redis = _redis(resources)
    return None if redis is None else _store_and_repair(resources, redis)[1]


async def forget_unless_kept(resources: Resources) -> None:
    """At startup with timelines off and Redis configured: make every timeline cold.

    Timelines warmed while they were on lack every post published since they were turned
    off, and would be trusted again, until they expire, should they be turned back on. A
    new epoch (one SET) makes them all cold; nothing warms one while timelines are off."""
    if resources.redis is None or resources.settings.feed_timelines:
        return
    store, fallback = _store_and_repair(resources, resources.redis)
    # Redis away: the instance starts all the same, and the repair sets the epoch once it answers.
    await _write_or_repair(resources, fallback, "forget_timelines", store.forget_all)


async def _write_or_repair(
    resources: Resources, fallback: TimelineRepair, name: str, write: Callable[[], Awaitable[object]]
) -> None:
    """Run a timeline write; if it cannot complete, every timeline is repaired instead."""
    breaker = resources.redis_breaker
    if breaker.open:
        # Redis failed a moment ago: skip it at once, as the other Redis users do.
        fallback.needed()
        return
    try:
        await write()
    except RedisError as exc:
        breaker.failed()
        fallback.needed()
        log.warning("feed_timeline_write_failed", job=name, error=type(exc).__name__)
    except Exception:
        # The database, say: retried by the job runner, and repaired should it give up.
        fallback.needed()
        raise


async def push_post(resources: Resources, post_id: str, audience: list[str]) -> None:
    """Push a post to the warm timelines among `audience` (its author and their friends)."""
    redis = _redis(resources)
    if redis is None:
        return
    store, fallback = _store_and_repair(resources, redis)
    await _write_or_repair(resources, fallback, "fan_out_post", lambda: store.push(post_id, audience))


@job
async def fan_out_post(resources: Resources, *, post_id: str, author_id: str) -> None:
    """Push a post to the warm timelines of its author and the author's friends: for an
    audience too large to push to in the request (`kith.feed.subscriptions`)."""
    redis = _redis(resources)
    if redis is None:
        return
    store, fallback = _store_and_repair(resources, redis)

    async def push() -> None:
        async with unit_of_work(resources, write=False) as session:
            audience = await repository.audience(session, author_id)
        await store.push(post_id, audience)

    await _write_or_repair(resources, fallback, "fan_out_post", push)


async def drop_timelines(resources: Resources, user_ids: list[str]) -> None:
    """Drop timelines that must be rebuilt (a friendship began: older posts now belong)."""
    redis = _redis(resources)
    if redis is None:
        return
    store, fallback = _store_and_repair(resources, redis)
    await _write_or_repair(resources, fallback, "forget_timelines", lambda: store.forget(user_ids))


@job
async def forget_timelines(resources: Resources, *, user_ids: list[str]) -> None:
    """`drop_timelines` as a job: kept for jobs an earlier version queued (the request now
    drops the timelines itself, right after its commit)."""
    await drop_timelines(resources, user_ids)
