"""Mastodon's statuses, answered from Kith's posts, comments and likes (docs/mastodon.md#statuses).

A Kith post is a status; a Kith comment is a reply to it. Kith's comments do not nest, so a
reply to a reply attaches to the same post, and a comment's `in_reply_to_id` is always its
post. Visibility: Mastodon's `public` is Kith's `public`, `private` (followers only) is Kith's
`friends`; a Kith post only its author may read shows as `direct`. Content is Kith's plain
text, kept as `text`, and shown as `content` in escaped HTML with its links, mentions and line
breaks. A mention is `@username` of someone the reader may see: a link to their page, and an
entry in `mentions`; any other `@name` stays text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from html import escape
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from kith.auth.dependencies import require_scope
from kith.core.errors import NotFound, Unprocessable
from kith.core.pagination import CursorParams, decode_cursor
from kith.core.urls import absolute_url
from kith.db.models import User, Visibility
from kith.http.deps import MediaFiles, Now
from kith.http.ratelimit import rate_limit
from kith.http.session import DbSession
from kith.mastodon.accounts import MAX_PAGE, Accounts, account_of_user
from kith.mastodon.ids import from_mastodon_id, mastodon_datetime, to_mastodon_id
from kith.mastodon.oauth import request_params
from kith.mastodon.schemas import Account
from kith.mastodon.service import MASTODON_VISIBILITY
from kith.media.schemas import MediaView
from kith.posts import service as posts
from kith.posts.repository import AuthoredComment, AuthoredPost
from kith.posts.schemas import DEFAULT_VISIBILITY, CommentCreate, PostCreate, PostView
from kith.social import service as social

router = APIRouter(include_in_schema=False)

StatusesReader = Annotated[User, Depends(require_scope("read:statuses"))]
StatusesWriter = Annotated[User, Depends(require_scope("write:statuses"))]
FavouritesWriter = Annotated[User, Depends(require_scope("write:favourites"))]

# What a new status's visibility asks for in Kith (Kith's in Mastodon's words:
# `service.MASTODON_VISIBILITY`).
# `unlisted` (public, kept off public timelines) is public in Kith, which has no public
# timeline to keep it off. `direct` (the people mentioned) has no Kith equivalent: refused.
FROM_MASTODON = {"public": Visibility.public, "unlisted": Visibility.public, "private": Visibility.friends}


class MediaAttachment(BaseModel):
    """Mastodon's [MediaAttachment](https://docs.joinmastodon.org/entities/MediaAttachment/)."""

    id: str
    type: str = "image"
    url: str
    preview_url: str
    remote_url: str | None = None
    meta: dict[str, dict[str, int | float]]
    description: str | None = None
    blurhash: str | None = None


class Status(BaseModel):
    """Mastodon's [Status](https://docs.joinmastodon.org/entities/Status/)."""

    id: str
    uri: str
    url: str
    created_at: str
    edited_at: str | None
    account: Account
    content: str
    text: str
    visibility: str
    sensitive: bool = False
    spoiler_text: str = ""
    media_attachments: list[MediaAttachment]
    application: None = None
    mentions: list[dict[str, str]] = Field(default_factory=list)
    tags: list[dict[str, str]] = Field(default_factory=list)
    emojis: list[dict[str, str]] = Field(default_factory=list)
    reblogs_count: int = 0
    favourites_count: int
    replies_count: int
    in_reply_to_id: str | None
    in_reply_to_account_id: str | None
    reblog: None = None
    poll: None = None
    card: None = None
    language: str | None = None
    favourited: bool
    reblogged: bool = False
    muted: bool = False
    bookmarked: bool = False
    pinned: bool = False


class Context(BaseModel):
    """Mastodon's [Context](https://docs.joinmastodon.org/entities/Context/)."""

    ancestors: list[Status]
    descendants: list[Status]


class StatusNotFound(NotFound):
    code = "status_not_found"
    default_detail = "Record not found"
    description = "No such status, or not visible to the caller."


# A link in plain text: http(s), up to the first space or angle bracket; a closing
# punctuation mark at its end belongs to the sentence. A mention: `@` and a username (Kith's
# rules: 3 to 30 letters, digits and underscores), not inside a word, an address or a link.
_TOKEN = re.compile(
    r"(?P<link>https?://[^\s<>\"]+[^\s<>\".,;:!?)\]'}])"
    r"|(?<![\w@/])@(?P<name>[A-Za-z0-9_]{3,30})(?![\w@])"
)


