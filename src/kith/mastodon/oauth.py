"""How Mastodon apps register and sign in: `/api/v1/apps`, `/oauth/*` and the authorization
server's metadata (docs/mastodon.md#apps-and-sign-in).

The rules (codes, PKCE, grants, scopes, revocation) are `kith.auth.oauth`'s; this module reads
the requests as Mastodon apps send them (form or JSON bodies, HTTP Basic client
authentication), answers in Mastodon's shapes, and renders the authorization page, where the
user signs in with Kith's own login (its limits and lockouts) or the web client's session.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated
from urllib.parse import urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Cookie, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from kith.auth import oauth, scopes
from kith.auth import service as auth
from kith.auth.dependencies import CallingApp, HashingSlot, SameOrigin
from kith.core.config import Settings
from kith.core.errors import DomainError, InvalidClient, MalformedJson, Unprocessable, UnsupportedResponseType
from kith.core.security import constant_time_equals, new_token
from kith.core.urls import OAUTH_PREFIX, absolute_url
from kith.db.models import OAuthApp
from kith.http.deps import AppSettings, Now, Passwords, Tokens
from kith.http.ratelimit import LoginThrottleDep, rate_limit
from kith.http.session import DbSession
from kith.mastodon import pages
from kith.mastodon.ids import to_mastodon_id
from kith.mastodon.schemas import Application, AuthorizationServer, CreatedApplication, OAuthTokenAnswer

router = APIRouter(include_in_schema=False)

AUTHORIZE_PATH = f"{OAUTH_PREFIX}authorize"
# The authorization page's CSRF token: a random value in a cookie that only `/oauth` receives
# and in the form; a page of another site can set neither (double submit, and `SameOrigin`).
CSRF_COOKIE = "kith_oauth_csrf"
CsrfCookie = Annotated[str | None, Cookie(alias=CSRF_COOKIE)]
# The authorization request's parameters that the form carries from the page to its answer.
_CARRIED = ("client_id", "redirect_uri", "scope", "state", "code_challenge", "code_challenge_method")
MAX_APP_NAME = 100
MAX_WEBSITE = 2000


class AppRegistrationInvalid(Unprocessable):
    code = "app_registration_invalid"
    default_detail = "Validation failed."
    description = (
        "An app registration (`POST /api/v1/apps`) names no app, or a bad redirect URI, scope or website."
    )


async def request_params(request: Request) -> dict[str, str]:
    """The request's parameters, as Mastodon reads them: the query, then a form or JSON body
    (a list in JSON, as some apps send `redirect_uris` and `scopes`, is joined by spaces)."""
    params = dict(request.query_params)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise MalformedJson() from None
        if not isinstance(body, dict):
            raise Unprocessable("The body must be a JSON object.")
        for key, value in body.items():
            if isinstance(value, str):
                params[key] = value
            elif isinstance(value, list) and all(isinstance(item, str) for item in value):
                params[key] = " ".join(value)
            elif isinstance(value, bool | int):
                params[key] = str(value).lower()
    elif content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form()
        params.update({key: value for key, value in form.items() if isinstance(value, str)})
    return params


def _client_of(request: Request, params: dict[str, str]) -> tuple[str | None, str | None]:
    """The client id and secret: HTTP Basic (client_secret_basic) or the body (client_secret_post)."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic" and encoded:
        try:
            client_id, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidClient() from None
        return client_id, secret
    return params.get("client_id"), params.get("client_secret")


def _application(app: OAuthApp) -> Application:
    return Application(
        id=to_mastodon_id(app.id),
        name=app.name,
        website=app.website,
        scopes=app.scope_list,
        redirect_uri="\n".join(app.redirect_uri_list),
        redirect_uris=app.redirect_uri_list,
    )


