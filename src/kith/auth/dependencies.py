"""Who is calling: access tokens, API keys, scopes and roles, as dependencies.

Routes declare what they need (`CurrentUser`, `LoginUser`, `require_role(...)`);
no handler checks credentials itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from kith.auth import jobs, oauth, repository, scopes
from kith.auth import service as auth
from kith.core.errors import Forbidden, Unauthorized
from kith.core.jobs import enqueue
from kith.core.security import hash_token
from kith.core.urls import API_PREFIX, origin_of
from kith.db.models import STAFF_ROLES, ApiKey, OAuthApp, OAuthToken, Role, User
from kith.http.deps import AppSettings, Passwords, request_now, token_checks
from kith.http.session import DbSession

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# How stale `last_used_at` of an API key may get before a request refreshes it.
API_KEY_TOUCH_INTERVAL = timedelta(minutes=1)
# Mastodon's sentence for a token without the scope a route needs.
OUTSIDE_SCOPES = "This action is outside the authorized scopes."


class InsufficientScope(Forbidden):
    code = "insufficient_scope"
    default_detail = "This API key is read-only."
    description = (
        "The credentials' scopes do not allow this: a read-only API key, or an app token "
        "granted no scope that holds the one needed."
    )


class AppTokenNotAccepted(auth.InvalidAuthToken):
    """An app token on Kith's own API, which takes access tokens and API keys only."""

    default_detail = "App tokens work on the Mastodon-compatible API only; use an access token or an API key."


class ApiKeyNotAllowed(Forbidden):
    code = "api_key_not_allowed"
    default_detail = "API keys cannot do this; use an access token from a login."
    description = "API keys cannot manage credentials or use admin routes."


class InsufficientRole(Forbidden):
    code = "insufficient_role"
    default_detail = "Your role does not allow this."
    description = "The caller's role does not allow this."


async def same_origin(request: Request, settings: AppSettings) -> None:
    """Refuse a cookie-authenticated request that another site's page made (CSRF).

    The refresh cookie is `SameSite=Strict` already; this is the second lock, for browsers
    that ignore SameSite and for same-site but cross-origin pages. A browser sends `Origin`
    on every POST, and cannot be made to forge it: it must be the configured public URL's
    origin, or name the host the request was sent to (the `Host` header, which the trusted
    hosts check has already vetted). `Sec-Fetch-Site`, where the browser sends it, must say
    `same-origin`.
    """
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site != "same-origin":
        raise auth.CrossSiteRequest()
    origin = (request.headers.get("origin") or "").lower()
    host = (request.headers.get("host") or "").lower()
    if not origin or origin == "null":
        raise auth.CrossSiteRequest()
    if origin != origin_of(settings.public_url) and (not host or urlsplit(origin).netloc != host):
        raise auth.CrossSiteRequest()


SameOrigin = Depends(same_origin)


class Credentials(OAuth2PasswordBearer):
    """Both credentials a request may carry, read in one step: the access token
    (`Authorization: Bearer`) and the API key (`X-API-Key`), each None when absent.

    One dependency instead of one per scheme (FastAPI spends about 8 µs on each). The
    OpenAPI document shows it as the OAuth2 password flow (Swagger UI's Authorize button
    logs in through it); `kith.openapi` declares the API key and the bearer scheme beside
    it on every operation that takes it.
    """

    async def __call__(self, request: Request) -> tuple[str | None, str | None]:  # type: ignore[override]
        headers = request.headers
        scheme, _, token = (headers.get("authorization") or "").partition(" ")
        token = token.strip()  # as FastAPI's schemes read it: `Bearer   ` carries no token
        return (token or None) if scheme.lower() == "bearer" else None, headers.get("x-api-key") or None


