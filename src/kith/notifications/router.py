"""Routes of notifications (docs/api.md#notifications-and-the-live-stream)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from kith.auth.dependencies import CurrentUser
from kith.core.pagination import CursorPage
from kith.http.deps import Now
from kith.http.errors import problem_responses
from kith.http.pagination import CursorDep
from kith.http.session import DbSession
from kith.notifications import service
from kith.notifications.schemas import MarkRead, NotificationView, UnreadCount

router = APIRouter(prefix="/notifications", tags=["notifications"])


@router.get(
    "",
    operation_id="listNotifications",
    response_model=CursorPage[NotificationView],
    responses=problem_responses(401, 422),
)
async def list_notifications(
    user: CurrentUser,
    session: DbSession,
    page: CursorDep,
    unread_only: Annotated[bool, Query(description="Only notifications not yet read.")] = False,
) -> object:
    """The caller's notifications, newest first.

    A client that reconnects to the stream fetches what it missed here: every live
    event carries the notification's `id`, and this list is ordered by it.
    """
    items, next_cursor = await service.list_notifications(session, user, page.params, unread_only=unread_only)
    return page.page(items, next_cursor)


@router.get(
    "/unread-count",
    operation_id="getUnreadCount",
    response_model=UnreadCount,
    responses=problem_responses(401),
)
async def unread_count(user: CurrentUser, session: DbSession) -> UnreadCount:
    """How many of the caller's notifications are unread."""
    return UnreadCount(count=await service.unread_count(session, user))


@router.post(
    "/read",
    operation_id="markNotificationsRead",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 422),
)
async def mark_read(data: MarkRead, user: CurrentUser, session: DbSession, now: Now) -> None:
    """Mark notifications read: `{"ids": [...]}` (ids that are not the caller's are
    ignored) or `{"all": true}`. Open streams get the new `unread_count`."""
    await service.mark_read(session, user, None if data.all else data.ids, now=now)