@router.post("/api/v1/apps")
async def create_app(request: Request, session: DbSession) -> CreatedApplication:
    """Register an app: `client_name`, `redirect_uris` (one or more, by line or as a list),
    `scopes` (default `read`), `website`. Answers the app with its `client_id` and
    `client_secret`, the secret this once."""
    params = await request_params(request)
    name = params.get("client_name", "").strip()
    if not name or len(name) > MAX_APP_NAME:
        raise AppRegistrationInvalid(
            f"Validation failed: the app's name must be 1 to {MAX_APP_NAME} characters."
        )
    redirect_uris = list(dict.fromkeys(params.get("redirect_uris", "").split()))
    if not redirect_uris:
        raise AppRegistrationInvalid("Validation failed: redirect URI can't be blank.")
    if len(redirect_uris) > oauth.MAX_REDIRECT_URIS:
        raise AppRegistrationInvalid(f"Validation failed: at most {oauth.MAX_REDIRECT_URIS} redirect URIs.")
    for uri in redirect_uris:
        problem = oauth.redirect_uri_problem(uri)
        if problem:
            raise AppRegistrationInvalid(f"Validation failed: redirect URI {problem}.")
    scope_list = scopes.parse_scopes(params.get("scopes"))
    if scope_list is None or len(" ".join(scope_list)) > scopes.MAX_SCOPES_LENGTH:
        raise AppRegistrationInvalid("Validation failed: unknown scope.")
    website = params.get("website", "").strip() or None
    if website is not None and (
        len(website) > MAX_WEBSITE or urlsplit(website).scheme not in ("http", "https")
    ):
        raise AppRegistrationInvalid("Validation failed: the website must be an http or https URL.")
    app, secret = await oauth.register_app(
        session, name=name, redirect_uris=redirect_uris, scope_list=scope_list, website=website
    )
    return CreatedApplication(
        **_application(app).model_dump(),
        client_id=app.client_id,
        client_secret=secret,
        client_secret_expires_at=0,
    )


@router.get("/api/v1/apps/verify_credentials")
async def verify_app(app: CallingApp) -> Application:
    """The app whose token the request carries (a user's token or the app's own)."""
    return _application(app)


@router.get("/.well-known/oauth-authorization-server")
async def authorization_server(settings: AppSettings) -> AuthorizationServer:
    """The OAuth authorization server's metadata (RFC 8414), as Mastodon 4.3 gives it."""
    grants = ["authorization_code", "client_credentials", "refresh_token"]
    if settings.oauth_password_grant:
        grants.append("password")
    return AuthorizationServer(
        issuer=absolute_url("/"),
        authorization_endpoint=absolute_url(AUTHORIZE_PATH),
        token_endpoint=absolute_url(f"{OAUTH_PREFIX}token"),
        revocation_endpoint=absolute_url(f"{OAUTH_PREFIX}revoke"),
        app_registration_endpoint=absolute_url("/api/v1/apps"),
        scopes_supported=[*scopes.TOP_SCOPES, *sorted(scopes.READ_SCOPES), *sorted(scopes.WRITE_SCOPES)],
        response_types_supported=["code"],
        response_modes_supported=["query"],
        grant_types_supported=grants,
        token_endpoint_auth_methods_supported=["client_secret_basic", "client_secret_post"],
        revocation_endpoint_auth_methods_supported=["client_secret_basic", "client_secret_post"],
        code_challenge_methods_supported=["S256"],
    )


# --- the authorization page ------------------------------------------------------------------


def _html(body: str, status: int = 200, redirect_uri: str | None = None) -> HTMLResponse:
    # `same-origin`, not Kith's usual `no-referrer`: under `no-referrer` a browser sends
    # `Origin: null` with the page's form, which `SameOrigin` must refuse. Nothing leaves for
    # another origin either way.
    headers = {"Content-Security-Policy": pages.csp(redirect_uri), "Referrer-Policy": "same-origin"}
    return HTMLResponse(body, status_code=status, headers=headers)


def _to_app(redirect_uri: str, params: dict[str, str]) -> Response:
    """Send the browser back to the app with `params` (a code, or an error) and the `state`."""
    parts = urlsplit(redirect_uri)
    extra = urlencode({key: value for key, value in params.items() if value})
    query = f"{parts.query}&{extra}" if parts.query else extra
    response = RedirectResponse(urlunsplit(parts._replace(query=query)), status_code=303)
    response.headers["Content-Security-Policy"] = pages.csp(redirect_uri)
    return response


