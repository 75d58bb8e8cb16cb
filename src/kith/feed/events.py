"""What other domains tell the feed when something changes (Redis path only)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from kith.core.jobs import enqueue
from kith.db.models import Post
from kith.feed import jobs
from kith.runtime.resources import Resources


def post_published(session: AsyncSession, resources: Resources, post: Post) -> None:
    """A new post, or one whose audience changed: push it to warm timelines after commit.

    Timelines hold candidates only and every read re-checks them in SQL, so a post
    whose audience shrank needs nothing; one whose audience grew must be in them.
    """
    if resources.redis is not None:
        enqueue(session, jobs.fan_out_post, post_id=post.id, author_id=post.author_id)


def friendship_started(session: AsyncSession, resources: Resources, user_ids: list[str]) -> None:
    """New friends: their timelines lack each other's older posts; rebuild them on next read."""
    if resources.redis is not None:
        enqueue(session, jobs.forget_timelines, user_ids=user_ids)
