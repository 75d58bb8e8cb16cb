"""Routes of users, profiles and personal API keys (docs/api.md#users)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from kith.auth import oauth
from kith.auth import service as auth
from kith.auth.dependencies import CurrentUser, LoginPrincipal, LoginUser
from kith.auth.schemas import LoginSessionView, PrivateUser, PublicUser
from kith.core.pagination import CursorPage, OffsetPage
from kith.core.schemas import NO_NUL
from kith.http.deps import Now, Passwords
from kith.http.errors import problem_responses
from kith.http.idempotency import IdempotencyDep
from kith.http.pagination import CursorDep, OffsetDep
from kith.http.session import DbSession
from kith.social import service as social
from kith.users import service
from kith.users.schemas import (
    AccountDeletion,
    ApiKeyCreate,
    ApiKeyView,
    AuthorizationList,
    AuthorizationView,
    AuthorizedApp,
    CreatedApiKey,
    LoginSessionList,
    PasswordChange,
    ProfileUpdate,
    UserProfile,
)

router = APIRouter(prefix="/users", tags=["users"])
me = APIRouter(prefix="/users/me", tags=["users"])


@me.get("", operation_id="getMe", response_model=PrivateUser, responses=problem_responses(401))
async def get_me(user: CurrentUser) -> object:
    """The caller's own account, with private fields (e-mail, role)."""
    return user


@me.patch(
    "", operation_id="updateMe", response_model=PrivateUser, responses=problem_responses(400, 401, 403, 422)
)
async def update_me(changes: ProfileUpdate, user: CurrentUser, session: DbSession, now: Now) -> object:
    """Change the display name, bio or avatar. Fields left out stay as they are.

    `avatar_media_id` takes the `id` of one of your own uploads (`POST /media`) that is
    not attached to a post (400 `media_not_available` otherwise); `null` removes the avatar.
    """
    return await service.update_profile(session, user, changes, now=now)


@me.post(
    "/password",
    operation_id="changePassword",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 422),
)
async def change_password(
    data: PasswordChange, principal: LoginPrincipal, session: DbSession, passwords: Passwords, now: Now
) -> None:
    """Change the password. Every other session ends (this one stays) and every API key is
    revoked. 403 `wrong_password`."""
    user = principal.user
    await service.check_password(passwords, user, data.current_password)
    await auth.set_password(session, passwords, user, data.new_password, field="body.new_password")
    await auth.end_other_auth_sessions(session, user.id, principal.auth_session_id, now=now)


@me.delete(
    "",
    operation_id="deleteMe",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 422),
)
async def delete_me(data: AccountDeletion, user: LoginUser, session: DbSession, passwords: Passwords) -> None:
    """Delete the account and everything it wrote, liked and sent. Needs the password."""
    await service.check_password(passwords, user, data.password)
    await service.delete_account(session, user)


@me.get(
    "/api-keys",
    operation_id="listApiKeys",
    response_model=CursorPage[ApiKeyView],
    responses=problem_responses(401, 403, 422),
)
async def list_api_keys(user: LoginUser, session: DbSession, page: CursorDep) -> object:
    """The caller's API keys, newest first. Secrets are never shown again, only their prefix."""
    keys, next_cursor = await service.list_api_keys(session, user, page.params)
    return page.page(keys, next_cursor)


@me.post(
    "/api-keys",
    operation_id="createApiKey",
    status_code=status.HTTP_201_CREATED,
    response_model=CreatedApiKey,
    responses=problem_responses(400, 401, 403, 422),
)
async def create_api_key(
    idempotency: IdempotencyDep,
    data: ApiKeyCreate,
    user: LoginUser,
    session: DbSession,
    now: Now,
) -> object:
    """Create a personal API key, sent as `X-API-Key`. The key is shown once, in this response.

    A `["read"]` key gets 403 on every write. No API key can manage credentials or use admin routes,
    and a key acts as a plain user whatever its owner's role: staff powers need a login.
    An `expires_at` that has already passed is 400 `expiry_in_past`.
    """
    if idempotency.replay is not None:
        return idempotency.replay
    key, secret = await service.create_api_key(session, user, data, now=now)
    # The view's `scopes` is read from the ORM's `scope_list`; the dict it dumps says `scopes`.
    view = ApiKeyView.model_validate(key).model_dump()
    created = CreatedApiKey.model_validate({**view, "key": secret}, by_name=True)
    # A replay answers the same key without its secret: the stored answer never holds it.
    replayed = CreatedApiKey.model_validate({**view, "key": None}, by_name=True)
    return await idempotency.answer(session, created, stored=replayed)


