"""Mastodon answers its API's paths with or without a trailing slash, and libraries rely on it:
Mastodon.py asks for `/api/v1/instance/`. Kith's own paths keep one spelling each (a trailing
slash is 404 there, docs/api.md#conventions); on the Mastodon-compatible API's, one trailing
slash is dropped before routing.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from kith.core.urls import MASTODON_API_PREFIXES


class MastodonTrailingSlash:
    """Routes `/api/v1/<path>/` as `/api/v1/<path>` (and `/api/v2/...` alike)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if (
                path.endswith("/")
                and path.startswith(MASTODON_API_PREFIXES)
                and path not in MASTODON_API_PREFIXES
            ):
                raw: bytes = scope.get("raw_path") or path.encode()
                scope = {**scope, "path": path[:-1], "raw_path": raw[:-1] if raw.endswith(b"/") else raw}
        await self.app(scope, receive, send)
