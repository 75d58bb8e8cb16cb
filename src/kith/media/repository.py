"""Every query on media rows."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kith.db.models import Media


async def owned_unattached(session: AsyncSession, owner_id: str, media_ids: Sequence[str]) -> list[Media]:
    rows = await session.scalars(
        select(Media).where(Media.id.in_(media_ids), Media.owner_id == owner_id, Media.attached_at.is_(None))
    )
    return list(rows.all())


async def of_posts(session: AsyncSession, post_ids: Sequence[str]) -> list[Media]:
    rows = await session.scalars(
        select(Media).where(Media.post_id.in_(post_ids)).order_by(Media.post_id, Media.position)
    )
    return list(rows.all())


async def release_post(session: AsyncSession, post_id: str) -> None:
    await session.execute(
        update(Media).where(Media.post_id == post_id).values(post_id=None, attached_at=None)
    )
