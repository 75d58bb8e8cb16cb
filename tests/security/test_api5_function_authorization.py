"""OWASP API5:2023 Broken Function Level Authorization.

Every route the app serves declares who may call it, in `ACCESS` below, and the
declaration must match what the route's dependencies enforce. A route added without an
access rule, or with a different one, fails `test_every_route_declares_who_may_call_it`.
Then every route is called by the wrong kind of caller: nobody, a plain user on staff
routes, a moderator on admin routes, an API key where only a login may act, a read-only
key on writes. Each must be refused before anything is looked up.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from fastapi import FastAPI

from kith.db.models import Role
from kith.runtime.resources import Resources
from kith.web.router import PAGE_PATHS
from tests.helpers import API, MEDIA, assert_error
from tests.posting import member
from tests.security.inventory import required_access, served_routes

# The public list: no credentials needed. Keep it short.
PUBLIC = "public"
# `/metrics` checks its own bearer token (KITH_METRICS_TOKEN), not a user: see API9.
METRICS = "metrics token"
USER, SESSION, STAFF, ADMIN = "user", "session", "staff", "admin"
# A Mastodon app's token, its own or a user's (docs/mastodon.md#apps-and-sign-in).
APP = "app"
# The live stream authenticates in its handshake or first message
# (tests/integration/test_notifications_stream.py).
STREAM = "user, in the WebSocket handshake or first message"

ACCESS: dict[tuple[str, str], str] = {
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/problems/{code}"): PUBLIC,
    ("GET", "/metrics"): METRICS,
    # The web client: one page for every address, and the assets of it and of /docs; the views
    # ask the API.
    ("GET", "/assets/{version}/{name}"): PUBLIC,
    **{("GET", path): PUBLIC for path in PAGE_PATHS},
    ("POST", f"{API}/auth/register"): PUBLIC,
    ("POST", f"{API}/auth/login"): PUBLIC,
    ("POST", f"{API}/auth/token"): PUBLIC,
    ("POST", f"{API}/auth/refresh"): PUBLIC,
    # The web client's cookie flow: the refresh cookie is the credential, and only requests
    # from Kith's own pages are taken (an Origin check, tests/integration/test_web_auth.py).
    ("POST", f"{API}/auth/web/login"): PUBLIC,
    ("POST", f"{API}/auth/web/refresh"): PUBLIC,
    ("POST", f"{API}/auth/web/logout"): PUBLIC,
    ("POST", f"{API}/auth/verify-email"): PUBLIC,
    ("POST", f"{API}/auth/password-reset"): PUBLIC,
    ("POST", f"{API}/auth/password-reset/confirm"): PUBLIC,
    ("GET", f"{MEDIA}/{{key}}"): PUBLIC,
    # An export's single-use download link: its 256-bit token, which only the owner (logged
    # in) can get, is the credential (tests/integration/test_exports.py).
    ("GET", f"{API}/export-downloads/{{token}}"): PUBLIC,
    ("GET", f"{API}/users/me/authorizations"): SESSION,
    ("DELETE", f"{API}/users/me/authorizations/{{authorization_id}}"): SESSION,
    ("POST", f"{API}/auth/logout"): SESSION,
    ("POST", f"{API}/auth/logout-all"): SESSION,
    ("POST", f"{API}/auth/verify-email/resend"): USER,
    ("GET", f"{API}/users/me"): USER,
    ("PATCH", f"{API}/users/me"): USER,
    ("DELETE", f"{API}/users/me"): SESSION,
    ("POST", f"{API}/users/me/password"): SESSION,
    ("GET", f"{API}/users/me/api-keys"): SESSION,
    ("POST", f"{API}/users/me/api-keys"): SESSION,
    ("DELETE", f"{API}/users/me/api-keys/{{key_id}}"): SESSION,
    ("GET", f"{API}/users/me/sessions"): SESSION,
    ("DELETE", f"{API}/users/me/sessions/{{session_id}}"): SESSION,
    ("POST", f"{API}/users/me/exports"): SESSION,
    ("GET", f"{API}/users/me/exports"): USER,
    ("GET", f"{API}/users/me/exports/{{export_id}}"): USER,
    ("GET", f"{API}/users/me/exports/{{export_id}}/archive"): USER,
    ("POST", f"{API}/users/me/exports/{{export_id}}/links"): SESSION,
    ("GET", f"{API}/users"): USER,
    ("GET", f"{API}/users/{{user_id}}"): USER,
    ("GET", f"{API}/users/{{user_id}}/posts"): USER,
    ("GET", f"{API}/users/{{user_id}}/friends"): USER,
    ("POST", f"{API}/friend-requests"): USER,
    ("GET", f"{API}/friend-requests"): USER,
    ("GET", f"{API}/friend-requests/{{request_id}}"): USER,
    ("PATCH", f"{API}/friend-requests/{{request_id}}"): USER,
    ("DELETE", f"{API}/friend-requests/{{request_id}}"): USER,
    ("DELETE", f"{API}/friends/{{user_id}}"): USER,
    ("POST", f"{API}/blocks"): USER,
    ("GET", f"{API}/blocks"): USER,
    ("DELETE", f"{API}/blocks/{{user_id}}"): USER,
    ("POST", f"{API}/posts"): USER,
    ("GET", f"{API}/posts/{{post_id}}"): USER,
    ("PATCH", f"{API}/posts/{{post_id}}"): USER,
    ("DELETE", f"{API}/posts/{{post_id}}"): USER,
    ("POST", f"{API}/posts/{{post_id}}/like"): USER,
    ("DELETE", f"{API}/posts/{{post_id}}/like"): USER,
    ("GET", f"{API}/posts/{{post_id}}/likes"): USER,
    ("POST", f"{API}/posts/{{post_id}}/comments"): USER,
    ("GET", f"{API}/posts/{{post_id}}/comments"): USER,
    ("PATCH", f"{API}/comments/{{comment_id}}"): USER,
    ("DELETE", f"{API}/comments/{{comment_id}}"): USER,
    ("GET", f"{API}/feed"): USER,
    ("POST", f"{API}/media"): USER,
    ("POST", f"{API}/reports"): USER,
    ("GET", f"{API}/moderation/reports"): STAFF,
    ("PATCH", f"{API}/moderation/reports/{{report_id}}"): STAFF,
    ("GET", f"{API}/notifications"): USER,
    ("GET", f"{API}/notifications/unread-count"): USER,
    ("POST", f"{API}/notifications/read"): USER,
    ("GET", f"{API}/admin/users"): ADMIN,
    ("PATCH", f"{API}/admin/users/{{user_id}}"): ADMIN,
    ("DELETE", f"{API}/admin/users/{{user_id}}"): ADMIN,
    ("GET", f"{API}/admin/audit-log"): ADMIN,
    ("WS", f"{API}/stream"): STREAM,
    # Mastodon's streams authenticate themselves, as Kith's does (docs/mastodon.md#streaming).
    ("WS", "/api/v1/streaming"): STREAM,
    ("GET", "/api/v1/streaming/{path}"): STREAM,
    ("GET", "/api/v1/streaming/health"): PUBLIC,
    # The Mastodon-compatible API (docs/mastodon.md): what an app reads before signing in...
    **{
        ("GET", path): PUBLIC
        for path in (
            "/.well-known/nodeinfo",
            "/nodeinfo/2.0",
            "/nodeinfo/2.1",
            "/api/v1/instance",
            "/api/v2/instance",
            "/api/v1/instance/rules",
            "/api/v1/custom_emojis",
            "/api/v1/trends",
            "/api/v1/trends/tags",
            "/api/v1/trends/statuses",
            "/api/v1/trends/links",
        )
    },
    # How an app registers and signs in: the app's secret, or the user's login on the
    # authorization page, is the credential (tests/integration/test_mastodon_oauth.py).
    ("POST", "/api/v1/apps"): PUBLIC,
    ("GET", "/.well-known/oauth-authorization-server"): PUBLIC,
    ("GET", "/oauth/authorize"): PUBLIC,
    ("POST", "/oauth/authorize"): PUBLIC,
    ("POST", "/oauth/token"): PUBLIC,
    ("POST", "/oauth/revoke"): PUBLIC,
    ("GET", "/api/v1/apps/verify_credentials"): APP,
    # ...and what it reads for the signed-in user.
    **{
        ("GET", path): USER
        for path in (
            "/api/v1/announcements",
            "/api/v1/filters",
            "/api/v2/filters",
            "/api/v1/lists",
            "/api/v1/markers",
            "/api/v1/preferences",
            "/api/v1/accounts/verify_credentials",
            "/api/v1/accounts/relationships",
            "/api/v1/accounts/lookup",
            "/api/v1/accounts/{account_id}",
            "/api/v1/accounts/{account_id}/followers",
            "/api/v1/accounts/{account_id}/following",
            "/api/v1/follow_requests",
            "/api/v2/search",
            "/api/v1/statuses/{status_id}",
            "/api/v1/statuses/{status_id}/context",
            "/api/v1/statuses/{status_id}/favourited_by",
            "/api/v1/media/{media_id}",
            "/api/v1/timelines/home",
            "/api/v1/timelines/public",
            "/api/v1/accounts/{account_id}/statuses",
            "/api/v1/notifications",
            "/api/v1/notifications/{notification_id}",
        )
    },
    # ...and what it changes for the signed-in user.
    **dict.fromkeys(
        (
            ("PATCH", "/api/v1/accounts/update_credentials"),
            ("POST", "/api/v1/accounts/{account_id}/follow"),
            ("POST", "/api/v1/accounts/{account_id}/unfollow"),
            ("POST", "/api/v1/accounts/{account_id}/block"),
            ("POST", "/api/v1/accounts/{account_id}/unblock"),
            ("POST", "/api/v1/follow_requests/{account_id}/authorize"),
            ("POST", "/api/v1/follow_requests/{account_id}/reject"),
            ("POST", "/api/v1/statuses"),
            ("DELETE", "/api/v1/statuses/{status_id}"),
            ("POST", "/api/v1/statuses/{status_id}/favourite"),
            ("POST", "/api/v1/statuses/{status_id}/unfavourite"),
            ("POST", "/api/v2/media"),
            ("POST", "/api/v1/media"),
            ("POST", "/api/v1/notifications/clear"),
            ("POST", "/api/v1/notifications/{notification_id}/dismiss"),
        ),
        USER,
    ),
}
# What the dependencies of a route show for each declared level.
ENFORCED = {PUBLIC: "none", METRICS: "none", STREAM: "none", USER: "user", SESSION: "session"}
ENFORCED |= {STAFF: "staff", ADMIN: "admin", APP: "app"}


def test_every_route_declares_who_may_call_it(app: FastAPI) -> None:
    served = {(route.method, route.path): route for route in served_routes(app)}
    assert set(served) == set(ACCESS), "served routes and ACCESS differ"
    for key, route in served.items():
        assert required_access(route) == ENFORCED[ACCESS[key]], key


def _url(path: str) -> str:
    return path.replace("{key}", "0" * 32 + ".png").format_map(_AnyId())


class _AnyId(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return str(uuid.uuid4())


async def _api_key(client: httpx.AsyncClient, headers: dict[str, str], scopes: list[str]) -> dict[str, str]:
    response = await client.post(
        f"{API}/users/me/api-keys", json={"name": "k", "scopes": scopes}, headers=headers
    )
    assert response.status_code == 201, response.text
    return {"X-API-Key": response.json()["key"]}


async def test_every_route_refuses_the_wrong_callers(client: httpx.AsyncClient, resources: Resources) -> None:
    user = await member(resources, "plain")
    moderator = await member(resources, "moderator", Role.moderator)
    read_key = await _api_key(client, user.headers, ["read"])
    write_key = await _api_key(client, user.headers, ["read", "write"])
    admin_key = await _api_key(
        client, (await member(resources, "root", Role.admin)).headers, ["read", "write"]
    )
    checked = 0
    for (method, path), level in ACCESS.items():
        if level in (PUBLIC, METRICS, STREAM):
            continue
        url = _url(path)
        body: dict[str, Any] | None = {} if method in ("POST", "PATCH", "DELETE") else None

        async def call(
            headers: dict[str, str], url: str = url, method: str = method, body: Any = body
        ) -> httpx.Response:
            return await client.request(method, url, json=body, headers=headers)

        response = await call({})
        assert_error(response, 401, "not_authenticated")
        assert response.headers["www-authenticate"] == "Bearer", (method, path)
        if level in (STAFF, ADMIN):
            assert_error(await call(user.headers), 403, "insufficient_role")
        if level == ADMIN:
            assert_error(await call(moderator.headers), 403, "insufficient_role")
        if level in (SESSION, STAFF, ADMIN):
            assert_error(await call(write_key), 403, "api_key_not_allowed")
            assert_error(await call(admin_key), 403, "api_key_not_allowed")
        if level == USER and method != "GET":
            assert_error(await call(read_key), 403, "insufficient_scope")
        checked += 1
    assert checked == sum(level not in (PUBLIC, METRICS, STREAM) for level in ACCESS.values())
