"""Background work of the Redis feed path: fan-out on write, invalidation."""

from __future__ import annotations

from kith.core.jobs import job
from kith.feed import repository
from kith.feed.timeline import TimelineStore
from kith.runtime.resources import Resources
from kith.runtime.transaction import unit_of_work


def timelines(resources: Resources) -> TimelineStore | None:
    if resources.redis is None:
        return None
    settings = resources.settings
    return TimelineStore(
        resources.redis,
        size=settings.feed_timeline_size,
        active_seconds=settings.feed_active_days * 86_400,
    )


@job
async def fan_out_post(resources: Resources, *, post_id: str, author_id: str) -> None:
    """Push a post to the warm timelines of its author and the author's friends."""
    store = timelines(resources)
    if store is None:
        return
    async with unit_of_work(resources, write=False) as session:
        audience = await repository.audience(session, author_id)
    await store.push(post_id, audience)


@job
async def forget_timelines(resources: Resources, *, user_ids: list[str]) -> None:
    """Drop timelines that must be rebuilt (a friendship began: older posts now belong)."""
    store = timelines(resources)
    if store is not None:
        await store.forget(user_ids)
