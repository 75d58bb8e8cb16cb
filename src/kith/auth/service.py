"""Account rules: registration, login, token rotation, logout and the e-mail flows."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kith.auth import jobs, repository
from kith.auth.password_policy import password_problem
from kith.auth.schemas import RegisterRequest, TokenPair
from kith.core.config import Settings
from kith.core.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized, Unprocessable
from kith.core.jobs import enqueue
from kith.core.realtime import publish_after_commit
from kith.core.security import AccessTokenCodec, InvalidToken, PasswordHasher, hash_token, new_token
from kith.db.models import AuthSession, RefreshToken, Role, TokenPurpose, User
from kith.runtime.limits import LoginThrottle
from kith.runtime.session_cache import SessionCache


class UserNotFound(NotFound):
    code = "user_not_found"
    default_detail = "No such user."
    description = "No such user, or not visible to the caller."


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"
    default_detail = "The login or the password is wrong."
    description = "The login or password is wrong."


class InvalidAuthToken(Unauthorized):
    """An access token or API key that is unknown, expired or revoked."""

    code = "invalid_token"
    default_detail = "The credentials are invalid, expired or revoked."
    description = "The token is invalid, expired, revoked or already used."


class InvalidRefreshToken(InvalidAuthToken):
    default_detail = "The refresh token is not valid."


class RefreshTokenReused(InvalidRefreshToken):
    """A rotated refresh token came back: the session is revoked, and that must stick."""

    keeps_changes = True


class CrossSiteRequest(Forbidden):
    code = "cross_site_request"
    default_detail = "This request must come from this server's own pages."
    description = (
        "A request authenticated by the refresh cookie came from another site: its `Origin` "
        "is missing or is not this server's."
    )


class LoginSessionNotFound(NotFound):
    code = "session_not_found"
    default_detail = "No such session."
    description = "No live login session of the caller has this id."


class InvalidOneTimeToken(BadRequest):
    code = "invalid_token"
    default_detail = "The token is invalid, expired or already used."
    description = InvalidAuthToken.description


class UsernameTaken(Conflict):
    code = "username_taken"
    default_detail = "That username is taken."
    description = "Another account has this username (case does not matter)."


class EmailTaken(Conflict):
    code = "email_taken"
    default_detail = "An account with that e-mail address exists."
    description = "Another account has this e-mail address."


class AccountSuspended(Forbidden):
    code = "account_suspended"
    default_detail = "This account is suspended."
    description = "The account is suspended."


class AlreadyVerified(Conflict):
    code = "already_verified"
    default_detail = "The e-mail address is already verified."
    description = "The e-mail address is already verified."


# The account lookup other domains use; they never reach auth's repository directly.
get_user = repository.get_user
# A user by e-mail address or username (`kith export`).
find_by_login = repository.find_by_login


async def find_by_username(session: AsyncSession, username: str) -> User | None:
    """The account with this username (case does not matter); never found by e-mail."""
    if "@" in username or not username:
        return None
    return await repository.find_by_login(session, username)


async def register(
    session: AsyncSession,
    passwords: PasswordHasher,
    settings: Settings,
    data: RegisterRequest,
    *,
    now: datetime,
) -> User:
    """Create an account and queue its verification and welcome e-mails."""
    if await repository.username_taken(session, data.username):
        raise UsernameTaken()
    if await repository.email_taken(session, data.email):
        raise EmailTaken()
    user = User(
        username=data.username,
        username_key=data.username.lower(),
        email=data.email,
        display_name=data.display_name or data.username,
        password_hash=await passwords.hash(data.password),
        role=Role.user,
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError:
        # Lost a race with a concurrent registration of the same name or address.
        raise UsernameTaken("That username or e-mail address is taken.") from None
    await send_verification(session, settings, user, now=now)
    enqueue(session, jobs.send_welcome_email, to=user.email, name=user.display_name)
    return user


async def create_user(
    session: AsyncSession,
    passwords: PasswordHasher,
    *,
    username: str,
    email: str,
    password: str,
    role: Role = Role.user,
    email_verified: bool = False,
) -> User:
    """Create an account directly (the command line's `create-admin`)."""
    data = RegisterRequest(username=username, email=email, password=password)
    taken = await repository.username_taken(session, data.username)
    if taken or await repository.email_taken(session, data.email):
        raise UsernameTaken("That username or e-mail address is taken.")
    user = User(
        username=data.username,
        username_key=data.username.lower(),
        email=data.email,
        display_name=data.username,
        password_hash=await passwords.hash(data.password),
        role=role,
        email_verified=email_verified,
    )
    session.add(user)
    await session.flush()
    return user


async def authenticate(
    session: AsyncSession, passwords: PasswordHasher, identifier: str, password: str, throttle: LoginThrottle
) -> User:
    """Check a login; unknown accounts cost the same hash check as a wrong password.

    Failed attempts are counted per account before the hash is computed, so a spent
    budget answers 429 without any hashing work.
    """
    user = await repository.find_by_login(session, identifier)
    account = user.id if user is not None else f"name:{identifier.strip().lower()}"
    await throttle.check(account)
    valid, new_hash = await passwords.verify(password, user.password_hash if user else None)
    if user is None or not valid:
        await throttle.failed(account)
        raise InvalidCredentials()
    await throttle.succeeded(account)
    if user.suspended:
        raise AccountSuspended()
    if new_hash:
        user.password_hash = new_hash
    return user


async def start_session(
    session: AsyncSession,
    tokens: AccessTokenCodec,
    settings: Settings,
    user: User,
    user_agent: str | None,
    *,
    now: datetime,
) -> TokenPair:
    """Open a session for `user` and return its first token pair."""
    auth_session = AuthSession(
        user_id=user.id,
        expires_at=now + timedelta(days=settings.session_max_age_days),
        user_agent=(user_agent or "")[:255] or None,
    )
    session.add(auth_session)
    await session.flush()
    return await _issue_pair(session, tokens, auth_session, user.role)


async def _issue_pair(
    session: AsyncSession, tokens: AccessTokenCodec, auth_session: AuthSession, role: Role
) -> TokenPair:
    refresh_token = new_token()
    session.add(RefreshToken(session_id=auth_session.id, token_hash=hash_token(refresh_token)))
    await session.flush()
    # Stamped with the real time: PyJWT checks `iat` and `exp` against it, not against
    # the application clock that tests move.
    access_token = tokens.issue(auth_session.user_id, auth_session.id, role=str(role))
    return TokenPair(
        access_token=access_token,
        expires_in=int(tokens.ttl.total_seconds()),
        refresh_token=refresh_token,
    )


async def refresh(
    session: AsyncSession, tokens: AccessTokenCodec, refresh_token: str, *, now: datetime
) -> TokenPair:
    """Rotate a refresh token. A token presented again after rotation revokes its session."""
    found = await repository.find_refresh_token(session, hash_token(refresh_token))
    if found is None:
        raise InvalidRefreshToken()
    token, auth_session = found
    if auth_session.revoked_at is not None or auth_session.expires_at <= now:
        raise InvalidRefreshToken()
    user = await repository.get_user(session, auth_session.user_id)
    if user is None or user.suspended:
        raise InvalidRefreshToken()
    if token.used_at is not None or not await repository.mark_refresh_token_used(session, token.id, now):
        await repository.revoke_session(session, auth_session.id, now)
        raise RefreshTokenReused("The refresh token was already used; the session has been ended.")
    return await _issue_pair(session, tokens, auth_session, user.role)


async def user_for_access_token(
    session: AsyncSession,
    tokens: AccessTokenCodec,
    token: str,
    *,
    now: datetime,
    cache: SessionCache | None = None,
    read_only: bool = False,
) -> tuple[User, str] | None:
    """The user and session behind a valid access token whose session is still live.

    With a `cache`, a session found live a moment ago is believed without a query
    (docs/architecture.md#the-session-cache). For a request that changes nothing
    (`read_only`), the cached user stays out of the session (detached, every column
    loaded; the models have no relationships to load): joining it cost 16 µs.
    """
    try:
        claims = tokens.verify(token)
    except InvalidToken:
        return None
    generation = 0
    if cache is not None:
        row = cache.get(claims.session_id, claims.user_id, now)
        if row is not None:
            user = repository.user_from_row(row) if read_only else repository.attach_user(session, row)
            return user, claims.session_id
        generation = cache.generation
    found = await repository.active_session_user(session, claims.user_id, claims.session_id, now)
    if found is None:
        return None
    user, expires_at = found
    if cache is not None and (row := repository.user_row(user)) is not None:
        cache.put(claims.session_id, expires_at, row, generation=generation)
    return user, claims.session_id


async def auth_session_is_live(
    session: AsyncSession, user_id: str, session_id: str, *, now: datetime
) -> bool:
    return await repository.active_session_user(session, user_id, session_id, now) is not None


def _sessions_changed(session: AsyncSession, user_id: str) -> None:
    # Open streams re-check their session at once instead of at their next ping.
    publish_after_commit(session, user_id, {"event": "_revalidate"})


async def logout(session: AsyncSession, session_id: str, *, now: datetime) -> None:
    """End one session: its refresh token and access tokens stop working at once."""
    auth_session = await session.get(AuthSession, session_id)
    await repository.revoke_session(session, session_id, now)
    if auth_session is not None:
        _sessions_changed(session, auth_session.user_id)


async def logout_by_refresh_token(session: AsyncSession, refresh_token: str, *, now: datetime) -> None:
    """End the session a refresh token belongs to (the web client's logout, which holds only
    the cookie). An unknown token ends nothing and is no error: the outcome is the same."""
    found = await repository.find_refresh_token(session, hash_token(refresh_token))
    if found is None:
        return
    await repository.revoke_session(session, found[1].id, now)
    _sessions_changed(session, found[1].user_id)


async def live_sessions(session: AsyncSession, user_id: str, *, now: datetime) -> list[AuthSession]:
    """The user's live login sessions, newest first (at most `repository.SESSION_LIST_LIMIT`)."""
    return await repository.live_sessions(session, user_id, now)


async def end_session(session: AsyncSession, user_id: str, session_id: str, *, now: datetime) -> None:
    """End one of the user's own live sessions (404 for any other id)."""
    sessions = await repository.live_sessions(session, user_id, now, session_id=session_id)
    if not sessions:
        raise LoginSessionNotFound()
    await repository.revoke_session(session, session_id, now)
    _sessions_changed(session, user_id)


async def logout_all(session: AsyncSession, user_id: str, *, now: datetime) -> None:
    """End every session of the user."""
    await repository.revoke_user_sessions(session, user_id, now)
    _sessions_changed(session, user_id)


async def end_other_auth_sessions(
    session: AsyncSession, user_id: str, keep_session_id: str | None, *, now: datetime
) -> None:
    await repository.revoke_user_sessions(session, user_id, now, except_session_id=keep_session_id)
    _sessions_changed(session, user_id)


async def send_verification(session: AsyncSession, settings: Settings, user: User, *, now: datetime) -> None:
    """Issue a new verification token (older links stop working) and e-mail it."""
    expires_at = now + timedelta(hours=settings.email_verification_ttl_hours)
    token = await repository.replace_one_time_token(session, user, TokenPurpose.verify_email, expires_at, now)
    enqueue(session, jobs.send_verification_email, to=user.email, name=user.display_name, token=token)


async def resend_verification(
    session: AsyncSession, settings: Settings, user: User, *, now: datetime
) -> None:
    if user.email_verified:
        raise AlreadyVerified()
    await send_verification(session, settings, user, now=now)


async def _use_one_time_token(
    session: AsyncSession, token: str, purpose: TokenPurpose, now: datetime
) -> User:
    found = await repository.find_one_time_token(session, hash_token(token), purpose)
    if found is None or found.used_at is not None or found.expires_at <= now:
        raise InvalidOneTimeToken()
    user = await repository.get_user(session, found.user_id)
    if user is None or user.email != found.email:
        raise InvalidOneTimeToken()
    if not await repository.consume_one_time_token(session, found.id, now):
        raise InvalidOneTimeToken()
    return user


async def verify_email(session: AsyncSession, token: str, *, now: datetime) -> None:
    """Mark the address verified with a token from the verification e-mail.

    Keys made before then did not prove they were the address's owner's (anyone may
    register any address), so they are revoked: the owner makes new ones.
    """
    user = await _use_one_time_token(session, token, TokenPurpose.verify_email, now)
    if not user.email_verified:
        await repository.revoke_api_keys(session, user.id)
    user.email_verified = True


async def request_password_reset(session: AsyncSession, email: str) -> None:
    """Queue the reset of `email`. The request does this same work whether or not an account
    has the address, so neither its answer nor its timing tells; the job looks it up."""
    enqueue(session, jobs.reset_password_of, email=email)


async def confirm_password_reset(
    session: AsyncSession, passwords: PasswordHasher, token: str, new_password: str, *, now: datetime
) -> None:
    """Set a new password with a reset token, and end every session and API key of the account.

    The token came by e-mail, so the address is proven: an unverified account is verified.
    """
    user = await _use_one_time_token(session, token, TokenPurpose.reset_password, now)
    await set_password(session, passwords, user, new_password, field="body.new_password")
    await logout_all(session, user.id, now=now)
    user.email_verified = True


async def set_password(
    session: AsyncSession, passwords: PasswordHasher, user: User, new_password: str, *, field: str
) -> None:
    """Replace the password hash after checking the rules that depend on the account.

    Every API key and app token of the account is revoked: neither must outlive the
    credential of whoever made it (the caller ends the sessions it should).
    """
    problem = password_problem(new_password, username=user.username, email=user.email)
    if problem:
        raise PasswordRejected(problem, field=field)
    user.password_hash = await passwords.hash(new_password)
    await repository.revoke_api_keys(session, user.id)
    await repository.revoke_app_tokens(session, user.id)


class PasswordRejected(Unprocessable):
    """A password that the schema could not judge alone (it equals the username...)."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__("The request is not valid.")
        self.errors = [{"field": field, "message": message, "type": "value_error"}]


async def active_user_count(session: AsyncSession, *, since: datetime) -> int:
    """How many users logged in or kept a session going (a refresh) since `since`."""
    return await repository.count_users_active_since(session, since)
