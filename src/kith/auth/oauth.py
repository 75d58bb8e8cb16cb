"""OAuth 2 for Mastodon apps: registered apps, authorization codes and app tokens
(docs/mastodon.md#apps-and-sign-in, docs/security.md#app-tokens-and-scopes).

An app registers itself (`register_app`) and gets a public client id and a secret. A user
signs in on Kith's authorization page and approves the app (`grant_code`); the app trades
the code, with its PKCE verifier, for an access token (`exchange_code`). App tokens do not
expire: Mastodon apps never refresh. They are stored as hashes, scoped, listed and revoked
by their user (`authorizations`, `revoke_authorization`), revoked by the app
(`revoke_token`), and revoked all at once when the password changes (`set_password` in
`kith.auth.service`). A suspended user's tokens do not work while the suspension lasts.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from kith.auth import repository, scopes
from kith.core.errors import (
    AccessDenied,
    InvalidClient,
    InvalidGrant,
    InvalidOAuthRequest,
    InvalidScope,
    NotFound,
    Unprocessable,
    UnsupportedGrantType,
)
from kith.core.realtime import publish_after_commit
from kith.core.security import APP_TOKEN_PREFIX, constant_time_equals, hash_token, new_token
from kith.db.models import OAuthApp, OAuthGrant, OAuthToken, User

# Tokens say what they are, so a leaked one is recognised (and a bearer token that is not a
# JWT is looked up as an app token without trying to decode it).
ACCESS_TOKEN_PREFIX = APP_TOKEN_PREFIX
REFRESH_TOKEN_PREFIX = "kith_rt_"
# The redirect URI of apps that show the code for the user to copy (RFC 8252's "out of band").
OOB_REDIRECT_URI = "urn:ietf:wg:oauth:2.0:oob"
# How long an authorization code may wait to be exchanged; it is single-use.
CODE_TTL = timedelta(minutes=10)
# Redirect URIs that would run or read something in the browser instead of reaching an app.
_REFUSED_SCHEMES = frozenset({"javascript", "data", "vbscript", "file", "blob", "about"})
MAX_REDIRECT_URIS = 10
MAX_REDIRECT_URI_LENGTH = 2000


class UserRequired(Unprocessable):
    code = "user_required"
    default_detail = "This method requires an authenticated user."
    description = "An app's own token (client_credentials) was used where a signed-in user is needed."


class AuthorizationNotFound(NotFound):
    code = "authorization_not_found"
    default_detail = "No such authorization."
    description = "No app token of the caller has this id."


@dataclass(frozen=True)
class IssuedToken:
    """A new app token, as the token endpoint answers it: the secrets exist only here."""

    access_token: str
    scopes: list[str]
    created_at: datetime
    refresh_token: str | None = None


def redirect_uri_problem(uri: str) -> str | None:
    """Why `uri` cannot be an app's redirect URI, or None when it can.

    An absolute URI (any scheme apps use, `https://`, `http://localhost`, `myapp://`), without a
    fragment (RFC 6749 §3.1.2), or the out-of-band URN.
    """
    if uri == OOB_REDIRECT_URI:
        return None
    if len(uri) > MAX_REDIRECT_URI_LENGTH or any(ch.isspace() or ord(ch) < 32 for ch in uri):
        return "is too long or contains spaces"
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "is not a URI"
    if not parts.scheme or not (parts.netloc or parts.path):
        return "must be an absolute URI"
    if parts.scheme.lower() in _REFUSED_SCHEMES:
        return "uses a scheme that cannot reach an app"
    if parts.fragment or uri.endswith("#"):
        return "must not have a fragment"
    return None


async def register_app(
    session: AsyncSession,
    *,
    name: str,
    redirect_uris: list[str],
    scope_list: list[str],
    website: str | None,
) -> tuple[OAuthApp, str]:
    """Register an app; returns it with its client secret, shown this once and kept hashed."""
    secret = new_token()
    app = OAuthApp(
        name=name,
        website=website,
        redirect_uris="\n".join(redirect_uris),
        scopes=" ".join(scope_list),
        client_id=new_token(),
        client_secret_hash=hash_token(secret),
    )
    session.add(app)
    await session.flush()
    return app, secret


async def find_app(session: AsyncSession, client_id: str | None) -> OAuthApp | None:
    """The app with this public client id, if any."""
    if not client_id:
        return None
    return await repository.find_app(session, client_id)


async def authenticate_client(
    session: AsyncSession, client_id: str | None, client_secret: str | None
) -> OAuthApp:
    """The app whose id and secret these are, or 401 `invalid_client`."""
    app = await find_app(session, client_id)
    expected = app.client_secret_hash if app is not None else hash_token("")
    if app is None or not client_secret or not constant_time_equals(hash_token(client_secret), expected):
        raise InvalidClient()
    return app


def requested_scopes(app: OAuthApp, text: str | None) -> list[str]:
    """The scopes a request names (the default when none), each registered by the app."""
    found = scopes.parse_scopes(text)
    if found is None:
        raise InvalidScope("A requested scope is unknown.")
    if not scopes.within(found, app.scope_list):
        raise InvalidScope("The app did not register every scope it asks for.")
    return found


def check_redirect_uri(app: OAuthApp, redirect_uri: str | None) -> str:
    """The redirect URI of a request: one the app registered, exactly. An app that
    registered exactly one may leave it out."""
    registered = app.redirect_uri_list
    if not redirect_uri and len(registered) == 1:
        return registered[0]
    if redirect_uri not in registered:
        raise InvalidGrant("The redirect URI is not one the app registered.")
    return redirect_uri


def check_code_challenge(challenge: str | None, method: str | None) -> str | None:
    """The PKCE challenge of an authorization request (RFC 7636): S256 only."""
    if not challenge:
        if method:
            raise InvalidOAuthRequest("`code_challenge_method` without a `code_challenge`.")
        return None
    if (method or "plain") != "S256":
        raise InvalidOAuthRequest("Only the S256 code challenge method is supported.")
    if not 43 <= len(challenge) <= 128:
        raise InvalidOAuthRequest("The code challenge must be 43 to 128 characters.")
    return challenge


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


async def grant_code(
    session: AsyncSession,
    app: OAuthApp,
    user: User,
    *,
    redirect_uri: str,
    scope_list: list[str],
    code_challenge: str | None,
    now: datetime,
) -> str:
    """The user approved the app: a single-use code for it, valid for `CODE_TTL`."""
    code = new_token()
    session.add(
        OAuthGrant(
            app_id=app.id,
            user_id=user.id,
            code_hash=hash_token(code),
            redirect_uri=redirect_uri,
            scopes=" ".join(scope_list),
            code_challenge=code_challenge,
            expires_at=now + CODE_TTL,
        )
    )
    await session.flush()
    return code


async def _issue(
    session: AsyncSession, app: OAuthApp, user_id: str | None, scope_list: list[str], *, now: datetime
) -> IssuedToken:
    access_token = ACCESS_TOKEN_PREFIX + new_token()
    # A user's token comes with a refresh token (for the refresh_token grant); an app's own
    # token needs none: the app asks for a new one with its secret.
    refresh_token = REFRESH_TOKEN_PREFIX + new_token() if user_id is not None else None
    session.add(
        OAuthToken(
            app_id=app.id,
            user_id=user_id,
            token_hash=hash_token(access_token),
            refresh_token_hash=hash_token(refresh_token) if refresh_token else None,
            scopes=" ".join(scope_list),
            created_at=now,
        )
    )
    await session.flush()
    return IssuedToken(access_token, scope_list, now, refresh_token)


async def exchange_code(
    session: AsyncSession,
    app: OAuthApp,
    *,
    code: str | None,
    redirect_uri: str | None,
    code_verifier: str | None,
    now: datetime,
) -> IssuedToken:
    """The authorization_code grant: a code, once, for the app and redirect URI it was given
    to, with the PKCE verifier of its challenge, for an access token."""
    grant = await repository.find_grant(session, hash_token(code)) if code else None
    if grant is None or grant.app_id != app.id or grant.used_at is not None or grant.expires_at <= now:
        raise InvalidGrant()
    if redirect_uri != grant.redirect_uri and not (
        redirect_uri is None and app.redirect_uri_list == [grant.redirect_uri]
    ):
        raise InvalidGrant("The redirect URI differs from the authorization request's.")
    if grant.code_challenge is not None and (
        not code_verifier or not constant_time_equals(_s256(code_verifier), grant.code_challenge)
    ):
        raise InvalidGrant("The PKCE code verifier does not match the challenge.")
    user = await repository.get_user(session, grant.user_id)
    if user is None or user.suspended:
        raise InvalidGrant()
    if not await repository.consume_grant(session, grant.id, now):
        raise InvalidGrant()
    return await _issue(session, app, user.id, grant.scopes.split(), now=now)


async def client_credentials(
    session: AsyncSession, app: OAuthApp, scope_text: str | None, *, now: datetime
) -> IssuedToken:
    """The client_credentials grant: a token of the app itself, for no user."""
    return await _issue(session, app, None, requested_scopes(app, scope_text), now=now)


async def refresh_app_token(
    session: AsyncSession, app: OAuthApp, refresh_token: str | None, *, now: datetime
) -> IssuedToken:
    """The refresh_token grant: a new access and refresh token, same scopes; the old pair
    stops working."""
    token = (
        await repository.find_refresh_app_token(session, app.id, hash_token(refresh_token))
        if refresh_token
        else None
    )
    user = await repository.get_user(session, token.user_id) if token is not None and token.user_id else None
    if token is None or user is None or user.suspended:
        raise InvalidGrant()
    await repository.delete_app_token(session, token.id)
    return await _issue(session, app, user.id, token.scope_list, now=now)


async def password_grant(
    session: AsyncSession, app: OAuthApp, user: User, scope_text: str | None, *, now: datetime
) -> IssuedToken:
    """The password grant (only where the operator turned it on): a token for a user whose
    password the caller checked."""
    return await _issue(session, app, user.id, requested_scopes(app, scope_text), now=now)


def unsupported_grant(grant_type: str | None) -> UnsupportedGrantType:
    return UnsupportedGrantType(f"The grant type {grant_type!r} is not supported." if grant_type else None)


async def revoke_token(session: AsyncSession, app: OAuthApp, token: str | None) -> None:
    """Revoke an access or refresh token the app holds (RFC 7009): an unknown token, or another
    app's, is no error and revokes nothing."""
    if not token:
        raise InvalidOAuthRequest("`token` is required.")
    record = await repository.app_token_of(session, app.id, hash_token(token))
    if record is not None:
        await repository.delete_app_token(session, record.id)
        _token_revoked(session, record)


async def token_caller(session: AsyncSession, token: str) -> tuple[OAuthToken, OAuthApp, User | None] | None:
    """The live app token `token` is, with its app and user (None for an app's own token)."""
    return await repository.find_app_token(session, hash_token(token))


async def authorizations(session: AsyncSession, user_id: str) -> list[tuple[OAuthToken, OAuthApp]]:
    """The user's app tokens, newest first, each with its app."""
    return await repository.user_app_tokens(session, user_id)


async def revoke_authorization(session: AsyncSession, user_id: str, token_id: str) -> None:
    """Revoke one of the user's app tokens (404 for any other id)."""
    found = await repository.user_app_tokens(session, user_id, token_id=token_id)
    if not found:
        raise AuthorizationNotFound()
    await repository.delete_app_token(session, token_id)
    _token_revoked(session, found[0][0])


def _token_revoked(session: AsyncSession, record: OAuthToken) -> None:
    # The user's open streams re-check their credentials at once, not at their next heartbeat.
    if record.user_id is not None:
        publish_after_commit(session, record.user_id, {"event": "_revalidate"})


def denied() -> AccessDenied:
    return AccessDenied("The user declined to authorize the app.")