def mentioned_names(text: str) -> set[str]:
    """The lower-case usernames `text` mentions (those its links hold are not mentions)."""
    return {match.group("name").lower() for match in _TOKEN.finditer(text) if match.group("name")}


def content_html(text: str, named: Mapping[str, User] | None = None) -> str:
    """Plain text as Mastodon's `content`: escaped HTML, a paragraph per blank-line-separated
    block, line breaks kept, links made links (`rel="nofollow noopener"`), and mentions of the
    `named` users (by lower-case username) made links to their pages, as Mastodon marks them."""
    named = named or {}
    paragraphs = [block for block in re.split(r"\n\s*\n", text.strip()) if block.strip()]
    return "".join(
        "<p>" + "<br>".join(_linked(line, named) for line in block.splitlines()) + "</p>"
        for block in paragraphs
    )


def _linked(line: str, named: Mapping[str, User]) -> str:
    out, last = [], 0
    for match in _TOKEN.finditer(line):
        name = match.group("name")
        user = named.get(name.lower()) if name else None
        if name and user is None:
            continue  # nobody the reader may see: text
        out.append(escape(line[last : match.start()]))
        if user is not None:
            page = escape(absolute_url(f"/users/{user.id}"))
            out.append(
                f'<span class="h-card" translate="no"><a href="{page}" class="u-url mention">'
                f"@<span>{escape(user.username)}</span></a></span>"
            )
        else:
            href = escape(match.group("link"))
            out.append(f'<a href="{href}" rel="nofollow noopener" target="_blank">{href}</a>')
        last = match.end()
    out.append(escape(line[last:]))
    return "".join(out)


async def read_mentions(accounts: Accounts, texts: Iterable[str]) -> None:
    """Look up, in one query, everyone the `texts` of one answer mention, so that building
    each status (`rendered`) finds them in `accounts` without a query of its own."""
    await accounts.named(set().union(*(mentioned_names(text) for text in texts)))


async def rendered(text: str, accounts: Accounts) -> tuple[str, list[dict[str, str]]]:
    """`content` and `mentions` of a status's text, for the reader of `accounts`' answer."""
    names = mentioned_names(text)
    named = await accounts.named(names) if names else {}
    mentions = [
        {
            "id": to_mastodon_id(user.id),
            "username": user.username,
            "url": absolute_url(f"/users/{user.id}"),
            "acct": user.username,
        }
        for user in sorted(named.values(), key=lambda user: user.username_key)
    ]
    return content_html(text, named), mentions


def media_attachment(view: MediaView) -> MediaAttachment:
    size = {"width": view.width, "height": view.height, "aspect": round(view.width / max(view.height, 1), 4)}
    return MediaAttachment(
        id=to_mastodon_id(view.id), url=view.url, preview_url=view.url, meta={"original": size, "small": size}
    )


async def status_of_post(session: AsyncSession, viewer: User, post: AuthoredPost) -> Status:
    view = await posts.post_view(session, viewer, post)
    return await status_of_view(view, post.author, Accounts(session, viewer))


async def status_of_view(view: PostView, author: User, accounts: Accounts) -> Status:
    page = absolute_url(f"/posts/{view.id}")
    content, mentions = await rendered(view.content, accounts)
    return Status(
        id=to_mastodon_id(view.id),
        uri=page,
        url=page,
        created_at=mastodon_datetime(view.created_at),
        edited_at=mastodon_datetime(view.edited_at) if view.edited_at else None,
        account=await accounts.of(author),
        content=content,
        mentions=mentions,
        text=view.content,
        visibility=MASTODON_VISIBILITY[Visibility(view.visibility)],
        media_attachments=[media_attachment(item) for item in view.media],
        favourites_count=view.like_count,
        replies_count=view.comment_count,
        in_reply_to_id=None,
        in_reply_to_account_id=None,
        favourited=view.liked_by_me,
    )


