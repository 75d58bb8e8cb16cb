"""OWASP API9:2023 Improper Inventory Management.

The inventory is the OpenAPI description, and it is complete: every route the app
serves is in it except a short, explained list and the Mastodon-compatible API
(docs/mastodon.md), and everything in it is served. One version of Kith's API exists, under
`/api/kith/v1` (media files at `/media/{key}`); nothing answers elsewhere, the paths of the
API before it moved (`/api/v1/...`) included. `/metrics`, the
one operational route with internals, is closed unless a token is configured, and then
open only to that token.
"""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from pydantic import SecretStr

from kith import __version__
from kith.core.config import Settings
from kith.main import create_app
from kith.runtime.resources import Resources
from kith.web.assets import KITH
from kith.web.router import PAGE_PATHS
from tests.helpers import API, MEDIA, assert_error, assert_mastodon_error, assert_problem
from tests.posting import member
from tests.security.inventory import served_routes

# Served but not API operations, so not in the OpenAPI description.
NOT_IN_OPENAPI = {
    ("GET", "/openapi.json"): "the description itself",
    ("GET", "/docs"): "Swagger UI",
    ("GET", "/problems/{code}"): "the pages that problem `type` URIs point to",
    ("GET", "/metrics"): "Prometheus scrapes, behind KITH_METRICS_TOKEN",
    ("WS", f"{API}/stream"): "OpenAPI 3.1 cannot describe WebSockets; documented in the API guide",
    ("GET", "/assets/{version}/{name}"): "the web client's and Swagger UI's files (docs/web-client.md)",
}
# The Mastodon-compatible API and NodeInfo keep Mastodon's paths and shapes, described by
# Mastodon's documentation and docs/mastodon.md; a client generated from Kith's OpenAPI
# document must not see them.
MASTODON_PATHS = ("/api/v1/", "/api/v2/", "/.well-known/", "/nodeinfo/", "/oauth/")
# The web client's addresses: each answers its one HTML page (docs/web-client.md).
NOT_IN_OPENAPI |= {("GET", path): "the web client's page" for path in PAGE_PATHS}


def test_every_served_route_is_in_the_openapi_description_and_back(app: FastAPI) -> None:
    served = {(route.method, route.path) for route in served_routes(app)}
    mastodon = {(method, path) for method, path in served if path.startswith(MASTODON_PATHS)}
    assert mastodon, "the Mastodon-compatible routes are served"
    described = {(method.upper(), path) for path, item in app.openapi()["paths"].items() for method in item}
    assert served - set(NOT_IN_OPENAPI) - mastodon == described
    assert set(NOT_IN_OPENAPI) <= served


def test_one_api_version_under_one_prefix(app: FastAPI) -> None:
    document = app.openapi()
    assert document["info"]["version"] == __version__
    outside = {"/healthz", "/readyz", f"{MEDIA}/{{key}}"}
    for path in document["paths"]:
        assert path.startswith(f"{API}/") or path in outside, path


async def test_nothing_answers_outside_the_inventory(client: httpx.AsyncClient, resources: Resources) -> None:
    ada = await member(resources, "ada")
    for path in (
        "/api/v2/users/me",
        "/api/users/me",
        "/api/v1/users/me",
        "/api/v1/feed",
        f"{API}/users/me/",
        f"{API}/media/" + "0" * 32 + ".png",
        "/api/kith/v2/users/me",
        "/api/kith/users/me",
        "/v1/users/me",
        "/admin/users",
        "/wp-admin",
        "/debug",
        "/posts",
        "/redoc",
        "/docs/oauth2-redirect",
        "/assets/app.js",
        f"/assets/{KITH.version}/../index.html",
        f"/assets/{KITH.version}/index.html",
        f"/assets/{'0' * 16}/app.js",
    ):
        response = await client.get(path, headers=ada.headers)
        assert_error(response, 404, "not_found")
    # Kith's media files were there before the move: now Mastodon's upload of that id, none.
    old_file = await client.get("/api/v1/media/" + "0" * 32 + ".png", headers=ada.headers)
    assert_mastodon_error(old_file, 404, "media_not_found")
    for method in ("PUT", "TRACE", "CONNECT"):
        assert_problem(await client.request(method, f"{API}/users/me", headers=ada.headers), 405)


async def test_metrics_are_closed_without_their_token(client: httpx.AsyncClient, settings: Settings) -> None:
    assert_problem(await client.get("/metrics"), 404)
    configured = create_app(
        settings.model_copy(update={"metrics_token": SecretStr("s3cret-metrics-token-0123456789")})
    )
    async with configured.router.lifespan_context(configured):
        transport = httpx.ASGITransport(app=configured)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            for headers in (
                {},
                {"Authorization": "Bearer wrong"},
                {"Authorization": "Bearer s3cret-metrics-token-012345678"},
                {"Authorization": "s3cret-metrics-token-0123456789"},
                {"X-API-Key": "s3cret-metrics-token-0123456789"},
            ):
                assert_problem(await http.get("/metrics", headers=headers), 404)
            # A token in the URL would end up in logs: not accepted there either.
            assert_problem(
                await http.get("/metrics", params={"token": "s3cret-metrics-token-0123456789"}), 404
            )
            scraped = await http.get(
                "/metrics", headers={"Authorization": "Bearer s3cret-metrics-token-0123456789"}
            )
            assert scraped.status_code == 200
            assert "kith_http_requests_total" in scraped.text
            assert scraped.headers["cache-control"] == "no-store"
