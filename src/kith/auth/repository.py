"""Every query on sessions, refresh tokens and one-time e-mail tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kith.db.models import AuthSession, OneTimeToken, RefreshToken, TokenPurpose, User

# Runs on every authenticated request: built once, run with values (see kith.feed.repository).
_ACTIVE_SESSION_USER = (
    select(User)
    .join(AuthSession, AuthSession.user_id == User.id)
    .where(
        AuthSession.id == bindparam("session_id", type_=String),
        User.id == bindparam("user_id", type_=String),
        AuthSession.revoked_at.is_(None),
        AuthSession.expires_at > bindparam("now", type_=AuthSession.expires_at.type),
        User.suspended.is_(False),
    )
)


async def active_session_user(
    session: AsyncSession, user_id: str, session_id: str, now: datetime
) -> User | None:
    """The user behind an access token, if its session is live and the user not suspended.

    One indexed query by primary key; it runs on every authenticated request.
    """
    return await session.scalar(
        _ACTIVE_SESSION_USER, {"session_id": session_id, "user_id": user_id, "now": now}
    )


async def find_refresh_token(
    session: AsyncSession, token_hash: str
) -> tuple[RefreshToken, AuthSession] | None:
    row = (
        await session.execute(
            select(RefreshToken, AuthSession)
            .join(AuthSession, AuthSession.id == RefreshToken.session_id)
            .where(RefreshToken.token_hash == token_hash)
        )
    ).first()
    return (row[0], row[1]) if row else None


async def mark_refresh_token_used(session: AsyncSession, token_id: str, now: datetime) -> bool:
    """Mark a refresh token rotated; False if another request already did (a race or reuse)."""
    result = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == token_id, RefreshToken.used_at.is_(None))
        .values(used_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def revoke_session(session: AsyncSession, session_id: str, now: datetime) -> None:
    await session.execute(
        update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def revoke_user_sessions(
    session: AsyncSession, user_id: str, now: datetime, *, except_session_id: str | None = None
) -> None:
    statement = (
        update(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    if except_session_id is not None:
        statement = statement.where(AuthSession.id != except_session_id)
    await session.execute(statement)


async def find_one_time_token(
    session: AsyncSession, token_hash: str, purpose: TokenPurpose
) -> OneTimeToken | None:
    return await session.scalar(
        select(OneTimeToken).where(OneTimeToken.token_hash == token_hash, OneTimeToken.purpose == purpose)
    )


async def consume_one_time_token(session: AsyncSession, token_id: str, now: datetime) -> bool:
    """Use a token once; False when a concurrent request used it first."""
    result = await session.execute(
        update(OneTimeToken)
        .where(OneTimeToken.id == token_id, OneTimeToken.used_at.is_(None))
        .values(used_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def retire_one_time_tokens(
    session: AsyncSession, user_id: str, purpose: TokenPurpose, now: datetime
) -> None:
    """Make every outstanding token of this purpose unusable (a new one replaces them)."""
    await session.execute(
        update(OneTimeToken)
        .where(
            OneTimeToken.user_id == user_id,
            OneTimeToken.purpose == purpose,
            OneTimeToken.used_at.is_(None),
        )
        .values(used_at=now)
    )
