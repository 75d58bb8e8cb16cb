"""The application factory."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from kith import __version__
from kith.admin.router import router as admin_router
from kith.auth.router import router as auth_router
from kith.core.config import Settings, get_settings
from kith.core.logging import configure_logging
from kith.core.metrics import process_stopped
from kith.core.urls import API_PREFIX
from kith.exports import subscriptions as export_subscriptions
from kith.exports.router import downloads as export_downloads_router
from kith.exports.router import router as exports_router
from kith.feed import jobs as feed_jobs
from kith.feed import subscriptions as feed_subscriptions
from kith.feed.router import router as feed_router
from kith.http.edge import BodySizeLimitMiddleware, check_cors
from kith.http.errors import install_error_handlers
from kith.http.health import router as health_router
from kith.http.metrics import router as metrics_router
from kith.http.middleware import EdgeMiddleware
from kith.http.problems import router as problems_router
from kith.http.ratelimit import RateLimitMiddleware
from kith.mastodon import subscriptions as mastodon_subscriptions
from kith.mastodon.accounts import router as mastodon_accounts_router
from kith.mastodon.media import router as mastodon_media_router
from kith.mastodon.notifications import router as mastodon_notifications_router
from kith.mastodon.oauth import router as mastodon_oauth_router
from kith.mastodon.router import router as mastodon_router
from kith.mastodon.slashes import MastodonTrailingSlash
from kith.mastodon.statuses import router as mastodon_statuses_router
from kith.mastodon.streaming import router as mastodon_streaming_router
from kith.mastodon.timelines import router as mastodon_timelines_router
from kith.media.router import files as media_files_router
from kith.media.router import router as media_router
from kith.media.storage import LocalMediaStorage
from kith.moderation.router import router as moderation_router
from kith.notifications.router import router as notifications_router
from kith.notifications.stream import router as stream_router
from kith.openapi import install_openapi
from kith.posts.router import router as posts_router
from kith.runtime.events import Subscribers
from kith.runtime.periodic import PeriodicRunner
from kith.runtime.resources import Resources
from kith.social.router import router as social_router
from kith.users.router import me as me_router
from kith.users.router import router as users_router
from kith.web.api_docs import OPENAPI_URL
from kith.web.api_docs import router as api_docs_router
from kith.web.assets import router as assets_router
from kith.web.router import router as web_router


def api_routers() -> list[APIRouter]:
    """The API's routers, each included under `API_PREFIX` straight on the app: a router of
    routers would add a level of matching to every request (about 11 µs).

    A request is matched against the routes in this order, at a cost per route passed (a
    few microseconds each): the most requested come first (docs/benchmarks.md). No path of
    one router can match another's, except where noted.
    """
    return [
        feed_router,
        posts_router,
        auth_router,
        me_router,  # before /users/{id}, which would match "me"
        exports_router,
        users_router,
        social_router,
        media_router,
        moderation_router,
        notifications_router,
        stream_router,
        admin_router,
        export_downloads_router,
    ]


def subscribers(settings: Settings) -> Subscribers:
    """Every domain's reactions to other domains' events, for this configuration."""
    chosen = Subscribers()
    feed_subscriptions.subscribe(chosen, settings)
    export_subscriptions.subscribe(chosen, settings)
    mastodon_subscriptions.subscribe(chosen, settings)
    return chosen


async def open_resources(settings: Settings) -> Resources:
    """The process's resources as `kith serve`, `kith worker` and the command line use them:
    media on local disk, and every domain's event subscriptions."""
    resources = await Resources.open(settings, LocalMediaStorage(settings.media_root), subscribers(settings))
    await feed_jobs.forget_unless_kept(resources)
    return resources