credentials_scheme = Credentials(
    tokenUrl=f"{API_PREFIX}/auth/token",
    scheme_name="OAuth2PasswordBearer",
    auto_error=False,
    description="An access token from `/auth/login`, `/auth/token` or `/auth/refresh`.",
)
# The API key's scheme in the OpenAPI document (`kith.openapi`); read by `Credentials`.
API_KEY_SCHEME = {
    "type": "apiKey",
    "description": "A personal API key (`kith_…`).",
    "in": "header",
    "name": "X-API-Key",
}
RequestCredentials = Annotated[tuple[str | None, str | None], Depends(credentials_scheme)]


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: a user, through a session token, an API key or (on the
    Mastodon-compatible API) an app's OAuth token."""

    user: User
    # The login session (an AuthSession row) the access token belongs to; None otherwise.
    auth_session_id: str | None = None
    api_key: ApiKey | None = None
    app_token: OAuthToken | None = None

    @property
    def via_api_key(self) -> bool:
        return self.api_key is not None

    def allows(self, scope: str) -> bool:
        """Whether the credentials allow what needs `scope` (one of Mastodon's, see
        `kith.auth.scopes`): a login allows everything, an API key its `read` or `read write`,
        an app token what it was granted."""
        if self.app_token is not None:
            return scopes.allows(self.app_token.scope_list, scope)
        if self.api_key is not None:
            return scopes.allows(self.api_key.scope_list, scope)
        return True


_PRINCIPAL = "kith_principal"


async def authenticate(
    request: Request,
    session: DbSession,
    credentials: tuple[str | None, str | None],
    *,
    app_tokens: bool = False,
) -> Principal:
    """Authenticate the request, or answer 401 with `WWW-Authenticate: Bearer`.

    Once per request: the caller found is kept on the request for every other
    dependency that asks (`CurrentUser` and `CurrentPrincipal` are separate dependencies,
    each one call the fewer for the routes that take only one of them). App tokens
    (`kith_at_...`) are taken only where `app_tokens` says so: on the Mastodon-compatible API
    (docs/security.md#app-tokens-and-scopes).
    """
    state = request.scope.setdefault("state", {})
    known: Principal | None = state.get(_PRINCIPAL)
    if known is not None:
        return known
    token, api_key = credentials
    if not token and not api_key:
        raise Unauthorized()
    principal = await principal_of(
        request,
        session,
        (token, api_key),
        app_tokens=app_tokens,
        read_only=request.method in READ_METHODS,
    )
    if principal is None:
        raise auth.InvalidAuthToken()
    key = principal.api_key
    if key is not None and request.method not in READ_METHODS and "write" not in key.scope_list:
        raise InsufficientScope()
    state["user_id"] = principal.user.id
    state[_PRINCIPAL] = principal
    return principal


async def principal_of(
    connection: HTTPConnection,
    session: AsyncSession,
    credentials: tuple[str | None, str | None],
    *,
    app_tokens: bool,
    read_only: bool,
    now: datetime | None = None,
) -> Principal | None:
    """Whose credentials these are (a bearer token first, else an API key); None when they
    are not valid. Also for a stream, which checks its caller again while it stays open
    (with the `now` of each check; a request checks at its own instant)."""
    token, api_key = credentials
    now = now or request_now(connection)
    principal: Principal | None = None
    if token and token.startswith(oauth.ACCESS_TOKEN_PREFIX):
        if not app_tokens:
            raise AppTokenNotAccepted()
        principal = await _app_token_principal(session, token, now)
    elif token:
        checks = token_checks(connection)
        found_session = await auth.user_for_access_token(
            session, checks.codec, token, now=now, cache=checks.live_sessions, read_only=read_only
        )
        if found_session is not None:
            principal = Principal(user=found_session[0], auth_session_id=found_session[1])
    elif api_key:
        found = await repository.find_api_key(session, hash_token(api_key), now)
        if found is not None:
            found_key, user = found
            # A key acts as a plain user, whatever its owner's role (docs/security.md).
            user.act_as_plain_user()
            principal = Principal(user=user, api_key=found_key)
            last_used = found_key.last_used_at
            if last_used is None or now - last_used > API_KEY_TOUCH_INTERVAL:
                # Recorded by a job, so a read never has to take the write lock.
                enqueue(session, jobs.touch_api_key, key_id=found_key.id)
    return principal


