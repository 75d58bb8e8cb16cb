"""Every query on sessions, refresh tokens and one-time e-mail tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String, bindparam, delete, distinct, func, inspect, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import instance_state

from kith.core.mail import normalize_address
from kith.core.security import hash_token, new_token
from kith.db.models import (
    ApiKey,
    AuthSession,
    OAuthApp,
    OAuthGrant,
    OAuthToken,
    OneTimeToken,
    RefreshToken,
    TokenPurpose,
    User,
)

# Runs on every authenticated request: built once, run with values (see kith.feed.repository).
_ACTIVE_SESSION_USER = (
    select(User, AuthSession.expires_at)
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
) -> tuple[User, datetime] | None:
    """The user behind an access token and when its session expires, if the session is
    live and the user not suspended.

    One indexed query by primary key; it runs on every authenticated request that the
    session cache cannot answer.
    """
    row = (
        await session.execute(
            _ACTIVE_SESSION_USER, {"session_id": session_id, "user_id": user_id, "now": now}
        )
    ).first()
    return (row[0], row[1]) if row is not None else None


_USER_MAPPER = inspect(User)
_USER_COLUMNS = tuple(attribute.key for attribute in _USER_MAPPER.column_attrs)


def user_row(user: User) -> dict[str, Any] | None:
    """The column values of a freshly loaded `user`, to stand for it in a later request
    (`attach_user`); None if any is not loaded."""
    loaded = user.__dict__
    if any(key not in loaded for key in _USER_COLUMNS):
        return None
    return {key: loaded[key] for key in _USER_COLUMNS}


def user_from_row(row: dict[str, Any]) -> User:
    """The user of `row`, detached, as if loaded and then let go by its session.

    Built the way the ORM builds a loaded row's object: the values straight into its
    `__dict__`, no attribute events or history (`User(**row)` and
    `make_transient_to_detached` cost 48 µs a request, this 2).
    """
    user: User = _USER_MAPPER.class_manager.new_instance()
    user.__dict__.update(row)
    instance_state(user).key = _USER_MAPPER.identity_key_from_primary_key((row["id"],))
    return user


def attach_user(session: AsyncSession, row: dict[str, Any]) -> User:
    """The user of `row` in `session`, as if just loaded from it, without a query.

    Changing it updates the row on flush like any loaded user.
    """
    user = user_from_row(row)
    session.add(user)
    return user


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


# The most sessions a list shows: a user has one per browser or device that logged in.
SESSION_LIST_LIMIT = 100


async def live_sessions(
    session: AsyncSession, user_id: str, now: datetime, *, session_id: str | None = None
) -> list[AuthSession]:
    """The user's sessions neither revoked nor expired, newest first (one, with `session_id`)."""
    statement = (
        select(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None), AuthSession.expires_at > now)
        .order_by(AuthSession.id.desc())
        .limit(SESSION_LIST_LIMIT)
    )
    if session_id is not None:
        statement = statement.where(AuthSession.id == session_id)
    return list((await session.scalars(statement)).all())


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


async def replace_one_time_token(
    session: AsyncSession, user: User, purpose: TokenPurpose, expires_at: datetime, now: datetime
) -> str:
    """A new single-use token of `purpose` for `user`; earlier ones stop working. Only its
    hash is stored; the token itself is returned, to be e-mailed."""
    await retire_one_time_tokens(session, user.id, purpose, now)
    token = new_token()
    session.add(
        OneTimeToken(
            user_id=user.id,
            purpose=purpose,
            token_hash=hash_token(token),
            email=user.email,
            expires_at=expires_at,
        )
    )
    return token


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


# --- accounts: the lookups every domain uses to find a user ----------------------------


async def get_user(session: AsyncSession, user_id: str) -> User | None:
    return await session.get(User, user_id)


async def find_by_login(session: AsyncSession, identifier: str) -> User | None:
    """Find a user by e-mail (when the identifier has an @) or by username, case-insensitively."""
    key = normalize_address(identifier)
    column = User.email if "@" in key else User.username_key
    return await session.scalar(select(User).where(column == key))


async def find_by_email(session: AsyncSession, email: str) -> User | None:
    return await session.scalar(select(User).where(User.email == normalize_address(email)))


async def username_taken(session: AsyncSession, username: str) -> bool:
    found = await session.scalar(select(User.id).where(User.username_key == username.lower()))
    return found is not None


async def email_taken(session: AsyncSession, email: str) -> bool:
    return await find_by_email(session, email) is not None


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


