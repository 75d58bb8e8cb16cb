"""Notification rules: who is told what, in the same transaction as the action."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from kith.auth.schemas import UserSummary
from kith.core.ids import new_id
from kith.core.pagination import CursorParams
from kith.core.realtime import publish_after_commit
from kith.db.base import utcnow
from kith.db.models import Notification, NotificationType, User
from kith.notifications import repository
from kith.notifications.schemas import NotificationView

# A live event that tells a user's open streams to send their unread count again.
UNREAD_CHANGED = "_unread_changed"


async def notify(
    session: AsyncSession,
    *,
    recipient_id: str,
    actor: User,
    type: NotificationType,
    post_id: str | None = None,
    comment_id: str | None = None,
    friend_request_id: str | None = None,
) -> Notification | None:
    """Record a notification and push it to the recipient's open streams after commit.

    Nobody is notified of their own actions. A like leaves at most one unread
    `post_liked` per liker and post, however often it is toggled.
    """
    if recipient_id == actor.id:
        return None
    notification = Notification(
        id=new_id(),
        created_at=utcnow(),
        user_id=recipient_id,
        type=type,
        actor_id=actor.id,
        post_id=post_id,
        comment_id=comment_id,
        friend_request_id=friend_request_id,
    )
    if type is NotificationType.post_liked:
        assert post_id is not None
        if not await repository.add_unless_unread_like(session, notification):
            return None
    else:
        session.add(notification)
        await session.flush()
    view = _view(notification, actor)
    publish_after_commit(
        session,
        recipient_id,
        {"event": "notification", "id": notification.id, "data": view.model_dump(mode="json")},
    )
    await _push_unread_count(session, recipient_id)
    return notification


async def withdraw_like(session: AsyncSession, actor_id: str, post_id: str) -> None:
    """An unlike takes back the unread `post_liked` it caused."""
    await repository.delete_unread_likes(session, actor_id, post_id)


async def list_notifications(
    session: AsyncSession, user: User, params: CursorParams, *, unread_only: bool
) -> tuple[list[NotificationView], str | None]:
    rows, next_cursor = await params.fetch(
        session, repository.of_user(user.id, unread_only=unread_only), Notification.id
    )
    actors = await repository.actors(session, [row.actor_id for row in rows])
    return [_view(row, actors[row.actor_id]) for row in rows], next_cursor


async def notifications_between(
    session: AsyncSession,
    user: User,
    *,
    below: str | None,
    above: str | None,
    limit: int,
    from_above: bool = False,
    types: Sequence[NotificationType] | None = None,
    ids: Sequence[str] | None = None,
) -> list[tuple[Notification, User]]:
    """A keyset window of the user's notifications (the Mastodon-compatible list), newest
    first, each with its actor; a block hides them as in `list_notifications`."""
    rows = await repository.between(
        session, user.id, below=below, above=above, limit=limit, from_above=from_above, types=types, ids=ids
    )
    actors = await repository.actors(session, [row.actor_id for row in rows])
    return [(row, actors[row.actor_id]) for row in rows]


async def dismiss(session: AsyncSession, user: User, ids: Sequence[str] | None) -> int:
    """Delete some of the user's notifications (only their own), or all of them."""
    deleted = await repository.delete_of_user(session, user.id, ids)
    if deleted:
        await _push_unread_count(session, user.id)
    return deleted


async def unread_count(session: AsyncSession, user: User) -> int:
    return await repository.unread_count(session, user.id)


async def mark_read(session: AsyncSession, user: User, ids: Sequence[str] | None, *, now: datetime) -> None:
    """Mark some (only the caller's own; other ids are ignored) or all notifications read."""
    await repository.mark_read(session, user.id, ids, now)
    await _push_unread_count(session, user.id)


async def _push_unread_count(session: AsyncSession, user_id: str) -> None:
    # The open streams count for themselves when this arrives (kith.notifications.stream):
    # a write costs no count for a user who is not listening.
    publish_after_commit(session, user_id, {"event": UNREAD_CHANGED})


def _view(notification: Notification, actor: User) -> NotificationView:
    return NotificationView(
        id=notification.id,
        type=notification.type,
        actor=UserSummary.model_validate(actor),
        post_id=notification.post_id,
        comment_id=notification.comment_id,
        friend_request_id=notification.friend_request_id,
        created_at=notification.created_at,
        read=notification.read_at is not None,
    )
