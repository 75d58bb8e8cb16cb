"""Social rules: friend requests, friendships and blocks (docs/api.md#friends-and-blocks).

Friendship is mutual: two rows, (A, B) and (B, A), made and removed together. At
most one request between two users is pending at a time, whoever sent it; the unique
`pending_pair` key holds that even against concurrent requests, and the losing
request is answered as if the winner had been there first.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from kith.auth import service as auth
from kith.core.errors import BadRequest, Conflict, DomainError, NotFound
from kith.core.pagination import CursorParams
from kith.db.models import (
    Block,
    FriendRequest,
    FriendRequestStatus,
    Friendship,
    NotificationType,
    User,
    pair_key,
)
from kith.notifications import service as notifications
from kith.runtime.events import announce
from kith.social import repository
from kith.social.events import FriendshipEnded, FriendshipStarted
from kith.social.relations import Relationship

MAX_PENDING_SENT = 100
RESEND_AFTER_REJECTION = timedelta(hours=24)
# A lost race on the pending-pair key is re-read and answered; a second loss in a row
# means the pair is changing under us faster than we can read it.
SEND_ATTEMPTS = 3

RequestWithUsers = tuple[FriendRequest, User, User]


class TooManyPendingRequests(DomainError):
    status = 429
    code = "too_many_pending_requests"
    default_detail = (
        f"You have {MAX_PENDING_SENT} friend requests waiting for an answer; "
        "cancel some or wait for answers before sending more."
    )
    description = (
        f"The caller has {MAX_PENDING_SENT} friend requests waiting for an answer; "
        "cancel some or wait for answers before sending more."
    )


class FriendRequestNotFound(NotFound):
    code = "friend_request_not_found"
    default_detail = "No such friend request."
    description = "No such friend request, or it is not addressed to or sent by the caller."


class NotPending(Conflict):
    code = "not_pending"
    default_detail = "The friend request has already been answered."
    description = "The friend request has already been answered or cancelled."


class CannotBefriendSelf(BadRequest):
    code = "cannot_befriend_self"
    default_detail = "You cannot send a friend request to yourself."
    description = "A user cannot send a friend request to themselves."


class AlreadyFriends(Conflict):
    code = "already_friends"
    default_detail = "You are already friends."
    description = "The two users are already friends."


class RequestPending(Conflict):
    code = "request_pending"
    default_detail = "Your friend request is already waiting for an answer."
    description = "A friend request between the two users is already waiting for an answer."


class RequestRejectedRecently(BadRequest):
    code = "request_rejected_recently"
    default_detail = "This user declined your friend request less than 24 hours ago; try again later."
    description = "The receiver declined the caller's request less than 24 hours ago; try again later."


class NotFriends(NotFound):
    code = "not_friends"
    default_detail = "You are not friends with this user."
    description = "The caller is not friends with this user."


class CannotBlockSelf(BadRequest):
    code = "cannot_block_self"
    default_detail = "You cannot block yourself."
    description = "A user cannot block themselves."


class AlreadyBlocked(Conflict):
    code = "already_blocked"
    default_detail = "You already block this user."
    description = "The caller already blocks this user."


class NotBlocked(NotFound):
    code = "not_blocked"
    default_detail = "You do not block this user."
    description = "The caller does not block this user."


def _user_not_found() -> NotFound:
    # The same answer for an unknown, suspended or blocking user: a block is never revealed.
    return auth.UserNotFound()


def _request_not_found() -> NotFound:
    return FriendRequestNotFound()


def _not_pending() -> Conflict:
    return NotPending()


# --- relationships, for profiles and visibility ---------------------------------------


async def blocks(session: AsyncSession, blocker_id: str, blocked_id: str) -> bool:
    """True when the first user blocks the second (one way)."""
    return await repository.blocks(session, blocker_id, blocked_id)


async def in_block(session: AsyncSession, first_user_id: str, second_user_id: str) -> bool:
    """True when either user blocks the other."""
    return await repository.in_block(session, first_user_id, second_user_id)


async def relationship(session: AsyncSession, viewer: User, user: User) -> Relationship:
    """How the viewer stands to `user`: self, friends, a pending request either way, or none."""
    if viewer.id == user.id:
        return Relationship.self
    if await repository.are_friends(session, viewer.id, user.id):
        return Relationship.friends
    pending = await repository.pending_between(session, viewer.id, user.id)
    if pending is None:
        return Relationship.none
    return Relationship.request_sent if pending.sender_id == viewer.id else Relationship.request_received


async def friend_count(session: AsyncSession, viewer: User, user: User) -> int:
    """How many friends `user` has that the viewer can see: the length of their friends list."""
    return await repository.count_friends(session, viewer, user.id)


# --- friend requests ----------------------------------------------------------------


async def send_request(
    session: AsyncSession, sender: User, receiver: User, *, now: datetime
) -> tuple[FriendRequest, bool]:
    """Ask `receiver` to be friends. Returns the request and whether it is new.

    When the receiver already asked the sender, their request is accepted instead (and
    returned, not new). `receiver` has been checked as visible to the sender: not
    unknown, not hidden by a block.
    """
    if receiver.id == sender.id:
        raise CannotBefriendSelf()
    if receiver.suspended:
        raise _user_not_found()
    for _ in range(SEND_ATTEMPTS):
        if await repository.are_friends(session, sender.id, receiver.id):
            raise AlreadyFriends()
        pending = await repository.pending_between(session, sender.id, receiver.id)
        if pending is not None:
            if pending.sender_id == sender.id:
                raise RequestPending()
            if await _accept(session, pending, accepter=sender, now=now):
                return pending, False
            continue  # cancelled or answered meanwhile: look again
        await _check_may_send(session, sender, receiver, now)
        request = FriendRequest(
            sender_id=sender.id,
            receiver_id=receiver.id,
            status=FriendRequestStatus.pending,
            pending_pair=pair_key(sender.id, receiver.id),
            created_at=now,
        )
        if await repository.add_request(session, request):
            await notifications.notify(
                session,
                recipient_id=receiver.id,
                actor=sender,
                type=NotificationType.friend_request,
                friend_request_id=request.id,
            )
            return request, True
        # A concurrent request between the two won the pending-pair key (or the receiver
        # was deleted meanwhile): read again and answer as if it had been there first.
        if not await repository.user_exists(session, receiver.id):
            raise _user_not_found()
    raise RequestPending("A friend request between you is being processed; try again.")


async def _check_may_send(session: AsyncSession, sender: User, receiver: User, now: datetime) -> None:
    rejected_at = await repository.last_rejection(session, sender.id, receiver.id)
    if rejected_at is not None and now - rejected_at < RESEND_AFTER_REJECTION:
        raise RequestRejectedRecently()
    if await repository.count_pending_sent(session, sender.id) >= MAX_PENDING_SENT:
        raise TooManyPendingRequests()


async def _accept(session: AsyncSession, request: FriendRequest, *, accepter: User, now: datetime) -> bool:
    """Accept a pending request (as its receiver, `accepter`) and make the friendship.

    False if it was no longer pending. The sender is told; both feeds start over.
    """
    if not await repository.resolve_request(session, request, FriendRequestStatus.accepted, now):
        return False
    # False would mean the friendship exists already, which is what accepting wants anyway.
    await repository.add_friendship(session, request.sender_id, request.receiver_id, now)
    await notifications.notify(
        session,
        recipient_id=request.sender_id,
        actor=accepter,
        type=NotificationType.friend_accepted,
        friend_request_id=request.id,
    )
    await announce(session, FriendshipStarted(user_ids=(request.sender_id, request.receiver_id)))
    return True


async def visible_request(session: AsyncSession, user: User, request_id: str) -> FriendRequest:
    """A request the user sent or received; 404 for everyone else, and once a block separates them."""
    request = await repository.request_of(session, user.id, request_id)
    if request is None:
        raise _request_not_found()
    return request


async def respond(
    session: AsyncSession, receiver: User, request_id: str, *, accept: bool, now: datetime
) -> FriendRequest:
    """Accept or reject a pending request addressed to `receiver`.

    Accepting makes the friendship in the same transaction. A rejected sender may ask
    again after 24 hours. While a block separates the two the request is 404, whatever its
    status, as `visible_request` has it.
    """
    request = await repository.request_of(session, receiver.id, request_id)
    if request is None or request.receiver_id != receiver.id:
        raise _request_not_found()
    if request.status != FriendRequestStatus.pending:
        raise _not_pending()
    if accept:
        done = await _accept(session, request, accepter=receiver, now=now)
    else:
        done = await repository.resolve_request(session, request, FriendRequestStatus.rejected, now)
    if not done:
        raise _not_pending()
    return request


async def cancel(session: AsyncSession, sender: User, request_id: str) -> None:
    """Withdraw a pending request the sender made: it is deleted, with its notification,
    so it is gone for both sides (404 afterwards), as `DELETE` promises. While a block
    separates the two the request is 404, whatever its status."""
    request = await repository.request_of(session, sender.id, request_id)
    if request is None or request.sender_id != sender.id:
        raise _request_not_found()
    if request.status != FriendRequestStatus.pending or not await repository.delete_pending_request(
        session, request.id
    ):
        raise _not_pending()


async def list_requests(
    session: AsyncSession, user: User, *, incoming: bool, status: FriendRequestStatus, params: CursorParams
) -> tuple[list[RequestWithUsers], str | None]:
    """The user's incoming or outgoing requests in one status, newest first."""
    statement = repository.requests_of(user.id, incoming=incoming, status=status)
    requests, next_cursor = await params.fetch(session, statement, FriendRequest.id)
    return await with_users(session, requests), next_cursor


