"""Every query on users and API keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kith.db.models import ApiKey, Post, User
from kith.posts.visibility import can_read_post
from kith.social.relations import blocked_either_way


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def get_user(session: AsyncSession, user_id: str) -> User | None:
    return await session.get(User, user_id)


async def find_by_login(session: AsyncSession, identifier: str) -> User | None:
    """Find a user by e-mail (when the identifier has an @) or by username, case-insensitively."""
    key = identifier.strip().lower()
    column = User.email if "@" in key else User.username_key
    return await session.scalar(select(User).where(column == key))


async def find_by_email(session: AsyncSession, email: str) -> User | None:
    return await session.scalar(select(User).where(User.email == email.lower()))


async def username_taken(session: AsyncSession, username: str) -> bool:
    found = await session.scalar(select(User.id).where(User.username_key == username.lower()))
    return found is not None


async def email_taken(session: AsyncSession, email: str) -> bool:
    return await find_by_email(session, email) is not None


def search_users(
    query: str | None, *, include_suspended: bool = False, viewer_id: str | None = None
) -> Select[User]:
    """Users whose username or display name starts with `query`, alphabetically.

    With `viewer_id`, users in a block with the viewer (either way) are left out.
    """
    statement = select(User)
    if query:
        prefix = escape_like(query.lower()) + "%"
        statement = statement.where(
            or_(
                User.username_key.like(prefix, escape="\\"),
                func.lower(User.display_name).like(prefix, escape="\\"),
            )
        )
    if not include_suspended:
        statement = statement.where(User.suspended.is_(False))
    if viewer_id is not None:
        statement = statement.where(~blocked_either_way(viewer_id, User.id))
    return statement.order_by(User.username_key, User.id)


async def count_readable_posts(session: AsyncSession, viewer: User, author_id: str) -> int:
    """How many of the author's posts the viewer may read."""
    count = await session.scalar(
        select(func.count()).select_from(Post).where(Post.author_id == author_id, can_read_post(viewer))
    )
    return int(count or 0)


async def delete_user(session: AsyncSession, user_id: str) -> None:
    # Rows that belong to the user go with it through ON DELETE CASCADE.
    await session.execute(delete(User).where(User.id == user_id))


def api_keys_of(user_id: str) -> Select[ApiKey]:
    return select(ApiKey).where(ApiKey.user_id == user_id)


async def get_api_key(session: AsyncSession, user_id: str, key_id: str) -> ApiKey | None:
    return await session.scalar(select(ApiKey).where(ApiKey.id == key_id, ApiKey.user_id == user_id))


async def find_api_key(session: AsyncSession, key_hash: str, now: datetime) -> tuple[ApiKey, User] | None:
    """An unexpired key and its active owner, in one query."""
    row = (
        await session.execute(
            select(ApiKey, User)
            .join(User, User.id == ApiKey.user_id)
            .where(
                ApiKey.key_hash == key_hash,
                or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now),
                User.suspended.is_(False),
            )
        )
    ).first()
    return (row[0], row[1]) if row else None


async def touch_api_key(session: AsyncSession, key_id: str, now: datetime) -> None:
    await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now))
