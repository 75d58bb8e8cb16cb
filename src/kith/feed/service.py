"""Feed rules: one page of the reader's feed, from Redis timelines or from SQL.

Embedded default: fan-out on read, one keyset query per page. With Redis: the page's
candidate ids come from the reader's timeline; each candidate is re-checked in SQL, and
pages beyond the timeline continue from SQL, so both paths return the same items.
"""

from __future__ import annotations

import structlog
from redis.exceptions import RedisError
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from kith.core.breaker import Breaker
from kith.core.pagination import CursorParams, encode_cursor
from kith.db.models import Post, User
from kith.feed import repository
from kith.feed.timeline import TimelineStore
from kith.posts.schemas import PostView

log = structlog.get_logger("kith.feed")


def feed_posts(reader: User) -> Select[Post, User]:
    """Every post of the reader's feed with its author, for callers that page it themselves
    (the Mastodon-compatible home timeline)."""
    return repository.feed_posts(reader.id)


async def feed_page(
    session: AsyncSession,
    store: TimelineStore | None,
    breaker: Breaker,
    reader: User,
    params: CursorParams,
) -> tuple[list[PostView], str | None]:
    """One page of the reader's feed, newest first, with full post objects.

    `store` is None without Redis; `breaker` is open while Redis is failing, and then
    the page comes from SQL at once: the same items.
    """
    wanted = params.limit + 1
    items: list[PostView] | None = None
    if store is not None and not breaker.open:
        try:
            ids = await _from_timeline(session, store, reader, params.after, wanted)
        except RedisError as exc:
            breaker.failed()
            log.warning("feed_timeline_unavailable", error=type(exc).__name__)
        else:
            items = await repository.views_of(session, reader, ids)
    if items is None:
        items = await repository.page_views(session, reader, params.after, wanted)
    next_cursor = None
    if len(items) > params.limit:
        items = items[: params.limit]
        next_cursor = encode_cursor(items[-1].id)
    return items, next_cursor


async def _from_timeline(
    session: AsyncSession, store: TimelineStore, reader: User, before: str | None, wanted: int
) -> list[str]:
    """The ids of the page: candidates from the timeline, each re-checked in SQL."""
    if not await store.is_warm(reader.id):
        await store.start_rebuild(reader.id)
        await store.rebuild(reader.id, await repository.newest_ids(session, reader, store.size))
    found: list[str] = []
    position = before
    while len(found) < wanted:
        # Ask for a few more than needed: some candidates may no longer qualify.
        batch = (wanted - len(found)) * 2
        ids = await store.older_than(reader.id, position, batch)
        if ids:
            found.extend(await repository.among(session, reader, ids))
            position = ids[-1]
        if len(found) >= wanted:
            break
        if len(ids) < batch:
            # The timeline is exhausted: the rest comes from the database.
            found.extend(await repository.page_ids(session, reader, position, wanted - len(found)))
            break
    return found[:wanted]
