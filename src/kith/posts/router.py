"""Routes of posts, likes and comments (docs/api.md#posts-media-likes-comments); uploads live in
the media domain."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from kith.auth.dependencies import CurrentUser
from kith.core.pagination import CursorPage
from kith.core.urls import API_PREFIX, absolute_url
from kith.http.deps import MediaFiles, Now
from kith.http.errors import problem_responses
from kith.http.idempotency import IdempotencyDep
from kith.http.pagination import CursorDep
from kith.http.ratelimit import rate_limit
from kith.http.session import DbSession
from kith.posts import service
from kith.posts.dependencies import (
    OwnedComment,
    OwnedPost,
    ReadablePost,
    RemovableComment,
    RemovablePost,
)
from kith.posts.schemas import (
    CommentCreate,
    CommentUpdate,
    CommentView,
    Liker,
    LikeState,
    PostCreate,
    PostUpdate,
    PostView,
)

router = APIRouter(tags=["posts"])


@router.post(
    "/posts",
    operation_id="createPost",
    status_code=status.HTTP_201_CREATED,
    response_model=PostView,
    responses=problem_responses(400, 401, 403, 422, 429),
    dependencies=[rate_limit("posts")],
)
async def create_post(
    idempotency: IdempotencyDep,
    data: PostCreate,
    response: Response,
    user: CurrentUser,
    session: DbSession,
    now: Now,
) -> object:
    """Publish a post. `content`, `media_ids` or both are required (422 on `body.content` otherwise).

    `visibility` defaults to `friends`. `media_ids` are up to 4 of the caller's own uploads
    not yet attached to a post; any other id refuses the request (400 `media_not_available`
    on `body.media_ids`). The response's `Location` is the new post's URL.
    """
    if idempotency.replay is not None:
        return idempotency.replay
    post = await service.create_post(session, user, data, now=now)
    response.headers["Location"] = absolute_url(f"{API_PREFIX}/posts/{post.post.id}")
    view = await service.new_post_view(session, post, with_media=bool(data.media_ids))
    return await idempotency.answer(session, view)


@router.get(
    "/posts/{post_id}", operation_id="getPost", response_model=PostView, responses=problem_responses(401, 404)
)
async def get_post(post: ReadablePost, user: CurrentUser, session: DbSession) -> PostView:
    """A post the caller may read. 404 `post_not_found` when it does not exist or is hidden."""
    return await service.post_view(session, user, post)


@router.patch(
    "/posts/{post_id}",
    operation_id="updatePost",
    response_model=PostView,
    responses=problem_responses(400, 401, 403, 404, 422),
)
async def update_post(
    changes: PostUpdate, post: OwnedPost, user: CurrentUser, session: DbSession, now: Now
) -> PostView:
    """Change the text or visibility of one's own post; sets `edited_at`.

    Only the author may edit (moderators remove, they do not edit): 404 for anyone else.
    Emptying the text of a post without images is 400 `post_needs_content`.
    """
    updated = await service.update_post(session, post, changes, now=now)
    return await service.post_view(session, user, updated)


@router.delete(
    "/posts/{post_id}",
    operation_id="deletePost",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404),
)
async def delete_post(post: RemovablePost, user: CurrentUser, session: DbSession, files: MediaFiles) -> None:
    """Delete a post with its likes, comments and images (their URLs answer 404 at once). The
    author, a moderator or an admin may.

    A moderator or admin removing someone else's post is recorded in the audit log.
    """
    await service.remove_post(session, files, user, post)


@router.get(
    "/users/{user_id}/posts",
    operation_id="listUserPosts",
    response_model=CursorPage[PostView],
    responses=problem_responses(401, 404, 422),
)
async def posts_of_user(user_id: str, user: CurrentUser, session: DbSession, page: CursorDep) -> object:
    """The user's posts that the caller may read, newest first.

    404 `user_not_found` when the user does not exist, is suspended, or is in a block
    with the caller (either way).
    """
    posts, next_cursor = await service.posts_of_user(session, user, user_id, page.params)
    return page.page(posts, next_cursor)


# --- likes -----------------------------------------------------------------------------


@router.post(
    "/posts/{post_id}/like",
    operation_id="likePost",
    status_code=status.HTTP_201_CREATED,
    response_model=LikeState,
    responses={
        200: {"model": LikeState, "description": "Already liked; nothing changed."},
        **problem_responses(401, 403, 404),
    },
)
async def like_post(
    post: ReadablePost, response: Response, user: CurrentUser, session: DbSession, now: Now
) -> LikeState:
    """Like a post the caller can read. 201 the first time; 200, changing nothing, after that."""
    state, created = await service.like(session, user, post.post, now=now)
    if not created:
        response.status_code = status.HTTP_200_OK
    return state


@router.delete(
    "/posts/{post_id}/like",
    operation_id="unlikePost",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404),
)
async def unlike_post(post: ReadablePost, user: CurrentUser, session: DbSession) -> None:
    """Take back one's like. Idempotent: 204 whether or not there was one."""
    await service.unlike(session, user, post.post)


