"""Mastodon's `Link` header for a page of a list (docs/mastodon.md#conventions).

Lists page by id: `next` asks for older items (`max_id`), `prev` for newer ones (`min_id`), at
absolute addresses. The timelines, the notifications and the lists of followers and followed
accounts build their links here, so all three speak the same way.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import Request

from kith.core.urls import absolute_url


def page_links(request: Request, size: int, *, newest: str, oldest: str, older: bool = True) -> str:
    """Mastodon's `Link` for a page whose first and last items have the Mastodon ids `newest`
    and `oldest`: `next` asks for older items (left out when `older` says there are none),
    `prev` for newer."""
    path = absolute_url(request.url.path)
    links = [f'<{path}?{urlencode({"limit": size, "min_id": newest})}>; rel="prev"']
    if older:
        links.insert(0, f'<{path}?{urlencode({"limit": size, "max_id": oldest})}>; rel="next"')
    return ", ".join(links)