async def pending_request_from(
    session: AsyncSession, sender_id: str, receiver_id: str
) -> FriendRequest | None:
    """The pending request `sender_id` sent `receiver_id`, if there is one."""
    pending = await repository.pending_between(session, sender_id, receiver_id)
    return pending if pending is not None and pending.sender_id == sender_id else None


async def pending_incoming_count(session: AsyncSession, user: User) -> int:
    """How many friend requests wait for the user's answer."""
    return await repository.count_requests(
        session, user.id, incoming=True, status=FriendRequestStatus.pending
    )


async def with_users(session: AsyncSession, requests: list[FriendRequest]) -> list[RequestWithUsers]:
    """Each request with its sender and receiver, loaded in one query."""
    users = await repository.users_by_id(
        session, {user_id for r in requests for user_id in (r.sender_id, r.receiver_id)}
    )
    return [(request, users[request.sender_id], users[request.receiver_id]) for request in requests]


# --- friendships --------------------------------------------------------------------


async def unfriend(session: AsyncSession, user: User, friend_id: str) -> None:
    """End a friendship, for both sides at once. 404 `not_friends` when there is none."""
    if not await repository.delete_friendship(session, user.id, friend_id):
        raise NotFriends()
    await announce(session, FriendshipEnded(user_ids=(user.id, friend_id)))