@me.delete(
    "/api-keys/{key_id}",
    operation_id="deleteApiKey",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404),
)
async def delete_api_key(key_id: str, user: LoginUser, session: DbSession) -> None:
    """Revoke an API key at once."""
    await service.delete_api_key(session, user, key_id)


@me.get(
    "/sessions",
    operation_id="listSessions",
    response_model=LoginSessionList,
    responses=problem_responses(401, 403),
)
async def list_sessions(principal: LoginPrincipal, session: DbSession, now: Now) -> object:
    """The account's live logins (browsers and devices), newest first, at most 100; `current`
    marks the one asking. Ending one logs that browser or device out at once."""
    found = await auth.live_sessions(session, principal.user.id, now=now)
    return LoginSessionList(
        items=[
            LoginSessionView(
                id=row.id,
                created_at=row.created_at,
                expires_at=row.expires_at,
                user_agent=row.user_agent,
                current=row.id == principal.auth_session_id,
            )
            for row in found
        ]
    )


@me.delete(
    "/sessions/{session_id}",
    operation_id="endSession",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404),
)
async def end_session(session_id: str, principal: LoginPrincipal, session: DbSession, now: Now) -> None:
    """Log one of the account's sessions out: its refresh and access tokens stop working at once.
    404 `session_not_found` for an id that is not a live session of the caller."""
    await auth.end_session(session, principal.user.id, session_id, now=now)


@me.get(
    "/authorizations",
    operation_id="listAuthorizations",
    response_model=AuthorizationList,
    responses=problem_responses(401, 403),
)
async def list_authorizations(user: LoginUser, session: DbSession) -> object:
    """The apps (Mastodon apps and libraries) the account authorized, newest first, at most 100:
    each with its name, the scopes granted and when it was last used."""
    found = await oauth.authorizations(session, user.id)
    return AuthorizationList(
        items=[
            AuthorizationView(
                id=token.id,
                app=AuthorizedApp(name=app.name, website=app.website),
                scopes=token.scope_list,
                created_at=token.created_at,
                last_used_at=token.last_used_at,
            )
            for token, app in found
        ]
    )


@me.delete(
    "/authorizations/{authorization_id}",
    operation_id="revokeAuthorization",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404),
)
async def revoke_authorization(authorization_id: str, user: LoginUser, session: DbSession) -> None:
    """Revoke an app's access: its token stops working at once. 404 `authorization_not_found`
    for an id that is not one of the caller's."""
    await oauth.revoke_authorization(session, user.id, authorization_id)


@router.get(
    "",
    operation_id="searchUsers",
    response_model=OffsetPage[PublicUser],
    responses=problem_responses(401, 422),
)
async def search_users(
    user: CurrentUser,
    session: DbSession,
    page: OffsetDep,
    q: Annotated[
        str | None, Query(max_length=50, pattern=NO_NUL, description="Username or display-name prefix.")
    ] = None,
) -> object:
    """Find users by the start of their username or display name, alphabetically.

    Suspended users and users in a block with the caller (either way) are left out.
    """
    users, total = await service.search(session, user, q.strip() if q else None, page)
    return page.result([PublicUser.model_validate(found) for found in users], total)


@router.get(
    "/{user_id}", operation_id="getUser", response_model=UserProfile, responses=problem_responses(401, 404)
)
async def get_user(user_id: str, user: CurrentUser, session: DbSession) -> object:
    """A user's public profile, with friend and post counts and the caller's `relationship` to them.

    404 `user_not_found` when there is no such user or it is hidden from the caller
    (suspended, or in a block with the caller either way).
    """
    target = await social.visible_user(session, user, user_id)
    return await service.profile(session, user, target)
