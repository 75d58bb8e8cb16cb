"""Routes of friend requests, friendships and blocks (docs/api.md#friends-and-blocks)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from kith.auth.dependencies import CurrentUser
from kith.core.pagination import CursorPage
from kith.core.urls import API_PREFIX, absolute_url
from kith.db.models import FriendRequestStatus
from kith.http.deps import Now
from kith.http.errors import problem_responses
from kith.http.idempotency import IdempotencyDep
from kith.http.pagination import CursorDep
from kith.http.ratelimit import rate_limit
from kith.http.session import DbSession
from kith.social import service
from kith.social.dependencies import VisibleUser
from kith.social.schemas import (
    BlockCreate,
    BlockView,
    Direction,
    FriendRequestAction,
    FriendRequestCreate,
    FriendRequestView,
    FriendView,
)

router = APIRouter(tags=["social"])

ACCEPTED_INSTEAD: dict[int | str, dict[str, Any]] = {
    200: {
        "model": FriendRequestView,
        "description": "The receiver had already asked the caller: that request is now accepted.",
    }
}


# --- friend requests ----------------------------------------------------------------


@router.post(
    "/friend-requests",
    operation_id="sendFriendRequest",
    status_code=status.HTTP_201_CREATED,
    response_model=FriendRequestView,
    responses={**ACCEPTED_INSTEAD, **problem_responses(400, 401, 403, 404, 409, 422, 429)},
    dependencies=[rate_limit("friend_requests")],
)
async def send_friend_request(
    idempotency: IdempotencyDep,
    data: FriendRequestCreate,
    response: Response,
    user: CurrentUser,
    session: DbSession,
    now: Now,
) -> object:
    """Ask a user to be friends: 201 with the pending request and its `Location`.

    If that user has already asked the caller, their request is accepted instead and the
    answer is 200 with `status: "accepted"`: the two are friends.

    Errors: 400 `cannot_befriend_self`; 400 `request_rejected_recently` when the user
    declined the caller's request less than 24 hours ago; 404 `user_not_found` for an
    unknown, suspended or blocking user (or one the caller blocks); 409 `already_friends`;
    409 `request_pending` when the caller's request is still waiting; 429
    `too_many_pending_requests` when the caller has 100 requests waiting for an answer, and
    429 `rate_limited` after 50 requests in a day (by default).
    """
    if idempotency.replay is not None:
        return idempotency.replay
    receiver = await service.visible_user(session, user, data.receiver_id)
    friend_request, created = await service.send_request(session, user, receiver, now=now)
    if created:
        response.headers["Location"] = absolute_url(f"{API_PREFIX}/friend-requests/{friend_request.id}")
        return await idempotency.answer(session, FriendRequestView.of(friend_request, user, receiver))
    response.status_code = status.HTTP_200_OK
    return await idempotency.answer(session, FriendRequestView.of(friend_request, receiver, user))


@router.get(
    "/friend-requests",
    operation_id="listFriendRequests",
    response_model=CursorPage[FriendRequestView],
    responses=problem_responses(401, 422),
)
async def list_friend_requests(
    user: CurrentUser,
    session: DbSession,
    page: CursorDep,
    direction: Annotated[
        Direction, Query(description="`incoming`: sent to the caller; `outgoing`: sent by the caller.")
    ] = Direction.incoming,
    request_status: Annotated[
        FriendRequestStatus, Query(alias="status", description="Only requests in this status.")
    ] = FriendRequestStatus.pending,
) -> object:
    """The caller's friend requests, newest first.

    Incoming (sent to the caller, the default) or outgoing (sent by the caller), in one
    status: `pending` (the default), `accepted` or `rejected`. Requests
    with someone in a block with the caller are left out while the block lasts.
    """
    rows, next_cursor = await service.list_requests(
        session, user, incoming=direction is Direction.incoming, status=request_status, params=page.params
    )
    return page.page([FriendRequestView.of(*row) for row in rows], next_cursor)


@router.get(
    "/friend-requests/{request_id}",
    operation_id="getFriendRequest",
    response_model=FriendRequestView,
    responses=problem_responses(401, 404),
)
async def get_friend_request(request_id: str, user: CurrentUser, session: DbSession) -> FriendRequestView:
    """One friend request the caller sent or received; 404 `friend_request_not_found` for anyone
    else, and while a block separates the two."""
    friend_request = await service.visible_request(session, user, request_id)
    return FriendRequestView.of(*(await service.with_users(session, [friend_request]))[0])


@router.patch(
    "/friend-requests/{request_id}",
    operation_id="answerFriendRequest",
    response_model=FriendRequestView,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def answer_friend_request(
    request_id: str,
    data: FriendRequestAction,
    user: CurrentUser,
    session: DbSession,
    now: Now,
) -> FriendRequestView:
    """Accept or reject a request sent to the caller; returns it in its new status.

    Accepting makes the two friends. A rejected sender may ask again after 24 hours.
    404 `friend_request_not_found` for anyone but the receiver, and while a block separates
    the two; 409 `not_pending` when it was already answered (a cancelled request is gone: 404).
    """
    friend_request = await service.respond(session, user, request_id, accept=data.action == "accept", now=now)
    return FriendRequestView.of(*(await service.with_users(session, [friend_request]))[0])


@router.delete(
    "/friend-requests/{request_id}",
    operation_id="cancelFriendRequest",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404, 409),
)
async def cancel_friend_request(request_id: str, user: CurrentUser, session: DbSession) -> None:
    """Withdraw a pending request the caller sent. It is deleted: afterwards it is 404 for
    both sides and listed nowhere, and its notification to the receiver is gone.

    404 `friend_request_not_found` for anyone but the sender, once it is cancelled, and while
    a block separates the two; 409 `not_pending` when it was already answered.
    """
    await service.cancel(session, user, request_id)


# --- friendships --------------------------------------------------------------------


@router.delete(
    "/friends/{user_id}",
    operation_id="unfriend",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404),
)
async def unfriend(user_id: str, user: CurrentUser, session: DbSession) -> None:
    """End a friendship, for both users. 404 `not_friends` when the caller is not friends with them."""
    await service.unfriend(session, user, user_id)


@router.get(
    "/users/{user_id}/friends",
    operation_id="listFriends",
    response_model=CursorPage[FriendView],
    responses=problem_responses(401, 404, 422),
)
async def list_friends(target: VisibleUser, user: CurrentUser, session: DbSession, page: CursorDep) -> object:
    """A user's friends, newest friendship first, each with `friends_since`.

    Friends hidden from the caller (suspended, or in a block with the caller) are left
    out. 404 `user_not_found` when the user is unknown or hidden from the caller.
    """
    rows, next_cursor = await service.list_friends(session, user, target, page.params)
    return page.page([FriendView.of(friend, since) for friend, since in rows], next_cursor)


# --- blocks -------------------------------------------------------------------------


@router.post(
    "/blocks",
    operation_id="blockUser",
    status_code=status.HTTP_201_CREATED,
    response_model=BlockView,
    responses=problem_responses(400, 401, 403, 404, 409, 422),
)
async def block_user(
    idempotency: IdempotencyDep,
    data: BlockCreate,
    user: CurrentUser,
    session: DbSession,
    now: Now,
) -> object:
    """Block a user. Any friendship and pending friend request between the two ends.

    From then on neither sees the other's profile, posts or comments, finds the other in
    search, or can send the other a friend request; to the blocked user it looks as if
    the caller did not exist. 400 `cannot_block_self`; 404 `user_not_found`; 409
    `already_blocked`.
    """
    if idempotency.replay is not None:
        return idempotency.replay
    target = await service.visible_user(session, user, data.user_id, hide_blocked=False)
    blocked_at = await service.block(session, user, target, now=now)
    return await idempotency.answer(session, BlockView.of(target, blocked_at))


@router.get(
    "/blocks",
    operation_id="listBlocks",
    response_model=CursorPage[BlockView],
    responses=problem_responses(401, 422),
)
async def list_blocks(user: CurrentUser, session: DbSession, page: CursorDep) -> object:
    """The users the caller blocks, most recent block first."""
    rows, next_cursor = await service.list_blocks(session, user, page.params)
    return page.page([BlockView.of(blocked, since) for blocked, since in rows], next_cursor)


@router.delete(
    "/blocks/{user_id}",
    operation_id="unblockUser",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404),
)
async def unblock_user(user_id: str, user: CurrentUser, session: DbSession) -> None:
    """Lift a block. Friendships and requests it ended do not come back. 404 `not_blocked`."""
    await service.unblock(session, user, user_id)
