"""Absolute URLs on the configured public URL.

The request middleware records the public URL for the duration of each request, so
response schemas can turn storage keys into URLs without reaching for settings.
"""

from __future__ import annotations

from contextvars import ContextVar
from urllib.parse import urlsplit

public_base_url: ContextVar[str] = ContextVar("public_base_url", default="")

# Every path of Kith's own API starts here; nothing else spells it out. `/api/v1` and
# `/api/v2` are left to the Mastodon-compatible API, where Mastodon clients look for it.
API_PREFIX = "/api/kith/v1"
# Where Mastodon apps call the Mastodon-compatible API (docs/mastodon.md).
MASTODON_API_PREFIXES = ("/api/v1/", "/api/v2/")
# Where Mastodon apps register and sign in (docs/mastodon.md#apps-and-sign-in).
OAUTH_PREFIX = "/oauth/"
# Media files are served outside the API, at a plain public path: `MEDIA_PATH + key`.
MEDIA_PATH = "/media/"


def origin_of(url: str) -> str:
    """The origin (`scheme://host[:port]`, lower case) of an absolute URL."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def absolute_url(path: str) -> str:
    return f"{public_base_url.get()}{path}"


def media_url(storage_key: str | None) -> str | None:
    """The public URL of a stored media file, or None."""
    if storage_key is None:
        return None
    return absolute_url(MEDIA_PATH + storage_key)


def mastodon_face(path: str) -> str | None:
    """Which of the Mastodon-compatible faces a path belongs to: "api" (`/api/v1`, `/api/v2`),
    "oauth" (`/oauth`), or None for Kith's own paths and everything else. Errors and rate-limit
    headers take Mastodon's conventions there (docs/mastodon.md#conventions)."""
    lowered = path.lower()
    if lowered.startswith(MASTODON_API_PREFIXES):
        return "api"
    if lowered.startswith(OAUTH_PREFIX):
        return "oauth"
    return None
