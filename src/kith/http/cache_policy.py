"""The `Cache-Control` every response gets unless its route chose one itself."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kith.core.urls import API_PREFIX

# Responses under these prefixes hold credentials or private data (docs/api.md#conventions).
NO_STORE_PREFIXES = tuple(f"{API_PREFIX}{path}" for path in ("/auth", "/users/me", "/admin"))


def cache_control_for(path: str, authenticated: bool) -> str | None:
    """The `Cache-Control` a response gets unless its route chose one itself."""
    if path.startswith(NO_STORE_PREFIXES):
        return "no-store"
    if authenticated and path.startswith("/api/"):
        return "private, no-cache"
    return None


class CachePolicyMiddleware:
    """Applies the API's `Cache-Control` rules to every response, errors included.

    The rules: docs/api.md#conventions.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        authenticated = any(name in (b"authorization", b"x-api-key") for name, _ in scope["headers"])
        policy = cache_control_for(path, authenticated)

        async def send_with_policy(message: Message) -> None:
            if policy and message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if path.startswith(NO_STORE_PREFIXES) or "cache-control" not in headers:
                    headers["Cache-Control"] = policy
            await send(message)

        await self.app(scope, receive, send_with_policy)