def _refused(redirect_uri: str, error: DomainError, state: str | None) -> Response:
    """An authorization request the app got wrong, or the user declined: back to the app with
    the error (RFC 6749 §4.1.2.1), or a page for an app that has no address."""
    if redirect_uri == oauth.OOB_REDIRECT_URI:
        return _html(pages.message_page("Not authorized", error.detail), error.status)
    return _to_app(
        redirect_uri, {"error": error.code, "error_description": error.detail, "state": state or ""}
    )


async def _checked_request(
    session: DbSession, params: dict[str, str]
) -> tuple[OAuthApp, str, list[str], str | None] | Response:
    """The app, redirect URI, scopes and PKCE challenge of an authorization request, or the
    answer to a wrong one. An unknown app or an unregistered redirect URI is told to the user,
    never sent on (RFC 6749 §4.1.2.1)."""
    app = await oauth.find_app(session, params.get("client_id"))
    if app is None:
        return _html(pages.message_page("Unknown app", "No app is registered with this client id."), 400)
    try:
        redirect_uri = oauth.check_redirect_uri(app, params.get("redirect_uri"))
    except DomainError:
        return _html(pages.message_page("Wrong address", "The app did not register this redirect URI."), 400)
    try:
        if params.get("response_type", "code") != "code":
            raise UnsupportedResponseType()
        scope_list = oauth.requested_scopes(app, params.get("scope"))
        challenge = oauth.check_code_challenge(
            params.get("code_challenge"), params.get("code_challenge_method")
        )
    except DomainError as error:
        return _refused(redirect_uri, error, params.get("state"))
    return app, redirect_uri, scope_list, challenge


def _form_page(
    app: OAuthApp,
    redirect_uri: str,
    scope_list: list[str],
    params: dict[str, str],
    settings: Settings,
    *,
    status: int = 200,
    error: str | None = None,
    csrf_token: str | None = None,
) -> Response:
    fields = {name: params[name] for name in _CARRIED if params.get(name)}
    fields |= {"client_id": app.client_id, "redirect_uri": redirect_uri, "scope": " ".join(scope_list)}
    token = csrf_token or new_token()
    html = pages.authorize_page(
        app_name=app.name,
        website=app.website,
        scope_list=scope_list,
        fields=fields,
        csrf_token=token,
        login=params.get("login", ""),
        error=error,
        use_web_session=params.get("force_login", "").lower() not in ("true", "1"),
    )
    response = _html(html, status, redirect_uri)
    response.set_cookie(
        CSRF_COOKIE,
        token,
        path=OAUTH_PREFIX.rstrip("/"),
        secure=settings.public_url.startswith("https://"),
        httponly=True,
        samesite="strict",
    )
    return response


@router.get(AUTHORIZE_PATH)
async def authorize_page(request: Request, session: DbSession, settings: AppSettings) -> Response:
    """The authorization page: which app asks for which scopes; sign in and approve or deny."""
    params = dict(request.query_params)
    checked = await _checked_request(session, params)
    if isinstance(checked, Response):
        return checked
    app, redirect_uri, scope_list, _challenge = checked
    return _form_page(app, redirect_uri, scope_list, params, settings)


