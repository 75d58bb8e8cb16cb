"""Dependencies that load a post or comment the caller may act on, or answer 404.

Existence, visibility and permission are checked here once, so handlers receive only
things the caller is allowed to touch. Anything hidden or not permitted is 404, so a
client cannot tell "exists but not yours" from "does not exist".
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path

from kith.auth.dependencies import CurrentUser
from kith.http.session import DbSession
from kith.posts import service
from kith.posts.repository import AuthoredComment, AuthoredPost

PostId = Annotated[str, Path(description="The post's id.")]
CommentId = Annotated[str, Path(description="The comment's id.")]


async def readable_post(post_id: PostId, user: CurrentUser, session: DbSession) -> AuthoredPost:
    """The post, with its author, if the caller may read it."""
    return await service.readable_post(session, user, post_id)


ReadablePost = Annotated[AuthoredPost, Depends(readable_post)]


async def owned_post(post: ReadablePost, user: CurrentUser) -> AuthoredPost:
    """A post the caller wrote. Staff may remove posts, not edit them."""
    if post.post.author_id != user.id:
        raise service.PostNotFound()
    return post


OwnedPost = Annotated[AuthoredPost, Depends(owned_post)]


async def removable_post(post: ReadablePost, user: CurrentUser) -> AuthoredPost:
    """A post the caller may delete: their own, or any post for moderators and admins."""
    if not service.may_remove_post(user, post.post):
        raise service.PostNotFound()
    return post


RemovablePost = Annotated[AuthoredPost, Depends(removable_post)]


async def readable_comment(comment_id: CommentId, user: CurrentUser, session: DbSession) -> AuthoredComment:
    """The comment, if the caller can read its post and its author is not hidden from them."""
    return await service.readable_comment(session, user, comment_id)


ReadableComment = Annotated[AuthoredComment, Depends(readable_comment)]


async def owned_comment(comment: ReadableComment, user: CurrentUser) -> AuthoredComment:
    if comment.comment.author_id != user.id:
        raise service.CommentNotFound()
    return comment


OwnedComment = Annotated[AuthoredComment, Depends(owned_comment)]


async def removable_comment(comment: ReadableComment, user: CurrentUser) -> AuthoredComment:
    """A comment the caller may delete: their own, one under their post, or any for staff."""
    if not service.may_remove_comment(user, comment):
        raise service.CommentNotFound()
    return comment


RemovableComment = Annotated[AuthoredComment, Depends(removable_comment)]
