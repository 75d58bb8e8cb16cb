"""Mastodon's notifications, from Kith's (docs/mastodon.md#notifications).

Kith's four kinds as Mastodon's: a like is `favourite`, a comment on one's post is `mention`
(Mastodon's kind for a reply), a friend request is `follow_request`, and an accepted one is
`follow` (the two now follow each other). A notification whose post or comment the user can
no longer read is left out of the list.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from kith.auth.dependencies import require_scope
from kith.core.errors import NotFound
from kith.db.models import Notification as KithNotification
from kith.db.models import NotificationType, User
from kith.http.session import DbSession
from kith.mastodon.accounts import Accounts
from kith.mastodon.ids import from_mastodon_id, mastodon_datetime, to_mastodon_id
from kith.mastodon.paging import page_links
from kith.mastodon.schemas import Account
from kith.mastodon.statuses import Status, read_mentions, status_of_comment, status_of_view
from kith.mastodon.timelines import kith_id
from kith.notifications import service as notifications
from kith.posts import service as posts

router = APIRouter(include_in_schema=False)

NotificationsReader = Annotated[User, Depends(require_scope("read:notifications"))]
NotificationsWriter = Annotated[User, Depends(require_scope("write:notifications"))]
DEFAULT_PAGE = 40
MAX_PAGE = 80

TO_MASTODON = {
    NotificationType.post_liked: "favourite",
    NotificationType.post_commented: "mention",
    NotificationType.friend_request: "follow_request",
    NotificationType.friend_accepted: "follow",
}
FROM_MASTODON = {name: kind for kind, name in TO_MASTODON.items()}


class Notification(BaseModel):
    """Mastodon's [Notification](https://docs.joinmastodon.org/entities/Notification/)."""

    id: str
    type: str
    created_at: str
    account: Account
    status: Status | None = None


class NotificationNotFound(NotFound):
    code = "notification_not_found"
    default_detail = "Record not found"
    description = "No such notification of the caller's."


async def _entities(
    session: AsyncSession, user: User, rows: list[tuple[KithNotification, User]]
) -> list[Notification]:
    """The Mastodon entities of notifications, leaving out those whose post or comment is out
    of the user's reach: what they name is read in three queries for the whole page."""
    comment_ids = [row.comment_id for row, _ in rows if row.comment_id is not None]
    comments = {
        item.comment.id: item for item in await posts.readable_comments_by_id(session, user, comment_ids)
    }
    post_ids = {row.post_id for row, _ in rows if row.post_id is not None and row.comment_id is None}
    post_ids |= {item.comment.post_id for item in comments.values()}
    readable = {
        item.post.id: item for item in await posts.readable_posts_by_id(session, user, list(post_ids))
    }
    views = {view.id: view for view in await posts.post_views(session, user, list(readable.values()))}
    accounts = Accounts(session, user)
    texts = [view.content for view in views.values()] + [item.comment.content for item in comments.values()]
    await read_mentions(accounts, texts)
    found = []
    for row, actor in rows:
        status = None
        if row.comment_id is not None:
            comment = comments.get(row.comment_id)
            post = readable.get(comment.comment.post_id) if comment else None
            if comment is None or post is None:
                continue
            status = await status_of_comment(session, user, comment, post, accounts)
        elif row.post_id is not None:
            post = readable.get(row.post_id)
            if post is None:
                continue
            status = await status_of_view(views[post.post.id], post.author, accounts)
        found.append(
            Notification(
                id=to_mastodon_id(row.id),
                type=TO_MASTODON[NotificationType(row.type)],
                created_at=mastodon_datetime(row.created_at),
                account=await accounts.of(actor),
                status=status,
            )
        )
    return found


def _types(request: Request) -> list[NotificationType] | None:
    """`types[]` and `exclude_types[]` as the Kith kinds to list (None: every kind)."""
    wanted = request.query_params.getlist("types[]") or request.query_params.getlist("types")
    excluded = set(
        request.query_params.getlist("exclude_types[]") + request.query_params.getlist("exclude_types")
    )
    if not wanted and not excluded:
        return None
    names = set(wanted) if wanted else set(FROM_MASTODON)
    return [FROM_MASTODON[name] for name in sorted(names - excluded) if name in FROM_MASTODON]


@router.get("/api/v1/notifications")
async def list_notifications(
    request: Request,
    response: Response,
    user: NotificationsReader,
    session: DbSession,
    max_id: Annotated[str | None, Query()] = None,
    since_id: Annotated[str | None, Query()] = None,
    min_id: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query()] = DEFAULT_PAGE,
) -> list[Notification]:
    """The caller's notifications, newest first, paged by id as statuses are; `types[]` and
    `exclude_types[]` choose kinds; `Link` next and prev."""
    size = min(max(limit, 1), MAX_PAGE)
    types = _types(request)
    if types == []:
        return []
    rows = await notifications.notifications_between(
        session,
        user,
        below=kith_id("max_id", max_id),
        above=kith_id("min_id", min_id) or kith_id("since_id", since_id),
        limit=size,
        from_above=bool(min_id),
        types=types,
    )
    if rows:
        # From the rows read, not the entities shown: one left out must not end the paging.
        response.headers["Link"] = page_links(
            request, size, newest=to_mastodon_id(rows[0][0].id), oldest=to_mastodon_id(rows[-1][0].id)
        )
    return await _entities(session, user, rows)


@router.post("/api/v1/notifications/clear")
async def clear(user: NotificationsWriter, session: DbSession) -> dict[str, str]:
    """Delete every notification of the caller's."""
    await notifications.dismiss(session, user, None)
    return {}


async def notification_entity(session: AsyncSession, user: User, kith_id: str) -> Notification | None:
    """One of the user's notifications as Mastodon's entity; None when there is none, or when
    what it names is out of the user's reach (also for the streams)."""
    rows = await notifications.notifications_between(
        session, user, below=None, above=None, limit=1, ids=[kith_id]
    )
    found = await _entities(session, user, rows)
    return found[0] if found else None


@router.get("/api/v1/notifications/{notification_id}")
async def get_notification(
    notification_id: str, user: NotificationsReader, session: DbSession
) -> Notification:
    wanted = from_mastodon_id(notification_id)
    found = await notification_entity(session, user, wanted) if wanted else None
    if found is None:
        raise NotificationNotFound()
    return found


@router.post("/api/v1/notifications/{notification_id}/dismiss")
async def dismiss(notification_id: str, user: NotificationsWriter, session: DbSession) -> dict[str, str]:
    """Delete one of the caller's notifications (404 for anyone else's)."""
    wanted = from_mastodon_id(notification_id)
    if wanted is None or not await notifications.dismiss(session, user, [wanted]):
        raise NotificationNotFound()
    return {}
