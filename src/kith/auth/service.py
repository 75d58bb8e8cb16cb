"""Account rules: registration, login, token rotation, logout and the e-mail flows."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kith.auth import jobs, repository
from kith.auth.password_policy import password_problem
from kith.auth.schemas import RegisterRequest, TokenPair
from kith.core.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized, Unprocessable
from kith.core.jobs import enqueue, job_as
from kith.core.realtime import publish_after_commit
from kith.core.security import InvalidToken, hash_token, new_token
from kith.db.models import AuthSession, OneTimeToken, RefreshToken, Role, TokenPurpose, User
from kith.runtime.limits import LoginThrottle
from kith.runtime.resources import Resources
from kith.runtime.transaction import unit_of_work


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


async def register(session: AsyncSession, resources: Resources, data: RegisterRequest) -> User:
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
        password_hash=await resources.passwords.hash(data.password),
        role=Role.user,
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError:
        # Lost a race with a concurrent registration of the same name or address.
        raise UsernameTaken("That username or e-mail address is taken.") from None
    await send_verification(session, resources, user)
    enqueue(session, jobs.send_welcome_email, to=user.email, name=user.display_name)
    return user


async def create_user(
    session: AsyncSession,
    resources: Resources,
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
        password_hash=await resources.passwords.hash(data.password),
        role=role,
        email_verified=email_verified,
    )
    session.add(user)
    await session.flush()
    return user


async def authenticate(
    session: AsyncSession, resources: Resources, identifier: str, password: str, throttle: LoginThrottle
) -> User:
    """Check a login; unknown accounts cost the same hash check as a wrong password.

    Failed attempts are counted per account before the hash is computed, so a spent
    budget answers 429 without any hashing work.
    """
    user = await repository.find_by_login(session, identifier)
    account = user.id if user is not None else f"name:{identifier.strip().lower()}"
    await throttle.check(account)
    valid, new_hash = await resources.passwords.verify(password, user.password_hash if user else None)
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
    session: AsyncSession, resources: Resources, user: User, user_agent: str | None
) -> TokenPair:
    """Open a session for `user` and return its first token pair."""
    now = resources.clock.now()
    auth_session = AuthSession(
        user_id=user.id,
        expires_at=now + timedelta(days=resources.settings.session_max_age_days),
        user_agent=(user_agent or "")[:255] or None,
    )
    session.add(auth_session)
    await session.flush()
    return await _issue_pair(session, resources, auth_session)


async def _issue_pair(session: AsyncSession, resources: Resources, auth_session: AuthSession) -> TokenPair:
    refresh_token = new_token()
    session.add(RefreshToken(session_id=auth_session.id, token_hash=hash_token(refresh_token)))
    await session.flush()
    # Stamped with the real time: PyJWT checks `iat` and `exp` against it, not against
    # the application clock that tests move.
    access_token = resources.tokens.issue(auth_session.user_id, auth_session.id)
    return TokenPair(
        access_token=access_token,
        expires_in=int(resources.tokens.ttl.total_seconds()),
        refresh_token=refresh_token,
    )


async def refresh(session: AsyncSession, resources: Resources, refresh_token: str) -> TokenPair:
    """Rotate a refresh token. A token presented again after rotation revokes its session."""
    now = resources.clock.now()
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
    return await _issue_pair(session, resources, auth_session)


async def user_for_access_token(
    session: AsyncSession, resources: Resources, token: str
) -> tuple[User, str] | None:
    """The user and session behind a valid access token whose session is still live."""
    try:
        claims = resources.tokens.verify(token)
    except InvalidToken:
        return None
    user = await repository.active_session_user(
        session, claims.user_id, claims.session_id, resources.clock.now()
    )
    return (user, claims.session_id) if user is not None else None


async def auth_session_is_live(
    session: AsyncSession, resources: Resources, user_id: str, session_id: str
) -> bool:
    user = await repository.active_session_user(session, user_id, session_id, resources.clock.now())
    return user is not None


def _sessions_changed(session: AsyncSession, user_id: str) -> None:
    # Open streams re-check their session at once instead of at their next ping.
    publish_after_commit(session, user_id, {"event": "_revalidate"})


async def logout(session: AsyncSession, resources: Resources, session_id: str) -> None:
    """End one session: its refresh token and access tokens stop working at once."""
    auth_session = await session.get(AuthSession, session_id)
    await repository.revoke_session(session, session_id, resources.clock.now())
    if auth_session is not None:
        _sessions_changed(session, auth_session.user_id)


async def logout_all(session: AsyncSession, resources: Resources, user_id: str) -> None:
    """End every session of the user."""
    await repository.revoke_user_sessions(session, user_id, resources.clock.now())
    _sessions_changed(session, user_id)


async def end_other_auth_sessions(
    session: AsyncSession, resources: Resources, user_id: str, keep_session_id: str | None
) -> None:
    await repository.revoke_user_sessions(
        session, user_id, resources.clock.now(), except_session_id=keep_session_id
    )
    _sessions_changed(session, user_id)


async def _new_one_time_token(
    session: AsyncSession, resources: Resources, user: User, purpose: TokenPurpose, ttl: timedelta
) -> str:
    now = resources.clock.now()
    await repository.retire_one_time_tokens(session, user.id, purpose, now)
    token = new_token()
    session.add(
        OneTimeToken(
            user_id=user.id,
            purpose=purpose,
            token_hash=hash_token(token),
            email=user.email,
            expires_at=now + ttl,
        )
    )
    return token


async def send_verification(session: AsyncSession, resources: Resources, user: User) -> None:
    """Issue a new verification token (older links stop working) and e-mail it."""
    token = await _new_one_time_token(
        session,
        resources,
        user,
        TokenPurpose.verify_email,
        timedelta(hours=resources.settings.email_verification_ttl_hours),
    )
    enqueue(session, jobs.send_verification_email, to=user.email, name=user.display_name, token=token)


async def resend_verification(session: AsyncSession, resources: Resources, user: User) -> None:
    if user.email_verified:
        raise AlreadyVerified()
    await send_verification(session, resources, user)


async def _use_one_time_token(
    session: AsyncSession, resources: Resources, token: str, purpose: TokenPurpose
) -> User:
    now = resources.clock.now()
    found = await repository.find_one_time_token(session, hash_token(token), purpose)
    if found is None or found.used_at is not None or found.expires_at <= now:
        raise InvalidOneTimeToken()
    user = await repository.get_user(session, found.user_id)
    if user is None or user.email != found.email:
        raise InvalidOneTimeToken()
    if not await repository.consume_one_time_token(session, found.id, now):
        raise InvalidOneTimeToken()
    return user


async def verify_email(session: AsyncSession, resources: Resources, token: str) -> None:
    """Mark the address verified with a token from the verification e-mail."""
    user = await _use_one_time_token(session, resources, token, TokenPurpose.verify_email)
    user.email_verified = True


async def request_password_reset(session: AsyncSession, resources: Resources, email: str) -> None:
    """Queue the reset of `email`. The request does this same work whether or not an account
    has the address, so neither its answer nor its timing tells; the job looks it up."""
    enqueue(session, reset_password_of, email=email)


@job_as("kith.auth.jobs.reset_password_of")  # its name before it moved here
async def reset_password_of(resources: Resources, *, email: str) -> None:
    """Issue and mail a reset token if an account has `email`; queued for every request."""
    async with unit_of_work(resources) as session:
        await issue_password_reset(session, resources, email)


async def issue_password_reset(session: AsyncSession, resources: Resources, email: str) -> None:
    """E-mail a reset token if an active account has the address (run by a job)."""
    user = await repository.find_by_email(session, email)
    if user is None or user.suspended:
        return
    token = await _new_one_time_token(
        session,
        resources,
        user,
        TokenPurpose.reset_password,
        timedelta(minutes=resources.settings.password_reset_ttl_minutes),
    )
    enqueue(session, jobs.send_password_reset_email, to=user.email, name=user.display_name, token=token)


async def confirm_password_reset(
    session: AsyncSession, resources: Resources, token: str, new_password: str
) -> None:
    """Set a new password with a reset token, and end every session of the account."""
    user = await _use_one_time_token(session, resources, token, TokenPurpose.reset_password)
    await set_password(session, resources, user, new_password, field="body.new_password")
    await logout_all(session, resources, user.id)


async def set_password(
    session: AsyncSession, resources: Resources, user: User, new_password: str, *, field: str
) -> None:
    """Replace the password hash after checking the rules that depend on the account."""
    problem = password_problem(new_password, username=user.username, email=user.email)
    if problem:
        raise PasswordRejected(problem, field=field)
    user.password_hash = await resources.passwords.hash(new_password)


class PasswordRejected(Unprocessable):
    """A password that the schema could not judge alone (it equals the username...)."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__("The request is not valid.")
        self.errors = [{"field": field, "message": message, "type": "value_error"}]
