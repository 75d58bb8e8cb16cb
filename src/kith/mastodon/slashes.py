"""Mastodon answers its API's and its OAuth paths with or without a trailing slash, and
libraries and apps rely on it: Mastodon.py asks for `/api/v1/instance/`, toot sends its user to
`/oauth/authorize/`. Kith's own paths keep one spelling each (a trailing slash is 404 there,
docs/api.md#conventions); on the Mastodon-compatible API's and OAuth's, one trailing slash is
dropped before routing.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from kith.core.urls import MASTODON_API_PREFIXES, OAUTH_PREFIX

# Where one trailing slash is dropped; the prefixes themselves are left as they are.
PREFIXES = (*MASTODON_API_PREFIXES, OAUTH_PREFIX)


class MastodonTrailingSlash:
    """Routes `/api/v1/<path>/` as `/api/v1/<path>` (and `/api/v2/...` and `/oauth/...` alike)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path.endswith("/") and path.startswith(PREFIXES) and path not in PREFIXES:
                raw: bytes = scope.get("raw_path") or path.encode()
                scope = {**scope, "path": path[:-1], "raw_path": raw[:-1] if raw.endswith(b"/") else raw}
        await self.app(scope, receive, send)