async def _app_token_principal(session: AsyncSession, token: str, now: datetime) -> Principal | None:
    found = await oauth.token_caller(session, token)
    if found is None:
        return None
    app_token, _app, user = found
    if user is None:
        raise oauth.UserRequired()
    # Like an API key, an app acts as a plain user whatever its user's role: staff powers stay
    # with Kith's own clients (docs/security.md#app-tokens-and-scopes).
    user.act_as_plain_user()
    last_used = app_token.last_used_at
    if last_used is None or now - last_used > API_KEY_TOUCH_INTERVAL:
        enqueue(session, jobs.touch_app_token, token_id=app_token.id)
    return Principal(user=user, app_token=app_token)


async def current_principal(
    request: Request, session: DbSession, credentials: RequestCredentials
) -> Principal:
    """The caller of Kith's own API (see `authenticate`): a login or an API key."""
    return await authenticate(request, session, credentials)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def current_user(request: Request, session: DbSession, credentials: RequestCredentials) -> User:
    """The authenticated caller's user (see `current_principal`)."""
    return (await authenticate(request, session, credentials)).user


CurrentUser = Annotated[User, Depends(current_user)]


async def login_principal(principal: CurrentPrincipal) -> Principal:
    """A caller who logged in: API keys cannot manage credentials or use admin routes."""
    if principal.via_api_key:
        raise ApiKeyNotAllowed()
    return principal


LoginPrincipal = Annotated[Principal, Depends(login_principal)]


async def login_user(principal: LoginPrincipal) -> User:
    return principal.user


LoginUser = Annotated[User, Depends(login_user)]


def require_role(*roles: Role) -> Callable[[Principal], Awaitable[User]]:
    """A guard: the caller, logged in (not by API key), must hold one of `roles`."""

    async def guard(principal: LoginPrincipal) -> User:
        if principal.user.role not in roles:
            raise InsufficientRole()
        return principal.user

    return guard


AdminUser = Annotated[User, Depends(require_role(Role.admin))]
StaffUser = Annotated[User, Depends(require_role(*STAFF_ROLES))]


async def password_hashing_slot(passwords: Passwords) -> AsyncIterator[None]:
    """For routes that check a password: wait for the hasher before taking a database connection.

    Without it, a flood of logins would each hold a pooled connection (and on SQLite the
    write lock) while queueing for the hashing threads, and starve every other request.
    """
    async with passwords.slot():
        yield


# Listed before the route's other dependencies, so the slot is taken before the session.
HashingSlot = Depends(password_hashing_slot, scope="function")


# --- the Mastodon-compatible API: app tokens and scopes --------------------------------------


def require_scope(*needed: str) -> Callable[[Request, DbSession, RequestCredentials], Awaitable[User]]:
    """A guard for a Mastodon-compatible route: the caller (a login, an API key or an app
    token) must hold one of the `needed` scopes, or a scope that holds it; else 403."""

    async def guard(request: Request, session: DbSession, credentials: RequestCredentials) -> User:
        principal = await authenticate(request, session, credentials, app_tokens=True)
        if not any(principal.allows(scope) for scope in needed):
            raise InsufficientScope(OUTSIDE_SCOPES)
        return principal.user

    guard.required_scope = needed  # type: ignore[attr-defined]  # for the route inventory's tests
    return guard


async def mastodon_user(request: Request, session: DbSession, credentials: RequestCredentials) -> User:
    """The signed-in user of a Mastodon-compatible route that needs no particular scope."""
    return (await authenticate(request, session, credentials, app_tokens=True)).user


MastodonUser = Annotated[User, Depends(mastodon_user)]


async def calling_app(request: Request, session: DbSession, credentials: RequestCredentials) -> OAuthApp:
    """The app whose token the request carries (a user's or the app's own), or 401."""
    token, _api_key = credentials
    found = None
    if token and token.startswith(oauth.ACCESS_TOKEN_PREFIX):
        found = await oauth.token_caller(session, token)
    if found is None:
        raise auth.InvalidAuthToken() if token else Unauthorized()
    return found[1]


CallingApp = Annotated[OAuthApp, Depends(calling_app)]