@router.get(
    "/posts/{post_id}/likes",
    operation_id="listLikes",
    response_model=CursorPage[Liker],
    responses=problem_responses(401, 404, 422),
)
async def list_likes(post: ReadablePost, user: CurrentUser, session: DbSession, page: CursorDep) -> object:
    """Users who liked the post, most recent like first, with `liked_at`.

    People in a block with the caller and suspended accounts are left out of the list
    (they still count in `like_count`).
    """
    likers, next_cursor = await service.likers(session, user, post.post, page.params)
    return page.page(likers, next_cursor)


# --- comments --------------------------------------------------------------------------


@router.post(
    "/posts/{post_id}/comments",
    operation_id="createComment",
    status_code=status.HTTP_201_CREATED,
    response_model=CommentView,
    responses=problem_responses(401, 403, 404, 422, 429),
    dependencies=[rate_limit("comments")],
)
async def add_comment(
    idempotency: IdempotencyDep,
    data: CommentCreate,
    post: ReadablePost,
    user: CurrentUser,
    session: DbSession,
) -> object:
    """Comment on a post the caller can read (1 to 2000 characters)."""
    if idempotency.replay is not None:
        return idempotency.replay
    comment = await service.add_comment(session, user, post.post, data)
    return await idempotency.answer(session, service.comment_view(comment))


@router.get(
    "/posts/{post_id}/comments",
    operation_id="listComments",
    response_model=CursorPage[CommentView],
    responses=problem_responses(401, 404, 422),
)
async def list_comments(post: ReadablePost, user: CurrentUser, session: DbSession, page: CursorDep) -> object:
    """The post's comments, oldest first.

    Comments by people in a block with the caller (either way) and by suspended
    accounts are left out.
    """
    comments, next_cursor = await service.comments(session, user, post.post, page.params)
    return page.page([service.comment_view(comment) for comment in comments], next_cursor)


@router.patch(
    "/comments/{comment_id}",
    operation_id="updateComment",
    response_model=CommentView,
    responses=problem_responses(401, 403, 404, 422),
)
async def edit_comment(
    changes: CommentUpdate, comment: OwnedComment, session: DbSession, now: Now
) -> CommentView:
    """Change one's own comment; sets `edited_at`. 404 for anyone but its author."""
    return service.comment_view(await service.edit_comment(session, comment, changes, now=now))


@router.delete(
    "/comments/{comment_id}",
    operation_id="deleteComment",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404),
)
async def delete_comment(comment: RemovableComment, user: CurrentUser, session: DbSession) -> None:
    """Delete a comment: its author, the post's author, a moderator or an admin may.

    Staff removing someone else's comment is recorded in the audit log.
    """
    await service.remove_comment(session, user, comment)