async def status_of_comment(
    session: AsyncSession,
    viewer: User,
    item: AuthoredComment,
    post: AuthoredPost,
    accounts: Accounts | None = None,
) -> Status:
    comment = item.comment
    accounts = accounts or Accounts(session, viewer)
    page = absolute_url(f"/posts/{comment.post_id}#comment-{comment.id}")
    content, mentions = await rendered(comment.content, accounts)
    return Status(
        id=to_mastodon_id(comment.id),
        uri=page,
        url=page,
        created_at=mastodon_datetime(comment.created_at),
        edited_at=mastodon_datetime(comment.edited_at) if comment.edited_at else None,
        account=await accounts.of(item.author),
        content=content,
        mentions=mentions,
        text=comment.content,
        # A reply is seen by whoever sees its post.
        visibility=MASTODON_VISIBILITY[Visibility(post.post.visibility)],
        media_attachments=[],
        # Kith's comments take no likes and no replies of their own.
        favourites_count=0,
        replies_count=0,
        in_reply_to_id=to_mastodon_id(comment.post_id),
        in_reply_to_account_id=to_mastodon_id(post.post.author_id),
        favourited=False,
    )


async def _find(
    session: AsyncSession, viewer: User, status_id: str
) -> tuple[AuthoredPost, AuthoredComment | None]:
    """The post a status id names, or the comment and its post; 404 as Kith answers it."""
    kith_id = from_mastodon_id(status_id)
    if kith_id is None:
        raise StatusNotFound()
    found = await posts.readable_posts_by_id(session, viewer, [kith_id])
    if found:
        return found[0], None
    comments = await posts.readable_comments_by_id(session, viewer, [kith_id])
    if not comments:
        raise StatusNotFound()
    return await posts.readable_post(session, viewer, comments[0].comment.post_id), comments[0]


async def _status(
    session: AsyncSession, viewer: User, post: AuthoredPost, comment: AuthoredComment | None
) -> Status:
    if comment is None:
        return await status_of_post(session, viewer, post)
    return await status_of_comment(session, viewer, comment, post)


def _invalid(field: str, message: str) -> Unprocessable:
    return Unprocessable(f"Validation failed: {field.capitalize()} {message}")


@router.post("/api/v1/statuses", dependencies=[rate_limit("posts")])
async def create_status(request: Request, user: StatusesWriter, session: DbSession, now: Now) -> Status:
    """Post a status: a Kith post, or with `in_reply_to_id` a comment on the post (the
    replied-to status's post when that is itself a reply)."""
    params = await request_params(request)
    text = params.get("status", "")
    media_ids = await _media_ids(request)
    if params.get("poll[expires_in]") or params.get("poll"):
        raise _invalid("poll", "is not supported")
    reply_to = params.get("in_reply_to_id")
    if reply_to:
        if media_ids:
            raise _invalid("media_ids", "cannot be attached to a reply: Kith's comments are text")
        post, _ = await _find(session, user, reply_to)
        try:
            data = CommentCreate(content=text)
        except ValidationError:
            raise _invalid("text", "must be between 1 and the longest comment's characters") from None
        comment = await posts.add_comment(session, user, post.post, data)
        return await status_of_comment(session, user, comment, post)
    visibility = params.get("visibility") or MASTODON_VISIBILITY[DEFAULT_VISIBILITY]
    if visibility not in FROM_MASTODON:
        raise _invalid("visibility", "is not supported (public, unlisted or private)")
    try:
        data_post = PostCreate(
            content=text,
            visibility=FROM_MASTODON[visibility],
            media_ids=[_kith_media_id(m) for m in media_ids],
        )
    except ValidationError:
        raise _invalid("text", "can't be blank, nor longer than a post may be") from None
    created = await posts.create_post(session, user, data_post, now=now)
    view = await posts.new_post_view(session, created, with_media=bool(media_ids))
    return await status_of_view(view, user, Accounts(session, user))


