"""Every query on friend requests, friendships and blocks."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import Select, String, and_, delete, func, insert, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.orm.attributes import set_committed_value

from kith.db.models import Block, FriendRequest, FriendRequestStatus, Friendship, User, pair_key
from kith.social.relations import blocked_either_way, visible_to

# --- users --------------------------------------------------------------------------


async def user_exists(session: AsyncSession, user_id: str) -> bool:
    return await session.scalar(select(User.id).where(User.id == user_id)) is not None


async def users_by_id(session: AsyncSession, user_ids: Collection[str]) -> dict[str, User]:
    if not user_ids:
        return {}
    rows = await session.scalars(select(User).where(User.id.in_(set(user_ids))))
    return {user.id: user for user in rows.all()}


async def in_block(session: AsyncSession, first_user_id: str, second_user_id: str) -> bool:
    found = await session.scalar(select(blocked_either_way(first_user_id, literal(second_user_id, String))))
    return bool(found)


# --- friend requests ----------------------------------------------------------------


async def request_of(session: AsyncSession, user_id: str, request_id: str) -> FriendRequest | None:
    """A request the user sent or received, unless a block separates its two users: while it
    lasts the request is gone for both, whatever its status, as if the other did not exist."""
    return await session.scalar(
        select(FriendRequest).where(
            FriendRequest.id == request_id,
            or_(FriendRequest.sender_id == user_id, FriendRequest.receiver_id == user_id),
            ~Block.either_way(FriendRequest.sender_id, FriendRequest.receiver_id),
        )
    )


async def pending_between(
    session: AsyncSession, first_user_id: str, second_user_id: str
) -> FriendRequest | None:
    """The pending request between two users, in either direction (there is at most one)."""
    # populate_existing: after a failed insert the identity map may hold a stale copy.
    return await session.scalar(
        select(FriendRequest)
        .where(FriendRequest.pending_pair == pair_key(first_user_id, second_user_id))
        .execution_options(populate_existing=True)
    )


async def last_rejection(session: AsyncSession, sender_id: str, receiver_id: str) -> datetime | None:
    """When the receiver last rejected a request from the sender, if ever."""
    return await session.scalar(
        select(func.max(FriendRequest.responded_at)).where(
            FriendRequest.sender_id == sender_id,
            FriendRequest.receiver_id == receiver_id,
            FriendRequest.status == FriendRequestStatus.rejected,
        )
    )


async def count_pending_sent(session: AsyncSession, sender_id: str) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(FriendRequest)
        .where(FriendRequest.sender_id == sender_id, FriendRequest.status == FriendRequestStatus.pending)
    )
    return int(count or 0)


async def add_request(session: AsyncSession, request: FriendRequest) -> bool:
    """Insert a pending request; False when the pair already has one (or a user vanished).

    The insert runs in a SAVEPOINT, so a unique-key violation from a concurrent request
    undoes only the insert and the transaction can go on to read what won.
    """
    try:
        async with session.begin_nested():
            session.add(request)
            await session.flush()
    except IntegrityError:
        return False
    return True


async def resolve_request(
    session: AsyncSession, request: FriendRequest, status: FriendRequestStatus, now: datetime
) -> bool:
    """Move a pending request to `status`; False when it was no longer pending.

    One conditional UPDATE, so of two concurrent answers to one request only one wins.
    """
    result = await session.execute(
        update(FriendRequest)
        .where(FriendRequest.id == request.id, FriendRequest.status == FriendRequestStatus.pending)
        .values(status=status, pending_pair=None, responded_at=now)
        .execution_options(synchronize_session=False)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    # The row already holds these values: record them as loaded, not as changes to flush.
    set_committed_value(request, "status", status)
    set_committed_value(request, "pending_pair", None)
    set_committed_value(request, "responded_at", now)
    return True


async def delete_pending_request(session: AsyncSession, request_id: str) -> bool:
    """Delete a request if it is still pending (one conditional DELETE, so a concurrent
    answer and a cancel cannot both win); False when it no longer was. Its notification
    goes with it (foreign key cascade)."""
    result = await session.execute(
        delete(FriendRequest)
        .where(FriendRequest.id == request_id, FriendRequest.status == FriendRequestStatus.pending)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def delete_pending_between(session: AsyncSession, first_user_id: str, second_user_id: str) -> None:
    await session.execute(
        delete(FriendRequest)
        .where(FriendRequest.pending_pair == pair_key(first_user_id, second_user_id))
        .execution_options(synchronize_session=False)
    )


def requests_of(user_id: str, *, incoming: bool, status: FriendRequestStatus) -> Select[FriendRequest]:
    """The user's requests in one direction and status, without those with someone in a block."""
    owner, other = (
        (FriendRequest.receiver_id, FriendRequest.sender_id)
        if incoming
        else (FriendRequest.sender_id, FriendRequest.receiver_id)
    )
    return select(FriendRequest).where(
        owner == user_id, FriendRequest.status == status, ~blocked_either_way(user_id, other)
    )