def freeze_startup_objects() -> None:
    """Move what startup built (modules, the app, mappers, compiled schemas) out of the
    collector's way.

    These objects live as long as the process, yet every full collection walked them all:
    about 175,000 objects, 80-180 ms each in a benchmark server, during which the event loop
    serves nobody. Frozen, a full collection walks only what requests left behind. The
    lifespan's end unfreezes them, so apps made and dropped in one process (the tests) are
    collected as before. No collection first: it cost every app start about 0.35 s (a third
    of the test suite's time), and what it would free is the little garbage startup left,
    kept until shutdown.
    """
    gc.freeze()


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the ASGI app. Resources open in the lifespan and close with it."""
    settings = settings or get_settings()
    configure_logging(settings)
    settings.resolve_secret_key()
    check_cors(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Read from app.state (the same object): the tests reuse one built app per settings.
        settings: Settings = app.state.settings
        resources = await open_resources(settings)
        app.state.resources = resources
        # Periodic house-keeping runs here on the embedded default; with Redis, in `kith worker`.
        periodic = PeriodicRunner(resources, tasks=None if settings.redis_url is None else [])
        periodic.start()
        freeze_startup_objects()
        try:
            yield
        finally:
            gc.unfreeze()
            await periodic.stop()
            await resources.close()
            process_stopped()

    app = FastAPI(
        title="Kith API",
        version=__version__,
        lifespan=lifespan,
        # Kith serves Swagger UI itself, from its own files (kith.web.api_docs); FastAPI's pages
        # load it from a CDN. No ReDoc: a second renderer of the same document.
        docs_url=None,
        redoc_url=None,
        openapi_url=OPENAPI_URL,
        # One URL per resource: `/users/me/` is 404, not a redirect whose Location Starlette
        # would build from the request's Host header (and a 307 makes clients resend bodies,
        # credentials included, to it).
        redirect_slashes=False,
    )
    app.state.settings = settings
    install_error_handlers(app)
    for router in api_routers():  # first: nearly every request is for the API
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(media_files_router)  # `/media/{key}`: outside the API, a path of its own
    app.include_router(mastodon_router)  # Mastodon's own paths (docs/mastodon.md)
    app.include_router(mastodon_oauth_router)  # and how Mastodon apps sign in
    app.include_router(mastodon_accounts_router)
    app.include_router(mastodon_statuses_router)
    app.include_router(mastodon_media_router)
    app.include_router(mastodon_timelines_router)
    app.include_router(mastodon_notifications_router)
    app.include_router(mastodon_streaming_router)
    app.include_router(health_router)
    app.include_router(problems_router)
    app.include_router(metrics_router)
    app.include_router(web_router)  # the web client's page (docs/web-client.md)
    app.include_router(api_docs_router)
    app.include_router(assets_router)  # the scripts and styles of both
    install_openapi(app, rate_limited=settings.rate_limits_enabled)
    # Middleware run outermost first, in the reverse order of these lines.
    app.add_middleware(MastodonTrailingSlash)  # innermost: only routing sees it
    if settings.rate_limits_enabled:
        # Inside CORS, so a browser can read a 429 and its headers.
        app.add_middleware(RateLimitMiddleware)
    # Uploads (POST {API_PREFIX}/media) count their bytes against KITH_MEDIA_MAX_BYTES instead.
    app.add_middleware(
        BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes, exempt=(("POST", f"{API_PREFIX}/media"),)
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=settings.cors_allow_credentials,
            max_age=600,
            allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key", "X-Request-ID", "Idempotency-Key"],
            expose_headers=[
                "X-Request-ID",
                "Link",
                "Location",
                "ETag",
                "Idempotent-Replayed",
                "Retry-After",
                "RateLimit-Limit",
                "RateLimit-Remaining",
                "RateLimit-Reset",
                # Mastodon's names of the same limit, on its paths (docs/mastodon.md#conventions).
                "X-RateLimit-Limit",
                "X-RateLimit-Remaining",
                "X-RateLimit-Reset",
            ],
        )
    # Outermost: ids, logs, metrics, hosts, security headers, cache policy, ETag and gzip for
    # every response, the 500 of an escaped exception included, in one pass.
    app.add_middleware(
        EdgeMiddleware,
        public_url=settings.public_url,
        retry_after_seconds=settings.unavailable_retry_after_seconds,
        allowed_hosts=settings.allowed_hosts,
        hsts_max_age_seconds=settings.hsts_max_age_seconds,
    )
    return app
