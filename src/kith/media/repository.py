"""Every query on media rows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kith.core.pagination import CursorParams
from kith.db.models import Media, User


async def owned_unattached(session: AsyncSession, owner_id: str, media_ids: Sequence[str]) -> list[Media]:
    rows = await session.scalars(
        select(Media).where(Media.id.in_(media_ids), Media.owner_id == owner_id, Media.attached_at.is_(None))
    )
    return list(rows.all())


# Every page of posts runs this: built once, run with values (see kith.feed.repository).
_OF_POSTS = (
    select(Media)
    .where(Media.post_id.in_(bindparam("post_ids", expanding=True)))
    .order_by(Media.post_id, Media.position)
)


async def of_posts(session: AsyncSession, post_ids: Sequence[str]) -> list[Media]:
    rows = await session.scalars(_OF_POSTS, {"post_ids": list(post_ids)})
    return list(rows.all())


async def delete_of_post(session: AsyncSession, post_id: str) -> list[str]:
    """Delete the post's media rows; returns their storage keys."""
    keys = await session.scalars(delete(Media).where(Media.post_id == post_id).returning(Media.storage_key))
    return list(keys.all())


async def owned(session: AsyncSession, owner_id: str, media_id: str) -> Media | None:
    media: Media | None = await session.scalar(
        select(Media).where(Media.id == media_id, Media.owner_id == owner_id)
    )
    return media


async def release_avatar(session: AsyncSession, owner_id: str, storage_key: str) -> None:
    """Mark a former avatar unattached, so the clean-up removes it."""
    await session.execute(
        update(Media)
        .where(Media.owner_id == owner_id, Media.storage_key == storage_key, Media.post_id.is_(None))
        .values(attached_at=None)
    )


async def delete_unattached_before(session: AsyncSession, cutoff: datetime, limit: int) -> list[str]:
    """Delete up to `limit` uploads left unattached since before `cutoff`; their storage keys.

    The conditions are checked again by the DELETE itself, so an upload attached to a
    post meanwhile is kept.
    """
    stale = (
        select(Media.id)
        .where(Media.attached_at.is_(None), Media.created_at < cutoff)
        .order_by(Media.created_at)
        .limit(limit)
    )
    deleted = await session.scalars(
        delete(Media)
        .where(Media.id.in_(stale), Media.attached_at.is_(None), Media.created_at < cutoff)
        .returning(Media.storage_key)
    )
    return list(deleted.all())


async def known_keys(session: AsyncSession, storage_keys: Sequence[str]) -> set[str]:
    """Those of `storage_keys` that a media row or a user's avatar refers to."""
    if not storage_keys:
        return set()
    media_keys = await session.scalars(select(Media.storage_key).where(Media.storage_key.in_(storage_keys)))
    avatar_keys = await session.scalars(select(User.avatar_key).where(User.avatar_key.in_(storage_keys)))
    return {key for key in [*media_keys.all(), *avatar_keys.all()] if key is not None}


async def storage_keys_of_owner(session: AsyncSession, owner_id: str) -> list[str]:
    keys = await session.scalars(select(Media.storage_key).where(Media.owner_id == owner_id))
    return list(keys.all())


async def page_of_uploads(
    session: AsyncSession, owner_id: str, params: CursorParams
) -> tuple[list[Media], str | None]:
    """The owner's uploads, oldest first."""
    return await params.fetch(
        session, select(Media).where(Media.owner_id == owner_id), Media.id, descending=False
    )