async def revoke_api_keys(session: AsyncSession, user_id: str) -> None:
    """Delete every API key of the user: they stop working at once."""
    await session.execute(delete(ApiKey).where(ApiKey.user_id == user_id))


async def touch_api_key(session: AsyncSession, key_id: str, now: datetime) -> None:
    await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now))


async def count_users_active_since(session: AsyncSession, since: datetime) -> int:
    """Users, suspended ones left out, who logged in or refreshed a session at `since` or
    later: each of those issued a refresh token."""
    statement = (
        select(func.count(distinct(AuthSession.user_id)))
        .join(RefreshToken, RefreshToken.session_id == AuthSession.id)
        .join(User, User.id == AuthSession.user_id)
        .where(RefreshToken.created_at >= since, User.suspended.is_(False))
    )
    return (await session.execute(statement)).scalar_one()


# --- OAuth apps, authorization codes and app tokens (kith.auth.oauth) -------------------------


async def find_app(session: AsyncSession, client_id: str) -> OAuthApp | None:
    return await session.scalar(select(OAuthApp).where(OAuthApp.client_id == client_id))


async def find_grant(session: AsyncSession, code_hash: str) -> OAuthGrant | None:
    return await session.scalar(select(OAuthGrant).where(OAuthGrant.code_hash == code_hash))


async def consume_grant(session: AsyncSession, grant_id: str, now: datetime) -> bool:
    """Use an authorization code once; False when a concurrent request used it first."""
    result = await session.execute(
        update(OAuthGrant).where(OAuthGrant.id == grant_id, OAuthGrant.used_at.is_(None)).values(used_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def find_app_token(
    session: AsyncSession, token_hash: str
) -> tuple[OAuthToken, OAuthApp, User | None] | None:
    """A live app token with its app and its user (None for an app's own token), in one
    query; None when unknown or when its user is suspended."""
    row = (
        await session.execute(
            select(OAuthToken, OAuthApp, User)
            .join(OAuthApp, OAuthApp.id == OAuthToken.app_id)
            .outerjoin(User, User.id == OAuthToken.user_id)
            .where(OAuthToken.token_hash == token_hash, or_(User.id.is_(None), User.suspended.is_(False)))
        )
    ).first()
    return (row[0], row[1], row[2]) if row else None


async def find_refresh_app_token(session: AsyncSession, app_id: str, refresh_hash: str) -> OAuthToken | None:
    return await session.scalar(
        select(OAuthToken).where(OAuthToken.app_id == app_id, OAuthToken.refresh_token_hash == refresh_hash)
    )


async def app_token_of(session: AsyncSession, app_id: str, token_hash: str) -> OAuthToken | None:
    """The app's token whose access or refresh token has this hash, whoever its user is."""
    return await session.scalar(
        select(OAuthToken).where(
            OAuthToken.app_id == app_id,
            or_(OAuthToken.token_hash == token_hash, OAuthToken.refresh_token_hash == token_hash),
        )
    )


async def delete_app_token(session: AsyncSession, token_id: str) -> None:
    await session.execute(delete(OAuthToken).where(OAuthToken.id == token_id))


async def revoke_app_tokens(session: AsyncSession, user_id: str) -> None:
    """Delete every app token and unused authorization code of the user: they stop working."""
    await session.execute(delete(OAuthToken).where(OAuthToken.user_id == user_id))
    await session.execute(delete(OAuthGrant).where(OAuthGrant.user_id == user_id))


# The most authorizations a list shows.
AUTHORIZATION_LIST_LIMIT = 100


async def user_app_tokens(
    session: AsyncSession, user_id: str, *, token_id: str | None = None
) -> list[tuple[OAuthToken, OAuthApp]]:
    """The user's app tokens with their apps, newest first (one, with `token_id`)."""
    statement = (
        select(OAuthToken, OAuthApp)
        .join(OAuthApp, OAuthApp.id == OAuthToken.app_id)
        .where(OAuthToken.user_id == user_id)
        .order_by(OAuthToken.id.desc())
        .limit(AUTHORIZATION_LIST_LIMIT)
    )
    if token_id is not None:
        statement = statement.where(OAuthToken.id == token_id)
    return [(row[0], row[1]) for row in (await session.execute(statement)).all()]


async def touch_app_token(session: AsyncSession, token_id: str, now: datetime) -> None:
    await session.execute(update(OAuthToken).where(OAuthToken.id == token_id).values(last_used_at=now))