async def count_requests(
    session: AsyncSession, user_id: str, *, incoming: bool, status: FriendRequestStatus
) -> int:
    statement = requests_of(user_id, incoming=incoming, status=status)
    count = await session.scalar(statement.with_only_columns(func.count(), maintain_column_froms=True))
    return int(count or 0)


# --- friendships --------------------------------------------------------------------


async def are_friends(session: AsyncSession, first_user_id: str, second_user_id: str) -> bool:
    found = await session.scalar(
        select(Friendship.user_id).where(
            Friendship.user_id == first_user_id, Friendship.friend_id == second_user_id
        )
    )
    return found is not None


async def add_friendship(
    session: AsyncSession, first_user_id: str, second_user_id: str, now: datetime
) -> bool:
    """Insert both rows of a friendship; False when the primary key says they are friends already."""
    try:
        async with session.begin_nested():
            await session.execute(
                insert(Friendship),
                [
                    {"user_id": first_user_id, "friend_id": second_user_id, "created_at": now},
                    {"user_id": second_user_id, "friend_id": first_user_id, "created_at": now},
                ],
            )
    except IntegrityError:
        return False
    return True


async def delete_friendship(session: AsyncSession, first_user_id: str, second_user_id: str) -> bool:
    """Delete both rows of a friendship; False when there was none."""
    result = await session.execute(
        delete(Friendship).where(
            or_(
                and_(Friendship.user_id == first_user_id, Friendship.friend_id == second_user_id),
                and_(Friendship.user_id == second_user_id, Friendship.friend_id == first_user_id),
            )
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def friends_of(viewer: User, user_id: str) -> Select[User, datetime]:
    """The user's friends that the viewer may see, with when each friendship began."""
    return (
        select(User, Friendship.created_at)
        .join(Friendship, Friendship.friend_id == User.id)
        .where(Friendship.user_id == user_id, visible_to(viewer))
    )


async def count_friends(session: AsyncSession, viewer: User, user_id: str) -> int:
    statement = friends_of(viewer, user_id).with_only_columns(func.count(), maintain_column_froms=True)
    return int(await session.scalar(statement) or 0)


# --- blocks -------------------------------------------------------------------------


async def add_block(session: AsyncSession, blocker_id: str, blocked_id: str, now: datetime) -> bool:
    """Insert a block; False when the blocker already blocks that user."""
    try:
        async with session.begin_nested():
            await session.execute(
                insert(Block).values(blocker_id=blocker_id, blocked_id=blocked_id, created_at=now)
            )
    except IntegrityError:
        return False
    return True


async def delete_block(session: AsyncSession, blocker_id: str, blocked_id: str) -> bool:
    result = await session.execute(
        delete(Block).where(Block.blocker_id == blocker_id, Block.blocked_id == blocked_id)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


_BLOCKS_BACK = aliased(Block, name="blocks_back")


def blocks_of(blocker_id: str) -> Select[User, datetime]:
    """The users the blocker blocks, but not those who block the blocker too: to someone they
    blocked, a user shows nothing, not even in that person's own list of blocks."""
    blocks_back = select(_BLOCKS_BACK.blocker_id).where(
        _BLOCKS_BACK.blocker_id == User.id, _BLOCKS_BACK.blocked_id == blocker_id
    )
    return (
        select(User, Block.created_at)
        .join(Block, Block.blocked_id == User.id)
        .where(Block.blocker_id == blocker_id, ~blocks_back.exists())
    )


async def blocks(session: AsyncSession, blocker_id: str, blocked_id: str) -> bool:
    """Whether `blocker_id` blocks `blocked_id` (one direction)."""
    found = await session.scalar(
        select(Block.blocker_id).where(Block.blocker_id == blocker_id, Block.blocked_id == blocked_id)
    )
    return found is not None


async def friend_ids(session: AsyncSession, user_id: str) -> list[str]:
    """The ids of the user's friends."""
    found = await session.scalars(select(Friendship.friend_id).where(Friendship.user_id == user_id))
    return list(found.all())


async def visible_users_named(session: AsyncSession, viewer: User, keys: Collection[str]) -> dict[str, User]:
    """The users whose lower-case usernames are `keys` and whom the viewer may see, by key."""
    found = await session.scalars(select(User).where(User.username_key.in_(list(keys)), visible_to(viewer)))
    return {user.username_key: user for user in found}