@router.post(AUTHORIZE_PATH, dependencies=[SameOrigin, rate_limit("login"), HashingSlot])
async def authorize(
    request: Request,
    session: DbSession,
    passwords: Passwords,
    tokens: Tokens,
    settings: AppSettings,
    now: Now,
    throttle: LoginThrottleDep,
    csrf_cookie: CsrfCookie = None,
) -> Response:
    """The user's answer: sign in (the login and password, or the web client's session that
    the page's script found) and approve, or deny. Approved, the app gets a single-use code:
    at its redirect URI, or shown to copy for `urn:ietf:wg:oauth:2.0:oob`."""
    params = await request_params(request)
    checked = await _checked_request(session, params)
    if isinstance(checked, Response):
        return checked
    app, redirect_uri, scope_list, challenge = checked
    sent_token = params.get("csrf_token", "")
    if not csrf_cookie or not sent_token or not constant_time_equals(csrf_cookie, sent_token):
        return _form_page(
            app,
            redirect_uri,
            scope_list,
            params,
            settings,
            status=403,
            error="The page expired; please try again.",
        )
    if params.get("decision") != "approve":
        return _refused(redirect_uri, oauth.denied(), params.get("state"))
    session_token = params.get("session_token", "")
    try:
        if session_token:
            found = await auth.user_for_access_token(session, tokens, session_token, now=now)
            if found is None:
                raise auth.InvalidAuthToken("Your Kith session ended; please sign in.")
            user = found[0]
        else:
            user = await auth.authenticate(
                session, passwords, params.get("login", ""), params.get("password", ""), throttle
            )
    except DomainError as error:
        # The same answers as Kith's login (wrong password, suspended, too many attempts), on
        # the page, with the form again; a refusal of the throttle keeps its `Retry-After`.
        page = _form_page(
            app,
            redirect_uri,
            scope_list,
            params,
            settings,
            status=error.status,
            error=error.detail,
            csrf_token=sent_token,
        )
        page.headers.update(error.headers)
        return page
    code = await oauth.grant_code(
        session,
        app,
        user,
        redirect_uri=redirect_uri,
        scope_list=scope_list,
        code_challenge=challenge,
        now=now,
    )
    if redirect_uri == oauth.OOB_REDIRECT_URI:
        return _html(pages.code_page(code))
    return _to_app(redirect_uri, {"code": code, "state": params.get("state", "")})


# --- tokens ----------------------------------------------------------------------------------


@router.post(
    f"{OAUTH_PREFIX}token", dependencies=[rate_limit("login"), HashingSlot], response_model_exclude_none=True
)
async def token(
    request: Request,
    session: DbSession,
    passwords: Passwords,
    settings: AppSettings,
    now: Now,
    throttle: LoginThrottleDep,
) -> OAuthTokenAnswer:
    """A token for an app: `grant_type` `authorization_code` (with `code`, `redirect_uri` and
    the PKCE `code_verifier`), `client_credentials` (the app's own), `refresh_token`, or
    `password` where the operator allows it. The app authenticates with its id and secret."""
    params = await request_params(request)
    client_id, client_secret = _client_of(request, params)
    app = await oauth.authenticate_client(session, client_id, client_secret)
    grant_type = params.get("grant_type")
    if grant_type == "authorization_code":
        issued = await oauth.exchange_code(
            session,
            app,
            code=params.get("code"),
            redirect_uri=params.get("redirect_uri"),
            code_verifier=params.get("code_verifier"),
            now=now,
        )
    elif grant_type == "client_credentials":
        issued = await oauth.client_credentials(session, app, params.get("scope"), now=now)
    elif grant_type == "refresh_token":
        issued = await oauth.refresh_app_token(session, app, params.get("refresh_token"), now=now)
    elif grant_type == "password" and settings.oauth_password_grant:
        scope_text = params.get("scope")
        oauth.requested_scopes(app, scope_text)  # a wrong scope costs no password check
        user = await auth.authenticate(
            session, passwords, params.get("username", ""), params.get("password", ""), throttle
        )
        issued = await oauth.password_grant(session, app, user, scope_text, now=now)
    else:
        raise oauth.unsupported_grant(grant_type)
    return OAuthTokenAnswer(
        access_token=issued.access_token,
        scope=" ".join(issued.scopes),
        created_at=int(issued.created_at.timestamp()),
        refresh_token=issued.refresh_token,
    )


@router.post(f"{OAUTH_PREFIX}revoke")
async def revoke(request: Request, session: DbSession) -> dict[str, str]:
    """Revoke a token the app holds (RFC 7009): `{}`, whether or not the token was live."""
    params = await request_params(request)
    client_id, client_secret = _client_of(request, params)
    app = await oauth.authenticate_client(session, client_id, client_secret)
    await oauth.revoke_token(session, app, params.get("token"))
    return {}
