"""Route of the news feed (docs/api.md#news-feed)."""

from __future__ import annotations

from fastapi import APIRouter

from kith.auth.dependencies import CurrentUser
from kith.core.pagination import CursorPage
from kith.feed import service
from kith.feed.dependencies import Timelines
from kith.http.errors import problem_responses
from kith.http.pagination import CursorDep
from kith.http.session import DbSession
from kith.posts.schemas import PostView

router = APIRouter(tags=["feed"])


@router.get(
    "/feed",
    operation_id="listFeed",
    response_model=CursorPage[PostView],
    responses=problem_responses(401, 422),
)
async def feed(user: CurrentUser, session: DbSession, timelines: Timelines, page: CursorDep) -> object:
    """The caller's news feed: posts by the caller and the caller's friends that the caller
    may see, newest first, each a full post object. Keyset pagination: walking the pages
    while others post never repeats or skips a post that existed when the walk began.
    A new friend's earlier posts appear; an unfriended user's posts leave at once."""
    items, next_cursor = await service.feed_page(
        session, timelines.store, timelines.breaker, user, page.params
    )
    return page.page(items, next_cursor)
