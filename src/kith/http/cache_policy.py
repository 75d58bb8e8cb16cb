"""The `Cache-Control` every response gets unless its route chose one itself.

The rules: docs/api.md#conventions. `kith.http.middleware.EdgeMiddleware` applies them to
every response, errors included.
"""

from __future__ import annotations

from kith.core.urls import API_PREFIX, OAUTH_PREFIX

# Responses under these prefixes hold credentials or private data (docs/api.md#conventions):
# Kith's, and the Mastodon-compatible API's app registration (its secret) and sign-in.
NO_STORE_PREFIXES = (
    *(f"{API_PREFIX}{path}" for path in ("/auth", "/users/me", "/admin")),
    "/api/v1/apps",
    OAUTH_PREFIX,
)


def overrides_route(path: str) -> bool:
    """Whether the policy replaces a `Cache-Control` the route chose (credentials: no-store)."""
    return path.startswith(NO_STORE_PREFIXES)


def cache_control_for(path: str, authenticated: bool) -> str | None:
    """The `Cache-Control` a response gets unless its route chose one itself."""
    if path.startswith(NO_STORE_PREFIXES):
        return "no-store"
    if authenticated and path.startswith("/api/"):
        return "private, no-cache"
    return None
