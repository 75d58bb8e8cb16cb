"""User rules: profiles, search, password change, account deletion, API keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from kith.core.errors import BadRequest, Forbidden, NotFound
from kith.core.pagination import CursorParams, OffsetParams
from kith.core.realtime import publish_after_commit
from kith.core.security import PasswordHasher, hash_token, new_token
from kith.db.models import ApiKey, User
from kith.media import service as media
from kith.posts import service as posts
from kith.runtime.events import announce
from kith.runtime.outbox import forget_kept_emails_to
from kith.social import service as social
from kith.users import repository
from kith.users.events import AccountDeleting
from kith.users.schemas import ApiKeyCreate, ProfileUpdate, UserProfile

# The statement behind the user directory, for the admin list.
search_statement = repository.search_users

API_KEY_PREFIX = "kith_"


class WrongPassword(Forbidden):
    code = "wrong_password"
    default_detail = "The password is wrong."
    description = "The current password is wrong."


class ExpiryInPast(BadRequest):
    code = "expiry_in_past"
    default_detail = "The expiry has already passed."
    description = "An API key's `expires_at` must be in the future."


class ApiKeyNotFound(NotFound):
    code = "api_key_not_found"
    default_detail = "No such API key."
    description = "No such API key."


async def profile(session: AsyncSession, viewer: User, user: User) -> UserProfile:
    """The public profile of a user visible to the viewer, with counts and relationship."""
    return UserProfile.of(
        user,
        friend_count=await social.friend_count(session, viewer, user),
        post_count=await repository.count_readable_posts(session, viewer, user.id),
        relationship=await social.relationship(session, viewer, user),
    )


async def update_profile(session: AsyncSession, user: User, changes: ProfileUpdate, *, now: datetime) -> User:
    """Apply the fields the client sent; absent fields stay as they are."""
    if changes.display_name is not None:
        user.display_name = changes.display_name
    if changes.bio is not None:
        user.bio = changes.bio
    if "avatar_media_id" in changes.model_fields_set:
        await media.set_avatar(session, user, changes.avatar_media_id, now=now)
    return user


async def check_password(passwords: PasswordHasher, user: User, password: str) -> None:
    valid, _ = await passwords.verify(password, user.password_hash)
    if not valid:
        raise WrongPassword()


async def delete_account(session: AsyncSession, user: User) -> None:
    """Delete the account and, through cascades, everything it owns. Its open streams, on
    every instance, check their session at once and close.

    Nothing that holds its e-mail address stays in the database (docs/security.md#privacy):
    the e-mails kept for it during an SMTP outage and the answers kept for its retries go
    in the same transaction; its one-time tokens go with it (cascade). `AccountDeleting`
    lets the exports delete its archives' files once the deletion commits.
    """
    await announce(session, AccountDeleting(user_id=user.id))
    await posts.forget_activity_of(session, user.id)
    await media.forget_owner(session, user.id)
    await forget_kept_emails_to(session, user.email)
    await repository.forget_stored_answers(session, user.id, user.email)
    await repository.delete_user(session, user.id)
    publish_after_commit(session, user.id, {"event": "_revalidate"})


async def search(
    session: AsyncSession, viewer: User, query: str | None, params: OffsetParams
) -> tuple[list[User], int]:
    """Users by name prefix, without suspended users or anyone in a block with the viewer."""
    return await params.fetch(session, repository.search_users(query, viewer_id=viewer.id))


async def list_api_keys(
    session: AsyncSession, user: User, params: CursorParams
) -> tuple[list[ApiKey], str | None]:
    return await params.fetch(session, repository.api_keys_of(user.id), ApiKey.id)


async def create_api_key(
    session: AsyncSession, user: User, data: ApiKeyCreate, *, now: datetime
) -> tuple[ApiKey, str]:
    """Make a key; the secret is returned once and only its hash is kept."""
    if data.expires_at is not None and data.expires_at <= now:
        # Judged against the clock, which no schema knows: 400, not 422.
        error = ExpiryInPast()
        error.errors = [
            {"field": "body.expires_at", "message": "must be in the future", "type": "value_error"}
        ]
        raise error
    secret = API_KEY_PREFIX + new_token()
    key = ApiKey(
        user_id=user.id,
        name=data.name,
        prefix=secret[:12],
        key_hash=hash_token(secret),
        scopes=" ".join(data.scopes),
        expires_at=data.expires_at,
    )
    session.add(key)
    await session.flush()
    return key, secret


async def delete_api_key(session: AsyncSession, user: User, key_id: str) -> None:
    key = await repository.get_api_key(session, user.id, key_id)
    if key is None:
        raise ApiKeyNotFound()
    await session.delete(key)


async def member_count(session: AsyncSession) -> int:
    """How many accounts the server has, suspended ones left out."""
    return await repository.count_members(session)
