"""Mastodon's timelines and an account's statuses, from Kith's feed and posts
(docs/mastodon.md#timelines).

Mastodon pages by id: `max_id` (older than), `since_id` (newer than, the newest first) and
`min_id` (newer than, those right after it), with `Link` headers whose `next` asks for older
statuses and `prev` for newer. Kith's ids are time-ordered, so each page is one keyset window
of the same query Kith's own lists use: the home timeline is Kith's feed (the reader's own
posts and their friends', with Kith's visibility and blocks), the public timeline the public
posts the caller may read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from kith.auth import service as auth
from kith.core.errors import Unprocessable
from kith.db.models import Post, User
from kith.feed import service as feed
from kith.http.session import DbSession
from kith.mastodon.accounts import Accounts
from kith.mastodon.ids import from_mastodon_id, to_mastodon_id
from kith.mastodon.paging import page_links
from kith.mastodon.statuses import Status, StatusesReader, read_mentions, status_of_view
from kith.posts import service as posts

router = APIRouter(include_in_schema=False)

# Mastodon's page size for statuses: 20 by default, 40 at most (more is taken as 40).
DEFAULT_PAGE = 20
MAX_PAGE = 40
Id = Annotated[str | None, Query()]


@dataclass(frozen=True)
class Paging:
    """A page as Mastodon asks for one."""

    max_id: str | None
    since_id: str | None
    min_id: str | None
    limit: int


def paging(
    max_id: Id = None, since_id: Id = None, min_id: Id = None, limit: Annotated[int, Query()] = DEFAULT_PAGE
) -> Paging:
    return Paging(max_id, since_id, min_id, limit)


Page = Annotated[Paging, Depends(paging)]


def kith_id(name: str, value: str | None) -> str | None:
    if value is None or value == "":
        return None
    kith_id = from_mastodon_id(value)
    if kith_id is None:
        raise Unprocessable(f"Validation failed: {name} is not an id")
    return kith_id


async def statuses_page(
    request: Request,
    response: Response,
    session: AsyncSession,
    viewer: User,
    statement: Select[Post, User],
    page: Paging,
) -> list[Status]:
    """One page of `statement`'s posts as statuses, newest first, with Mastodon's `Link`."""
    size = min(max(page.limit, 1), MAX_PAGE)
    found = await posts.posts_between(
        session,
        statement,
        below=kith_id("max_id", page.max_id),
        above=kith_id("min_id", page.min_id) or kith_id("since_id", page.since_id),
        limit=size,
        from_above=bool(page.min_id),
    )
    views = await posts.post_views(session, viewer, found)
    accounts = Accounts(session, viewer)
    await read_mentions(accounts, (view.content for view in views))
    statuses = [
        await status_of_view(view, item.author, accounts) for view, item in zip(views, found, strict=True)
    ]
    if statuses:
        response.headers["Link"] = page_links(
            request, size, newest=to_mastodon_id(found[0].post.id), oldest=to_mastodon_id(found[-1].post.id)
        )
    return statuses


@router.get("/api/v1/timelines/home")
async def home(
    request: Request,
    response: Response,
    user: StatusesReader,
    session: DbSession,
    page: Page,
) -> list[Status]:
    """Kith's feed: the caller's posts and their friends', newest first."""
    statement = feed.feed_posts(user)
    return await statuses_page(request, response, session, user, statement, page)


@router.get("/api/v1/timelines/public")
async def public(
    request: Request,
    response: Response,
    user: StatusesReader,
    session: DbSession,
    page: Page,
) -> list[Status]:
    """Every public post the caller may read, newest first (`local`, `remote` and
    `only_media` change nothing: every account is local, and media-only is not offered)."""
    statement = posts.public_posts(user)
    return await statuses_page(request, response, session, user, statement, page)


@router.get("/api/v1/accounts/{account_id}/statuses")
async def account_statuses(
    account_id: str,
    request: Request,
    response: Response,
    user: StatusesReader,
    session: DbSession,
    page: Page,
) -> list[Status]:
    """The account's posts the caller may read, newest first (404 for an account the caller
    may not see). Kith's comments are not among them; `pinned` answers none."""
    if request.query_params.get("pinned") in ("true", "1"):
        return []
    kith_id = from_mastodon_id(account_id)
    if kith_id is None:
        raise auth.UserNotFound()
    author = await posts.visible_author(session, user, kith_id)
    statement = posts.posts_by_author(user, author.id)
    return await statuses_page(request, response, session, user, statement, page)