async def list_friends(
    session: AsyncSession, viewer: User, user: User, params: CursorParams
) -> tuple[list[tuple[User, datetime]], str | None]:
    """`user`'s friends that the viewer may see, newest friendship first, with when it began."""
    return await params.fetch_by_time(
        session, repository.friends_of(viewer, user.id), Friendship.created_at, Friendship.friend_id, _id_of
    )


# --- blocks -------------------------------------------------------------------------


async def block(session: AsyncSession, blocker: User, target: User, *, now: datetime) -> datetime:
    """Block `target`; returns when. Hides each from the other from now on.

    Any friendship between the two ends, and any pending request between them, in
    either direction, is deleted (as if its sender had cancelled it), and its
    notification goes with it. Answered requests stay, so a recent rejection still
    counts after an unblock.
    """
    if target.id == blocker.id:
        raise CannotBlockSelf()
    if await repository.blocks(session, target.id, blocker.id):
        # The target blocked the blocker: to them the target does not exist (404, as for
        # an unknown user), and their attempt must not tell them otherwise.
        raise _user_not_found()
    if not await repository.add_block(session, blocker.id, target.id, now):
        raise AlreadyBlocked()
    if await repository.delete_friendship(session, blocker.id, target.id):
        await announce(session, FriendshipEnded(user_ids=(blocker.id, target.id)))
    await repository.delete_pending_between(session, blocker.id, target.id)
    return now


async def unblock(session: AsyncSession, blocker: User, user_id: str) -> None:
    """Lift a block the user made. 404 `not_blocked` when there is none."""
    if not await repository.delete_block(session, blocker.id, user_id):
        raise NotBlocked()


async def list_blocks(
    session: AsyncSession, blocker: User, params: CursorParams
) -> tuple[list[tuple[User, datetime]], str | None]:
    """The users the blocker blocks, most recent block first."""
    return await params.fetch_by_time(
        session, repository.blocks_of(blocker.id), Block.created_at, Block.blocked_id, _id_of
    )


def _id_of(user: User) -> str:
    return user.id


async def users_named(session: AsyncSession, viewer: User, keys: Collection[str]) -> dict[str, User]:
    """The users the viewer may see among the lower-case usernames `keys` (a block hides both
    ways; plain users do not see suspended accounts), by key: one query."""
    return await repository.visible_users_named(session, viewer, keys) if keys else {}


async def visible_user(
    session: AsyncSession, viewer: User, user_id: str, *, hide_blocked: bool = True
) -> User:
    """Load a user the viewer may see, or raise 404.

    Suspended accounts are hidden from users; a block hides each side from the other,
    whatever the role (`hide_blocked=False` for blocking itself).
    """
    user = await auth.get_user(session, user_id)
    if (
        user is None
        or (user.suspended and user.id != viewer.id and not viewer.is_staff)
        or (hide_blocked and user.id != viewer.id and await in_block(session, viewer.id, user.id))
    ):
        raise auth.UserNotFound()
    return user