async def _media_ids(request: Request) -> list[str]:
    """`media_ids[]` of a form, or `media_ids` of a JSON body."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        body = await request.json()
        found = body.get("media_ids") if isinstance(body, dict) else None
        return [str(item) for item in found] if isinstance(found, list) else []
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form()
        return [
            value
            for value in form.getlist("media_ids[]") + form.getlist("media_ids")
            if isinstance(value, str)
        ]
    return request.query_params.getlist("media_ids[]")


def _kith_media_id(value: str) -> str:
    kith_id = from_mastodon_id(value)
    if kith_id is None:
        raise _invalid("media_ids", "names no upload of yours")
    return kith_id


@router.get("/api/v1/statuses/{status_id}")
async def get_status(status_id: str, user: StatusesReader, session: DbSession) -> Status:
    post, comment = await _find(session, user, status_id)
    return await _status(session, user, post, comment)


@router.delete("/api/v1/statuses/{status_id}")
async def delete_status(
    status_id: str, user: StatusesWriter, session: DbSession, files: MediaFiles
) -> Status:
    """Delete one's own status (staff: anyone's, as in Kith); the deleted status, with `text`
    for an app's "delete and redraft"."""
    post, comment = await _find(session, user, status_id)
    deleted = await _status(session, user, post, comment)
    if comment is None:
        if not posts.may_remove_post(user, post.post):
            raise StatusNotFound()
        await posts.remove_post(session, files, user, post)
    else:
        if not posts.may_remove_comment(user, comment):
            raise StatusNotFound()
        await posts.remove_comment(session, user, comment)
    return deleted


@router.get("/api/v1/statuses/{status_id}/context")
async def context(status_id: str, user: StatusesReader, session: DbSession) -> Context:
    """A post's context: no ancestors, its comments as descendants, oldest first. A reply's:
    its post as the one ancestor, no descendants (Kith's comments do not nest)."""
    post, comment = await _find(session, user, status_id)
    if comment is not None:
        return Context(ancestors=[await status_of_post(session, user, post)], descendants=[])
    descendants: list[Status] = []
    params = CursorParams(100, None)
    accounts = Accounts(session, user)
    while True:
        page, next_cursor = await posts.comments(session, user, post.post, params)
        await read_mentions(accounts, (item.comment.content for item in page))
        descendants += [await status_of_comment(session, user, item, post, accounts) for item in page]
        if next_cursor is None:
            return Context(ancestors=[], descendants=descendants)
        params = CursorParams(100, decode_cursor(next_cursor))


async def _liked_post(session: AsyncSession, user: User, status_id: str) -> AuthoredPost:
    post, comment = await _find(session, user, status_id)
    if comment is not None:
        raise _invalid("status", "is a reply, and Kith's comments take no likes")
    return post


@router.post("/api/v1/statuses/{status_id}/favourite")
async def favourite(status_id: str, user: FavouritesWriter, session: DbSession, now: Now) -> Status:
    """Like the status's post (again: nothing changes)."""
    post = await _liked_post(session, user, status_id)
    await posts.like(session, user, post.post, now=now)
    await session.refresh(post.post, ["like_count"])  # counted in SQL, not on the loaded row
    return await status_of_post(session, user, post)


@router.post("/api/v1/statuses/{status_id}/unfavourite")
async def unfavourite(status_id: str, user: FavouritesWriter, session: DbSession) -> Status:
    """Take the like back (without one: nothing changes)."""
    post = await _liked_post(session, user, status_id)
    await posts.unlike(session, user, post.post)
    await session.refresh(post.post, ["like_count"])
    return await status_of_post(session, user, post)


@router.get("/api/v1/statuses/{status_id}/favourited_by")
async def favourited_by(
    status_id: str,
    request: Request,
    response: Response,
    user: StatusesReader,
    session: DbSession,
    limit: Annotated[int, Query()] = 40,
    max_id: Annotated[str | None, Query()] = None,
) -> list[Account]:
    """Who liked the post, newest like first (people hidden from the caller left out);
    `Link` to the next page. A reply has no likes."""
    post, comment = await _find(session, user, status_id)
    if comment is not None:
        return []
    params = CursorParams.from_cursor(min(max(limit, 1), MAX_PAGE), max_id)
    likers, next_cursor = await posts.likers(session, user, post.post, params)
    if next_cursor is not None:
        query = urlencode({"limit": params.limit, "max_id": next_cursor})
        response.headers["Link"] = f'<{absolute_url(request.url.path)}?{query}>; rel="next"'
    accounts = []
    for liker in likers:
        try:
            person = await social.visible_user(session, user, liker.id)
        except NotFound:
            continue  # suspended since the page was read
        accounts.append(await account_of_user(session, user, person))
    return accounts
