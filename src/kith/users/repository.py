"""Every query on users and API keys."""

from __future__ import annotations

import json

from sqlalchemy import Select, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from kith.db.models import ApiKey, IdempotencyKey, Post, User
from kith.posts.visibility import can_read_post
from kith.social.relations import blocked_either_way


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


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


async def forget_stored_answers(session: AsyncSession, user_id: str, address: str) -> None:
    """Delete the answers kept for `Idempotency-Key` retries that belong to the account (its
    own creates) or show its e-mail address: its registration's answer, kept under the
    client's IP address rather than the account."""
    # The address as a JSON string, as the stored answer spells it (either escaping).
    spellings = {json.dumps(address), json.dumps(address, ensure_ascii=False)}
    await session.execute(
        delete(IdempotencyKey)
        .where(
            or_(
                IdempotencyKey.owner == user_id,
                *(
                    IdempotencyKey.response_body.like(f"%{escape_like(spelling)}%", escape="\\")
                    for spelling in spellings
                ),
            )
        )
        .execution_options(synchronize_session=False)
    )


async def delete_user(session: AsyncSession, user_id: str) -> None:
    # Rows that belong to the user go with it through ON DELETE CASCADE.
    await session.execute(delete(User).where(User.id == user_id))


def api_keys_of(user_id: str) -> Select[ApiKey]:
    return select(ApiKey).where(ApiKey.user_id == user_id)


async def get_api_key(session: AsyncSession, user_id: str, key_id: str) -> ApiKey | None:
    return await session.scalar(select(ApiKey).where(ApiKey.id == key_id, ApiKey.user_id == user_id))


async def count_members(session: AsyncSession) -> int:
    """Accounts that are not suspended."""
    statement = select(func.count()).select_from(User).where(User.suspended.is_(False))
    return (await session.execute(statement)).scalar_one()
