"""Every query on exports, and the counts that measure an export's progress."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kith.db.models import (
    Block,
    Comment,
    Export,
    ExportStatus,
    Friendship,
    Like,
    Media,
    Notification,
    Post,
    User,
)

BUILDING = (ExportStatus.queued, ExportStatus.running)


def of_user(user_id: str) -> Select[Export]:
    return select(Export).where(Export.user_id == user_id)


async def get(session: AsyncSession, export_id: str) -> Export | None:
    return await session.get(Export, export_id)


async def owned(session: AsyncSession, user_id: str, export_id: str) -> Export | None:
    return await session.scalar(of_user(user_id).where(Export.id == export_id))


async def lock_account(session: AsyncSession, user_id: str) -> None:
    """Hold the user's row until commit (PostgreSQL; SQLite's writes hold the database's
    lock already), so two requests of one user cannot both pass the daily limit."""
    await session.execute(select(User.id).where(User.id == user_id).with_for_update())


async def latest_counting(session: AsyncSession, user_id: str, since: datetime) -> Export | None:
    """The user's newest export made after `since` that counts against the daily limit
    (a failed one does not)."""
    return await session.scalar(
        of_user(user_id)
        .where(Export.created_at > since, Export.status != ExportStatus.failed)
        .order_by(Export.created_at.desc())
        .limit(1)
    )


async def redeem_link(session: AsyncSession, link_hash: str, now: datetime) -> Export | None:
    """Spend a download link: the export it opens, once. Atomic, so two requests racing
    with one link get one archive between them."""
    return await session.scalar(
        update(Export)
        .where(
            Export.link_hash == link_hash,
            Export.link_expires_at > now,
            Export.status == ExportStatus.ready,
            Export.expires_at > now,
        )
        .values(link_hash=None, link_expires_at=None)
        .returning(Export)
        .execution_options(synchronize_session=False)
    )


async def expire_ready(session: AsyncSession, now: datetime) -> list[str]:
    """Mark the ready exports past their expiry `expired`; returns their ids."""
    ids = await session.scalars(
        update(Export)
        .where(Export.status == ExportStatus.ready, Export.expires_at <= now)
        .values(status=ExportStatus.expired, link_hash=None, link_expires_at=None)
        .returning(Export.id)
        .execution_options(synchronize_session=False)
    )
    return list(ids.all())


async def fail_stale(session: AsyncSession, before: datetime, now: datetime) -> list[str]:
    """Mark exports still queued or running since before `before` failed (`interrupted`)."""
    ids = await session.scalars(
        update(Export)
        .where(Export.status.in_(BUILDING), Export.created_at < before)
        .values(status=ExportStatus.failed, error="interrupted", finished_at=now)
        .returning(Export.id)
        .execution_options(synchronize_session=False)
    )
    return list(ids.all())


async def ids_with_files(session: AsyncSession, export_ids: list[str]) -> set[str]:
    """Those of `export_ids` whose archive may exist: ready, or still being built."""
    if not export_ids:
        return set()
    found = await session.scalars(
        select(Export.id).where(
            Export.id.in_(export_ids),
            or_(Export.status == ExportStatus.ready, Export.status.in_(BUILDING)),
        )
    )
    return set(found.all())


async def ids_of_user(session: AsyncSession, user_id: str) -> list[str]:
    return list((await session.scalars(select(Export.id).where(Export.user_id == user_id))).all())


async def _count(session: AsyncSession, statement: Select[int]) -> int:
    return int(await session.scalar(statement) or 0)


async def item_counts(session: AsyncSession, user_id: str) -> int:
    """About how many items an export of the user writes (rows and files), to measure its
    progress by. An upper bound: the archive leaves out what the user may no longer read."""
    statements = [
        select(func.count()).select_from(Post).where(Post.author_id == user_id),
        select(func.count()).select_from(Comment).where(Comment.author_id == user_id),
        select(func.count()).select_from(Like).where(Like.user_id == user_id),
        select(func.count()).select_from(Friendship).where(Friendship.user_id == user_id),
        select(func.count()).select_from(Block).where(Block.blocker_id == user_id),
        select(func.count()).select_from(Notification).where(Notification.user_id == user_id),
        select(func.count()).select_from(Media).where(Media.owner_id == user_id),
    ]
    total = 0
    for statement in statements:
        total += await _count(session, statement)
    return total
