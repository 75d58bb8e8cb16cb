"""Routes of accounts and authentication (docs/api.md#accounts-and-authentication)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Cookie, Form, Header, Request, Response, status

from kith.auth import service
from kith.auth.dependencies import CurrentUser, HashingSlot, LoginPrincipal, SameOrigin
from kith.auth.schemas import (
    AccessToken,
    LoginRequest,
    PasswordGrantForm,
    PasswordResetConfirm,
    PasswordResetRequest,
    PrivateUser,
    RefreshRequest,
    RegisterRequest,
    TokenPair,
    TokenRequest,
)
from kith.core.config import Settings
from kith.core.urls import API_PREFIX, absolute_url
from kith.http.deps import AppSettings, Now, Passwords, Tokens
from kith.http.errors import problem_responses
from kith.http.idempotency import IdempotencyDep
from kith.http.ratelimit import LoginThrottleDep, body_email, rate_limit
from kith.http.session import DbSession

router = APIRouter(prefix="/auth", tags=["auth"])
UserAgent = Annotated[str | None, Header(include_in_schema=False)]

# The web client's refresh token: an HttpOnly cookie that only the three `/auth/web` routes
# receive (docs/web-client.md#signing-in). Scripts never see it; access tokens stay in memory.
REFRESH_COOKIE = "kith_refresh"
WEB_AUTH_PATH = f"{API_PREFIX}/auth/web"
RefreshCookie = Annotated[str | None, Cookie(alias=REFRESH_COOKIE, include_in_schema=False)]


def _cookie_is_secure(request: Request, settings: Settings) -> bool:
    # Secure over HTTPS: the request came over it, or the operator's public URL says it does
    # (a proxy that ends TLS may not tell uvicorn).
    return request.url.scheme == "https" or settings.public_url.startswith("https://")


def _set_refresh_cookie(response: Response, request: Request, settings: Settings, token: str) -> None:
    response.set_cookie(
        REFRESH_COOKIE,
        token,
        max_age=settings.session_max_age_days * 24 * 3600,
        path=WEB_AUTH_PATH,
        secure=_cookie_is_secure(request, settings),
        httponly=True,
        samesite="strict",
    )


def _clear_refresh_cookie(response: Response, request: Request, settings: Settings) -> None:
    response.delete_cookie(
        REFRESH_COOKIE,
        path=WEB_AUTH_PATH,
        secure=_cookie_is_secure(request, settings),
        httponly=True,
        samesite="strict",
    )


def _access_only(pair: TokenPair) -> AccessToken:
    return AccessToken(access_token=pair.access_token, expires_in=pair.expires_in)


@router.post(
    "/register",
    operation_id="register",
    status_code=status.HTTP_201_CREATED,
    response_model=PrivateUser,
    responses=problem_responses(409, 422, 429),
    dependencies=[rate_limit("register")],
)
async def register(
    idempotency: IdempotencyDep,
    data: RegisterRequest,
    response: Response,
    session: DbSession,
    passwords: Passwords,
    settings: AppSettings,
    now: Now,
) -> object:
    """Create an account. A verification e-mail and a welcome e-mail follow in the background.

    Errors: 409 `username_taken` or `email_taken`; 422 names each invalid field
    (a password equal to the username or e-mail, or a common one, is refused).
    """
    if idempotency.replay is not None:
        return idempotency.replay
    user = await service.register(session, passwords, settings, data, now=now)
    response.headers["Location"] = absolute_url(f"{API_PREFIX}/users/{user.id}")
    return await idempotency.answer(session, user)


@router.post(
    "/login",
    operation_id="logIn",
    response_model=TokenPair,
    responses=problem_responses(401, 403, 422, 429),
    dependencies=[rate_limit("login"), HashingSlot],
)
async def login(
    data: LoginRequest,
    session: DbSession,
    passwords: Passwords,
    tokens: Tokens,
    settings: AppSettings,
    now: Now,
    throttle: LoginThrottleDep,
    user_agent: UserAgent = None,
) -> TokenPair:
    """Log in with an e-mail or username and a password; returns an access and refresh token.

    401 `invalid_credentials` is the same answer, in about the same time, for an
    unknown account and for a wrong password. 403 `account_suspended` for suspended accounts.
    429 `rate_limited`: too many attempts from this address, or too many failed ones for
    this account (from this address, or from anywhere); `Retry-After` says when to retry.
    """
    user = await service.authenticate(session, passwords, data.identifier, data.password, throttle)
    return await service.start_session(session, tokens, settings, user, user_agent, now=now)


@router.post(
    "/token",
    operation_id="issueToken",
    response_model=TokenPair,
    responses=problem_responses(401, 403, 422, 429),
    dependencies=[rate_limit("login"), HashingSlot],
)
async def token(
    form: Annotated[PasswordGrantForm, Form()],
    session: DbSession,
    passwords: Passwords,
    tokens: Tokens,
    settings: AppSettings,
    now: Now,
    throttle: LoginThrottleDep,
    user_agent: UserAgent = None,
) -> TokenPair:
    """OAuth2 password grant (form encoded), for Swagger UI's Authorize button and OAuth2 tools.

    `username` may be a username or an e-mail address. Limited exactly like `/auth/login`,
    and the two share their counts.
    """
    user = await service.authenticate(session, passwords, form.username, form.password, throttle)
    return await service.start_session(session, tokens, settings, user, user_agent, now=now)


@router.post(
    "/refresh", operation_id="refreshTokens", response_model=TokenPair, responses=problem_responses(401, 422)
)
async def refresh(data: RefreshRequest, session: DbSession, tokens: Tokens, now: Now) -> TokenPair:
    """Trade a refresh token for a new pair. The old refresh token stops working.

    Presenting an already rotated refresh token again ends the whole session (reuse
    detection): every token of that login stops working.
    """
    return await service.refresh(session, tokens, data.refresh_token, now=now)


@router.post(
    "/logout",
    operation_id="logOut",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403),
)
async def logout(principal: LoginPrincipal, session: DbSession, now: Now) -> None:
    """End the current session: its refresh token and access tokens stop working at once."""
    assert principal.auth_session_id is not None
    await service.logout(session, principal.auth_session_id, now=now)


@router.post(
    "/logout-all",
    operation_id="logOutEverywhere",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403),
)
async def logout_all(principal: LoginPrincipal, session: DbSession, now: Now) -> None:
    """End every session of the account, this one included."""
    await service.logout_all(session, principal.user.id, now=now)


@router.post(
    "/verify-email",
    operation_id="verifyEmail",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(400, 422),
)
async def verify_email(data: TokenRequest, session: DbSession, now: Now) -> None:
    """Confirm the e-mail address with the token from the verification e-mail (single use, 7 days).
    API keys made before it are revoked: until then nobody had proven the address."""
    await service.verify_email(session, data.token, now=now)


@router.post(
    "/verify-email/resend",
    operation_id="resendVerificationEmail",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(401, 409),
)
async def resend_verification(user: CurrentUser, session: DbSession, settings: AppSettings, now: Now) -> None:
    """Send a new verification e-mail; links in earlier ones stop working. 409 `already_verified`."""
    await service.resend_verification(session, settings, user, now=now)


@router.post(
    "/password-reset",
    operation_id="requestPasswordReset",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(422, 429),
    dependencies=[rate_limit("password_reset", key=body_email)],
)
async def password_reset(data: PasswordResetRequest, session: DbSession) -> None:
    """E-mail a password reset token if an account has this address. Always 202, so the
    answer does not tell whether the account exists. 429 after 5 requests for one address
    in 30 minutes (by default), whether or not it has an account."""
    await service.request_password_reset(session, data.email)


@router.post(
    "/password-reset/confirm",
    operation_id="confirmPasswordReset",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(400, 422),
)
async def password_reset_confirm(
    data: PasswordResetConfirm, session: DbSession, passwords: Passwords, now: Now
) -> None:
    """Set a new password with a reset token (single use, 1 hour). Ends every session and revokes
    every API key; the e-mail address counts as verified."""
    await service.confirm_password_reset(session, passwords, data.token, data.new_password, now=now)


@router.post(
    "/web/login",
    operation_id="logInWeb",
    response_model=AccessToken,
    responses=problem_responses(401, 403, 422, 429),
    dependencies=[SameOrigin, rate_limit("login"), HashingSlot],
)
async def web_login(
    data: LoginRequest,
    request: Request,
    response: Response,
    session: DbSession,
    passwords: Passwords,
    tokens: Tokens,
    settings: AppSettings,
    now: Now,
    throttle: LoginThrottleDep,
    user_agent: UserAgent = None,
) -> AccessToken:
    """Log in from Kith's web client: the refresh token goes into an HttpOnly cookie.

    The same check, limits and answers as `/auth/login`, but the body holds only the access
    token; the refresh token is set as the `kith_refresh` cookie (`HttpOnly`,
    `SameSite=Strict`, `Secure` over HTTPS, its `Path` this route's own), which no script
    can read. Only a request from this server's own pages is accepted (403 `cross_site_request`
    when `Origin` is another site's or missing).
    """
    user = await service.authenticate(session, passwords, data.identifier, data.password, throttle)
    pair = await service.start_session(session, tokens, settings, user, user_agent, now=now)
    _set_refresh_cookie(response, request, settings, pair.refresh_token)
    return _access_only(pair)


@router.post(
    "/web/refresh",
    operation_id="refreshWeb",
    response_model=AccessToken,
    responses=problem_responses(401, 403),
    dependencies=[SameOrigin],
)
async def web_refresh(
    request: Request,
    response: Response,
    session: DbSession,
    tokens: Tokens,
    settings: AppSettings,
    now: Now,
    refresh_token: RefreshCookie = None,
) -> AccessToken:
    """A new access token for the web client, from its refresh cookie, which is rotated.

    401 `invalid_token` (and the cookie cleared) when there is no cookie or its session has
    ended; the rotation and reuse detection are those of `/auth/refresh`.
    """
    if not refresh_token:
        raise service.InvalidRefreshToken("Not signed in.")
    try:
        pair = await service.refresh(session, tokens, refresh_token, now=now)
    except service.InvalidRefreshToken as exc:
        _clear_refresh_cookie(response, request, settings)
        exc.headers = {**exc.headers, "Set-Cookie": response.headers["set-cookie"]}
        raise
    _set_refresh_cookie(response, request, settings, pair.refresh_token)
    return _access_only(pair)


@router.post(
    "/web/logout",
    operation_id="logOutWeb",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(403),
    dependencies=[SameOrigin],
)
async def web_logout(
    request: Request,
    response: Response,
    session: DbSession,
    settings: AppSettings,
    now: Now,
    refresh_token: RefreshCookie = None,
) -> None:
    """End the web client's session (the one its refresh cookie belongs to) and clear the cookie.

    Its access tokens stop working at once. Without a cookie there is nothing to end: 204 all the same.
    """
    if refresh_token:
        await service.logout_by_refresh_token(session, refresh_token, now=now)
    _clear_refresh_cookie(response, request, settings)
