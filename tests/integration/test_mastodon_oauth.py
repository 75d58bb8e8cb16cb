"""How Mastodon apps register and sign in (docs/mastodon.md#apps-and-sign-in): apps, the
authorization page, PKCE, the token grants, revocation, scopes, and where app tokens work."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from kith.core.config import Settings
from kith.db.models import OAuthApp, OAuthGrant, OAuthToken
from kith.main import create_app
from kith.runtime.resources import Resources
from kith.runtime.transaction import unit_of_work
from tests import posting
from tests.helpers import API, PASSWORD, assert_mastodon_error, assert_problem

OOB = "urn:ietf:wg:oauth:2.0:oob"
CALLBACK = "https://app.example/callback"
SAME_ORIGIN = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
ALL_SCOPES = "read write follow push"


@dataclass
class App:
    client_id: str
    client_secret: str
    body: dict[str, Any]

    @property
    def credentials(self) -> dict[str, str]:
        return {"client_id": self.client_id, "client_secret": self.client_secret}


def pkce() -> tuple[str, str]:
    """A PKCE verifier and its S256 challenge (RFC 7636 appendix B)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def register_app(
    client: httpx.AsyncClient, *, redirect_uris: str = OOB, scopes: str = ALL_SCOPES, **extra: str
) -> App:
    response = await client.post(
        "/api/v1/apps",
        data={"client_name": "Toot", "redirect_uris": redirect_uris, "scopes": scopes, **extra},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    return App(body["client_id"], body["client_secret"], body)


@dataclass
class AuthorizationPage:
    response: httpx.Response
    csrf: str
    fields: dict[str, str]


async def open_page(client: httpx.AsyncClient, app: App, **params: str) -> AuthorizationPage:
    query = {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": OOB,
        "scope": "read",
        **params,
    }
    response = await client.get("/oauth/authorize", params=query)
    assert response.status_code == 200, response.text
    cookie = SimpleCookie()
    cookie.load(response.headers["set-cookie"])
    found = re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">', response.text)
    hidden = {name: html.unescape(value) for name, value in found}
    hidden.pop("session_token", None)
    return AuthorizationPage(response, cookie["kith_oauth_csrf"].value, hidden)


async def answer(
    client: httpx.AsyncClient,
    page: AuthorizationPage,
    *,
    decision: str = "approve",
    login: str = "ada",
    password: str = PASSWORD,
    headers: dict[str, str] | None = None,
    csrf_cookie: str | None = None,
    **fields: str,
) -> httpx.Response:
    form = {**page.fields, "decision": decision, "login": login, "password": password, **fields}
    sent = {**SAME_ORIGIN, "Cookie": f"kith_oauth_csrf={csrf_cookie or page.csrf}", **(headers or {})}
    client.cookies.clear()
    return await client.post("/oauth/authorize", data=form, headers=sent)


def oob_code(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    found = re.search(r'<input id="code" readonly value="([^"]+)">', response.text)
    assert found, response.text
    return found.group(1)


async def authorize(
    client: httpx.AsyncClient,
    app: App,
    *,
    scope: str = "read",
    verifier: str | None = None,
    login: str = "ada",
) -> str:
    """The whole authorization page, out of band: the code."""
    params = {"scope": scope}
    if verifier is not None:
        params |= {"code_challenge": pkce_challenge(verifier), "code_challenge_method": "S256"}
    page = await open_page(client, app, **params)
    return oob_code(await answer(client, page, login=login))


def pkce_challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


async def exchange(
    client: httpx.AsyncClient, app: App, code: str, *, verifier: str | None = None, redirect_uri: str = OOB
) -> httpx.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, **app.credentials}
    if verifier is not None:
        data["code_verifier"] = verifier
    return await client.post("/oauth/token", data=data)


async def user_token(client: httpx.AsyncClient, app: App, *, scope: str = "read", login: str = "ada") -> str:
    verifier, _ = pkce()
    response = await exchange(
        client,
        app,
        await authorize(client, app, scope=scope, verifier=verifier, login=login),
        verifier=verifier,
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


# --- registering an app ----------------------------------------------------------------------


async def test_an_app_registers_and_gets_a_secret_kept_only_as_a_hash(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    app = await register_app(client, redirect_uris=f"{CALLBACK}\n{OOB}", website="https://app.example")
    assert app.body == {
        "id": app.body["id"],
        "name": "Toot",
        "website": "https://app.example",
        "scopes": ["read", "write", "follow", "push"],
        "redirect_uri": f"{CALLBACK}\n{OOB}",
        "redirect_uris": [CALLBACK, OOB],
        "client_id": app.client_id,
        "client_secret": app.client_secret,
        "client_secret_expires_at": 0,
    }
    assert app.body["id"].isdigit()
    assert len(app.client_id) >= 43 and len(app.client_secret) >= 43
    async with unit_of_work(resources, write=False) as session:
        row = (await session.scalars(select(OAuthApp))).one()
    assert row.client_secret_hash != app.client_secret and app.client_secret not in row.client_secret_hash


async def test_an_app_registers_with_json_and_lists_too(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/apps",
        json={
            "client_name": "Ivory",
            "redirect_uris": [CALLBACK, "ivory://oauth"],
            "scopes": "read write:statuses",
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["redirect_uris"] == [CALLBACK, "ivory://oauth"]
    assert body["scopes"] == ["read", "write:statuses"]
    assert body["website"] is None
    assert response.headers["cache-control"] == "no-store"


async def test_an_app_with_no_scopes_gets_read(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/apps", data={"client_name": "Bare", "redirect_uris": OOB})
    assert response.json()["scopes"] == ["read"]


@pytest.mark.parametrize(
    "data",
    [
        {"redirect_uris": OOB},
        {"client_name": "  ", "redirect_uris": OOB},
        {"client_name": "x" * 101, "redirect_uris": OOB},
        {"client_name": "Toot"},
        {"client_name": "Toot", "redirect_uris": "javascript:alert(1)"},
        {"client_name": "Toot", "redirect_uris": "/relative"},
        {"client_name": "Toot", "redirect_uris": "https://app.example/cb#fragment"},
        {"client_name": "Toot", "redirect_uris": OOB, "scopes": "read admin:read"},
        {"client_name": "Toot", "redirect_uris": OOB, "scopes": "everything"},
        {"client_name": "Toot", "redirect_uris": OOB, "website": "javascript:alert(1)"},
    ],
)
async def test_a_bad_registration_is_refused_in_mastodons_shape(
    client: httpx.AsyncClient, data: dict[str, str]
) -> None:
    body = assert_mastodon_error(
        await client.post("/api/v1/apps", data=data), 422, "app_registration_invalid"
    )
    assert body["error"].startswith("Validation failed")


# --- the authorization page ------------------------------------------------------------------


async def test_the_page_names_the_app_and_its_scopes_and_is_locked_down(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    app = await register_app(client, redirect_uris=CALLBACK, scopes="read write")
    page = await open_page(client, app, redirect_uri=CALLBACK, scope="read write", state="xyz")
    response = page.response
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    assert '<html lang="en">' in response.text
    assert "Authorize Toot?" in response.text and "<code>write</code>" in response.text
    csp = response.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp
    # Browsers send the form's `Origin` (under `no-referrer` it would be `null`), and nothing
    # leaves for the app.
    assert response.headers["referrer-policy"] == "same-origin"
    # The answer redirects to the app: the form may go there, and nowhere else.
    assert "form-action 'self' https://app.example;" in csp
    assert "http:" not in csp.replace("https://app.example", "")
    # The CSRF token is in the form and, the same, in the cookie.
    assert page.fields.pop("csrf_token") == page.csrf
    assert page.fields == {
        "client_id": app.client_id,
        "redirect_uri": CALLBACK,
        "scope": "read write",
        "state": "xyz",
    }
    cookie = SimpleCookie()
    cookie.load(response.headers["set-cookie"])
    morsel = cookie["kith_oauth_csrf"]
    assert morsel["httponly"] is True and morsel["samesite"] == "strict" and morsel["path"] == "/oauth"
    assert len(page.csrf) >= 43


async def test_what_an_app_sends_is_escaped_on_the_page(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/apps", data={"client_name": '<script>alert("x")</script>', "redirect_uris": OOB}
    )
    app = App(response.json()["client_id"], response.json()["client_secret"], response.json())
    page = await open_page(client, app, state='"><script>alert(1)</script>')
    assert "<script>alert" not in page.response.text
    assert "&lt;script&gt;" in page.response.text
    assert 'value="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in page.response.text
    assert page.fields["state"] == '"><script>alert(1)</script>'


async def test_approving_out_of_band_shows_a_code_that_buys_one_token(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    await posting.member(resources, "ada")
    app = await register_app(client)
    code = await authorize(client, app, scope="read write")
    response = await exchange(client, app, code)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "token_type", "scope", "created_at", "refresh_token"}
    assert body["token_type"] == "Bearer" and body["scope"] == "read write"
    assert body["access_token"].startswith("kith_at_") and "expires_in" not in body
    assert abs(body["created_at"] - resources.clock.now().timestamp()) < 60
    assert response.headers["cache-control"] == "no-store"
    # Single-use: the same code again buys nothing.
    assert_mastodon_error(await exchange(client, app, code), 400, "invalid_grant")
    # The token works, and only its hash is stored.
    assert (await client.get("/api/v1/preferences", headers=bearer(body["access_token"]))).status_code == 200
    async with unit_of_work(resources, write=False) as session:
        tokens = list(await session.scalars(select(OAuthToken)))
        grants = list(await session.scalars(select(OAuthGrant)))
    assert len(tokens) == 1 and body["access_token"] not in (
        tokens[0].token_hash,
        tokens[0].refresh_token_hash,
    )
    assert grants[0].code_hash != code and grants[0].used_at is not None


async def test_the_oauth_paths_take_a_trailing_slash_as_mastodons_do(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    """toot sends its user to `/oauth/authorize/` (docs/mastodon.md#conventions)."""
    await posting.member(resources, "ada")
    app = await register_app(client, scopes="read write follow")
    query = {"response_type": "code", "client_id": app.client_id, "redirect_uri": OOB, "scope": "read write"}
    response = await client.get("/oauth/authorize/", params=query)
    assert response.status_code == 200, response.text
    assert "Authorize Toot?" in response.text
    code = oob_code(await answer(client, await open_page(client, app, scope="read write")))
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": OOB, **app.credentials}
    token = await client.post("/oauth/token/", data=data)
    assert token.status_code == 200, token.text
    assert token.json()["scope"] == "read write"
    # One slash only, and `/oauth/` itself is no route.
    assert (await client.get("/oauth/authorize//", params=query)).status_code == 404
    assert (await client.get("/oauth/")).status_code == 404


async def test_approving_redirects_to_the_app_with_the_code_and_state(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    await posting.member(resources, "ada")
    app = await register_app(client, redirect_uris=f"{CALLBACK}?app=1 {OOB}")
    page = await open_page(client, app, redirect_uri=f"{CALLBACK}?app=1", state="s t&ate")
    response = await answer(client, page)
    assert response.status_code == 303, response.text
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
    query = parse_qs(location.query)
    assert query["app"] == ["1"] and query["state"] == ["s t&ate"]
    token = await exchange(client, app, query["code"][0], redirect_uri=f"{CALLBACK}?app=1")
    assert token.status_code == 200, token.text
    # The redirect URI must be the one the code was given for.
    page = await open_page(client, app, redirect_uri=f"{CALLBACK}?app=1")
    code = parse_qs(urlsplit((await answer(client, page)).headers["location"]).query)["code"][0]
    assert_mastodon_error(await exchange(client, app, code, redirect_uri=OOB), 400, "invalid_grant")


async def test_denying_sends_access_denied_to_the_app(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    await posting.member(resources, "ada")
    app = await register_app(client, redirect_uris=CALLBACK)
    page = await open_page(client, app, redirect_uri=CALLBACK, state="abc")
    response = await answer(client, page, decision="deny")
    assert response.status_code == 303
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["error"] == ["access_denied"] and query["state"] == ["abc"]
    assert "code" not in query
    async with unit_of_work(resources, write=False) as session:
        assert await session.scalar(select(func.count()).select_from(OAuthGrant)) == 0


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"scope": "read admin:read"}, "invalid_scope"),
        ({"scope": "write"}, "invalid_scope"),  # the app registered only `read`
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"code_challenge": "x" * 43, "code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": "short", "code_challenge_method": "S256"}, "invalid_request"),
    ],
)
async def test_a_wrong_request_goes_back_to_the_app_with_its_error(
    client: httpx.AsyncClient, params: dict[str, str], error: str
) -> None:
    app = await register_app(client, redirect_uris=CALLBACK, scopes="read")
    query = {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": CALLBACK,
        "state": "s",
        **params,
    }
    response = await client.get("/oauth/authorize", params=query)
    assert response.status_code == 303, response.text
    found = parse_qs(urlsplit(response.headers["location"]).query)
    assert found["error"] == [error] and found["state"] == ["s"]


async def test_an_unknown_app_or_address_is_told_to_the_user_never_sent_on(client: httpx.AsyncClient) -> None:
    app = await register_app(client, redirect_uris=CALLBACK)
    unknown = await client.get("/oauth/authorize", params={"client_id": "nope", "redirect_uri": CALLBACK})
    elsewhere = await client.get(
        "/oauth/authorize", params={"client_id": app.client_id, "redirect_uri": "https://evil.example/cb"}
    )
    for response in (unknown, elsewhere):
        assert response.status_code == 400
        assert "location" not in response.headers
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert 'role="alert"' in response.text


async def test_a_wrong_password_shows_the_page_again_and_gives_no_code(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada = await posting.member(resources, "ada")
    app = await register_app(client)
    page = await open_page(client, app)
    response = await answer(client, page, password="wrong password!")
    assert response.status_code == 401
    assert "The login or the password is wrong." in response.text
    assert 'value="ada"' in response.text and 'id="code"' not in response.text
    await posting.set_suspended(resources, ada)
    suspended = await answer(client, page)
    assert suspended.status_code == 403 and "suspended" in suspended.text


async def test_the_form_needs_its_csrf_token_and_this_sites_origin(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    await posting.member(resources, "ada")
    app = await register_app(client)
    page = await open_page(client, app)
    forged = await answer(client, page, csrf_cookie="another-value")
    assert forged.status_code == 403 and 'id="code"' not in forged.text
    missing = await answer(client, page, csrf_token="")
    assert missing.status_code == 403
    cross_site = await answer(
        client, page, headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    )
    assert_mastodon_error(cross_site, 403, "access_denied")
    async with unit_of_work(resources, write=False) as session:
        assert await session.scalar(select(func.count()).select_from(OAuthGrant)) == 0


async def test_the_web_clients_session_approves_without_the_password(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    """The page's script sends the access token the web client's cookie gave (oauth.js)."""
    ada = await posting.member(resources, "ada")
    app = await register_app(client)
    page = await open_page(client, app)
    assert 'data-web-session="yes"' in page.response.text and "/oauth.js" in page.response.text
    code = oob_code(await answer(client, page, login="", password="", session_token=ada.access_token))
    token = (await exchange(client, app, code)).json()["access_token"]
    me = await client.get("/api/v1/preferences", headers=bearer(token))
    assert me.status_code == 200
    # A session that ended approves nothing.
    await client.post(f"{API}/auth/logout", headers=ada.headers)
    ended = await answer(client, page, login="", password="", session_token=ada.access_token)
    assert ended.status_code == 401 and "session ended" in ended.text


async def test_force_login_leaves_the_web_session_out(client: httpx.AsyncClient) -> None:
    app = await register_app(client)
    page = await open_page(client, app, force_login="true")
    assert 'data-web-session="no"' in page.response.text and "/oauth.js" not in page.response.text


# --- PKCE and the code's life ----------------------------------------------------------------


async def test_pkce_needs_the_verifier_of_the_challenge(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    await posting.member(resources, "ada")
    app = await register_app(client)
    verifier, _ = pkce()
    code = await authorize(client, app, verifier=verifier)
    assert_mastodon_error(await exchange(client, app, code), 400, "invalid_grant")
    assert_mastodon_error(await exchange(client, app, code, verifier=pkce()[0]), 400, "invalid_grant")
    assert (await exchange(client, app, code, verifier=verifier)).status_code == 200


async def test_a_code_lasts_ten_minutes(client: httpx.AsyncClient, resources: Resources) -> None:
    await posting.member(resources, "ada")
    app = await register_app(client)
    fresh, stale = await authorize(client, app), await authorize(client, app)
    resources.clock.advance(minutes=9)
    assert (await exchange(client, app, fresh)).status_code == 200
    resources.clock.advance(minutes=1, seconds=1)
    assert_mastodon_error(await exchange(client, app, stale), 400, "invalid_grant")


async def test_a_code_is_only_for_the_app_it_was_given_to(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    await posting.member(resources, "ada")
    app, other = await register_app(client), await register_app(client)
    code = await authorize(client, app)
    assert_mastodon_error(await exchange(client, other, code), 400, "invalid_grant")
    wrong_secret = App(app.client_id, other.client_secret, app.body)
    assert_mastodon_error(await exchange(client, wrong_secret, code), 401, "invalid_client")
    assert (await exchange(client, app, code)).status_code == 200


async def test_the_client_may_authenticate_with_http_basic(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    await posting.member(resources, "ada")
    app = await register_app(client)
    code = await authorize(client, app)
    response = await client.post(
        "/oauth/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": OOB},
        auth=(app.client_id, app.client_secret),
    )
    assert response.status_code == 200, response.text


# --- the other grants ------------------------------------------------------------------------


async def test_an_apps_own_token_verifies_the_app_but_is_no_user(client: httpx.AsyncClient) -> None:
    app = await register_app(client, website="https://app.example")
    response = await client.post("/oauth/token", data={"grant_type": "client_credentials", **app.credentials})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scope"] == "read" and "refresh_token" not in body
    verified = await client.get("/api/v1/apps/verify_credentials", headers=bearer(body["access_token"]))
    assert verified.status_code == 200
    assert verified.json() == {key: app.body[key] for key in verified.json()}
    assert "client_secret" not in verified.json() and "client_id" not in verified.json()
    assert_mastodon_error(
        await client.get("/api/v1/preferences", headers=bearer(body["access_token"])), 422, "user_required"
    )
    unregistered = await client.post(
        "/oauth/token", data={"grant_type": "client_credentials", "scope": "admin:read", **app.credentials}
    )
    assert_mastodon_error(unregistered, 400, "invalid_scope")


async def test_verifying_an_app_needs_an_app_token(client: httpx.AsyncClient, resources: Resources) -> None:
    ada = await posting.member(resources, "ada")
    assert_mastodon_error(await client.get("/api/v1/apps/verify_credentials"), 401, "not_authenticated")
    assert_mastodon_error(
        await client.get("/api/v1/apps/verify_credentials", headers=ada.headers), 401, "invalid_token"
    )
    assert_mastodon_error(
        await client.get("/api/v1/apps/verify_credentials", headers=bearer("kith_at_nothing")),
        401,
        "invalid_token",
    )


async def test_a_refresh_gives_a_new_pair_and_ends_the_old(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    await posting.member(resources, "ada")
    app = await register_app(client)
    first = (await exchange(client, app, await authorize(client, app, scope="read write"))).json()
    refresh = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"], **app.credentials}
    second = await client.post("/oauth/token", data=refresh)
    assert second.status_code == 200, second.text
    assert second.json()["scope"] == "read write"
    assert second.json()["access_token"] != first["access_token"]
    assert_mastodon_error(await client.get("/api/v1/preferences", headers=bearer(first["access_token"])), 401)
    assert (
        await client.get("/api/v1/preferences", headers=bearer(second.json()["access_token"]))
    ).status_code == 200
    assert_mastodon_error(await client.post("/oauth/token", data=refresh), 400, "invalid_grant")


async def test_unknown_grants_are_refused(client: httpx.AsyncClient, resources: Resources) -> None:
    await posting.member(resources, "ada")
    app = await register_app(client)
    for grant_type in ("implicit", "", "password"):
        response = await client.post(
            "/oauth/token",
            data={"grant_type": grant_type, "username": "ada", "password": PASSWORD, **app.credentials},
        )
        assert_mastodon_error(response, 400, "unsupported_grant_type")
    metadata = (await client.get("/.well-known/oauth-authorization-server")).json()
    assert "password" not in metadata["grant_types_supported"]


async def test_the_password_grant_works_only_when_the_operator_allows_it(settings: Settings) -> None:
    application: FastAPI = create_app(settings.model_copy(update={"oauth_password_grant": True}))
    async with application.router.lifespan_context(application):
        resources: Resources = application.state.resources
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            await posting.member(resources, "ada")
            app = await register_app(client)
            data = {
                "grant_type": "password",
                "username": "ada@example.com",
                "scope": "read",
                **app.credentials,
            }
            wrong = await client.post("/oauth/token", data={**data, "password": "not the password"})
            assert_mastodon_error(wrong, 401, "invalid_client")
            assert wrong.json()["error_description"] == "The login or the password is wrong."
            right = await client.post("/oauth/token", data={**data, "password": PASSWORD})
            assert right.status_code == 200, right.text
            assert (
                await client.get("/api/v1/preferences", headers=bearer(right.json()["access_token"]))
            ).status_code == 200
            metadata = (await client.get("/.well-known/oauth-authorization-server")).json()
            assert "password" in metadata["grant_types_supported"]


# --- revocation ------------------------------------------------------------------------------


async def test_an_app_revokes_its_token(client: httpx.AsyncClient, resources: Resources) -> None:
    await posting.member(resources, "ada")
    app, other = await register_app(client), await register_app(client)
    token = await user_token(client, app)
    # Another app cannot revoke it; an unknown token is no error (RFC 7009).
    assert (await client.post("/oauth/revoke", data={"token": token, **other.credentials})).json() == {}
    assert (await client.get("/api/v1/preferences", headers=bearer(token))).status_code == 200
    assert (await client.post("/oauth/revoke", data={"token": "nothing", **app.credentials})).json() == {}
    wrong = await client.post(
        "/oauth/revoke", data={"token": token, "client_id": app.client_id, "client_secret": "x"}
    )
    assert_mastodon_error(wrong, 401, "invalid_client")
    revoked = await client.post("/oauth/revoke", data={"token": token, **app.credentials})
    assert revoked.status_code == 200 and revoked.json() == {}
    assert_mastodon_error(
        await client.get("/api/v1/preferences", headers=bearer(token)), 401, "invalid_token"
    )


async def test_revoking_the_refresh_token_ends_the_pair(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada = await posting.member(resources, "ada")
    app = await register_app(client)
    pair = (await exchange(client, app, await authorize(client, app))).json()
    await posting.set_suspended(resources, ada)  # revoking still works for a suspended user's app
    revoked = await client.post("/oauth/revoke", data={"token": pair["refresh_token"], **app.credentials})
    assert revoked.json() == {}
    await posting.set_suspended(resources, ada, suspended=False)
    assert_mastodon_error(await client.get("/api/v1/preferences", headers=bearer(pair["access_token"])), 401)
    assert_mastodon_error(await client.post("/oauth/revoke", data=app.credentials), 400, "invalid_request")


async def test_a_password_change_revokes_every_app_token(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada = await posting.member(resources, "ada")
    app = await register_app(client)
    token = await user_token(client, app)
    changed = await client.post(
        f"{API}/users/me/password",
        json={"current_password": PASSWORD, "new_password": "a whole new passphrase"},
        headers=ada.headers,
    )
    assert changed.status_code == 204, changed.text
    assert_mastodon_error(
        await client.get("/api/v1/preferences", headers=bearer(token)), 401, "invalid_token"
    )


async def test_a_suspended_users_tokens_stop_working(client: httpx.AsyncClient, resources: Resources) -> None:
    ada = await posting.member(resources, "ada")
    app = await register_app(client)
    token = await user_token(client, app)
    await posting.set_suspended(resources, ada)
    assert_mastodon_error(
        await client.get("/api/v1/preferences", headers=bearer(token)), 401, "invalid_token"
    )
    await posting.set_suspended(resources, ada, suspended=False)
    assert (await client.get("/api/v1/preferences", headers=bearer(token))).status_code == 200


async def test_the_user_lists_and_revokes_the_apps_they_authorized(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, bob = await posting.members(resources, "ada", "bob")
    app = await register_app(client, website="https://app.example")
    old = await user_token(client, app, scope="read")
    new = await user_token(client, app, scope="read write")
    await user_token(client, app, login="bob")
    await client.get("/api/v1/preferences", headers=bearer(new))  # recorded as used, by a job
    await resources.jobs.wait_idle()
    listed = await client.get(f"{API}/users/me/authorizations", headers=ada.headers)
    assert listed.status_code == 200, listed.text
    assert listed.headers["cache-control"] == "no-store"
    items = listed.json()["items"]
    assert [item["scopes"] for item in items] == [["read", "write"], ["read"]]
    assert items[0]["app"] == {"name": "Toot", "website": "https://app.example"}
    assert items[0]["last_used_at"] is not None and items[1]["last_used_at"] is None
    assert set(items[0]) == {"id", "app", "scopes", "created_at", "last_used_at"}
    # Nobody else's, and not by an API key or an app token.
    bobs = (await client.get(f"{API}/users/me/authorizations", headers=bob.headers)).json()["items"]
    assert len(bobs) == 1
    gone = await client.delete(f"{API}/users/me/authorizations/{bobs[0]['id']}", headers=ada.headers)
    assert_problem(gone, 404, "authorization_not_found")
    revoked = await client.delete(f"{API}/users/me/authorizations/{items[1]['id']}", headers=ada.headers)
    assert revoked.status_code == 204
    assert_mastodon_error(await client.get("/api/v1/preferences", headers=bearer(old)), 401, "invalid_token")
    assert (await client.get("/api/v1/preferences", headers=bearer(new))).status_code == 200
    assert_problem(
        await client.get(f"{API}/users/me/authorizations", headers=bearer(new)), 401, "invalid_token"
    )


# --- scopes, and where app tokens work -------------------------------------------------------


async def test_a_token_does_only_what_its_scopes_allow(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    await posting.member(resources, "ada")
    app = await register_app(client)
    cases = {
        "read": 200,
        "read:accounts": 200,
        "write": 403,
        "read:statuses": 403,
        "follow": 403,
        "push": 403,
    }
    for scope, status in cases.items():
        token = await user_token(client, app, scope=scope)
        response = await client.get("/api/v1/preferences", headers=bearer(token))
        assert response.status_code == status, (scope, response.text)
        if status == 403:
            body = assert_mastodon_error(response, 403, "insufficient_scope")
            assert body["error"] == "This action is outside the authorized scopes."
    # `follow` holds the blocks, follows and mutes of both modes; `read:filters` is not among them.
    follow = await user_token(client, app, scope="follow")
    assert (await client.get("/api/v1/filters", headers=bearer(follow))).status_code == 403


async def test_kiths_own_api_does_not_take_app_tokens(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    await posting.member(resources, "ada")
    app = await register_app(client)
    token = await user_token(client, app)
    body = assert_problem(await client.get(f"{API}/users/me", headers=bearer(token)), 401, "invalid_token")
    assert "Mastodon-compatible API only" in body["detail"]


async def test_the_authorization_server_describes_itself(client: httpx.AsyncClient) -> None:
    response = await client.get("/.well-known/oauth-authorization-server")
    assert response.status_code == 200
    body = response.json()
    base = "https://kith.example"
    assert body["issuer"] == f"{base}/"
    assert body["authorization_endpoint"] == f"{base}/oauth/authorize"
    assert body["token_endpoint"] == f"{base}/oauth/token"
    assert body["revocation_endpoint"] == f"{base}/oauth/revoke"
    assert body["app_registration_endpoint"] == f"{base}/api/v1/apps"
    assert body["code_challenge_methods_supported"] == ["S256"]
    assert body["response_types_supported"] == ["code"]
    assert body["grant_types_supported"] == ["authorization_code", "client_credentials", "refresh_token"]
    assert {"read", "write", "follow", "push", "read:statuses", "write:media"} <= set(
        body["scopes_supported"]
    )
    assert not any(scope.startswith("admin") for scope in body["scopes_supported"])


async def test_oauth_errors_are_oauth_shaped(client: httpx.AsyncClient) -> None:
    response = await client.post("/oauth/token", data={"grant_type": "authorization_code", "client_id": "x"})
    body = assert_mastodon_error(response, 401, "invalid_client")
    assert set(body) == {"error", "error_description"}
    assert response.headers["www-authenticate"].startswith("Bearer")
    malformed = await client.post(
        "/oauth/token", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert_mastodon_error(malformed, 422, "invalid_request")
    unknown = await client.get("/oauth/nothing-here")
    assert_mastodon_error(unknown, 404, "not_found")
