"""Every query on notifications."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, delete, func, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kith.db.models import Block, Notification, NotificationType, User

# A block hides each user from the other: what either did before it stays out of the
# other's notifications (and their unread count) for as long as the block lasts.
_NOT_BLOCKED = ~Block.either_way(Notification.user_id, Notification.actor_id)


def of_user(user_id: str, *, unread_only: bool) -> Select[Notification]:
    statement = select(Notification).where(Notification.user_id == user_id, _NOT_BLOCKED)
    if unread_only:
        statement = statement.where(Notification.read_at.is_(None))
    return statement


async def unread_count(session: AsyncSession, user_id: str) -> int:
    count = await session.scalar(
        select(func.count()).where(
            Notification.user_id == user_id, Notification.read_at.is_(None), _NOT_BLOCKED
        )
    )
    return int(count or 0)


_LIKE_COLUMNS = ("id", "created_at", "user_id", "type", "actor_id", "post_id")


async def add_unless_unread_like(session: AsyncSession, notification: Notification) -> bool:
    """Insert a `post_liked` notification unless the same liker's like of the same post is
    still unread: one statement, whether or not it inserts. True if it did."""
    table = Notification.__table__
    values = [literal(getattr(notification, name), table.c[name].type) for name in _LIKE_COLUMNS]
    unread = (
        select(Notification.id)
        .where(
            Notification.user_id == notification.user_id,
            Notification.actor_id == notification.actor_id,
            Notification.post_id == notification.post_id,
            Notification.type == NotificationType.post_liked,
            Notification.read_at.is_(None),
        )
        .exists()
    )
    result = await session.execute(
        insert(Notification).from_select(_LIKE_COLUMNS, select(*values).where(~unread))
    )
    return bool(getattr(result, "rowcount", 0) == 1)


async def delete_unread_likes(session: AsyncSession, actor_id: str, post_id: str) -> None:
    await session.execute(
        delete(Notification).where(
            Notification.actor_id == actor_id,
            Notification.post_id == post_id,
            Notification.type == NotificationType.post_liked,
            Notification.read_at.is_(None),
        )
    )


async def mark_read(session: AsyncSession, user_id: str, ids: Sequence[str] | None, now: datetime) -> None:
    statement = update(Notification).where(Notification.user_id == user_id, Notification.read_at.is_(None))
    if ids is not None:
        statement = statement.where(Notification.id.in_(ids))
    await session.execute(statement.values(read_at=now))


async def between(
    session: AsyncSession,
    user_id: str,
    *,
    below: str | None,
    above: str | None,
    limit: int,
    from_above: bool,
    types: Sequence[NotificationType] | None,
    ids: Sequence[str] | None = None,
) -> list[Notification]:
    """Up to `limit` of the user's notifications with ids between `above` and `below`, newest
    first: the newest of them, or with `from_above` those right above `above`."""
    statement = of_user(user_id, unread_only=False)
    if below is not None:
        statement = statement.where(Notification.id < below)
    if above is not None:
        statement = statement.where(Notification.id > above)
    if types is not None:
        statement = statement.where(Notification.type.in_(types))
    if ids is not None:
        statement = statement.where(Notification.id.in_(ids))
    order = Notification.id.asc() if from_above else Notification.id.desc()
    found = list((await session.scalars(statement.order_by(order).limit(limit))).all())
    return found[::-1] if from_above else found


async def delete_of_user(session: AsyncSession, user_id: str, ids: Sequence[str] | None) -> int:
    statement = delete(Notification).where(Notification.user_id == user_id)
    if ids is not None:
        statement = statement.where(Notification.id.in_(ids))
    result = await session.execute(statement.execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)


async def actors(session: AsyncSession, actor_ids: Sequence[str]) -> dict[str, User]:
    if not actor_ids:
        return {}
    rows = await session.scalars(select(User).where(User.id.in_(set(actor_ids))))
    return {user.id: user for user in rows}
