"""The web client's page.

The client is plain HTML, CSS and JavaScript modules under `static/`, talking to the JSON API
like any other client. Every client-side address (`/`, `/posts/<id>`, `/settings`, ...) answers
the same page, which then shows the view its address names. Its scripts, style sheet and icon
are Kith's shelf of assets (`kith.web.assets`), cached for good under their version; the page
itself is revalidated with its `ETag`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from kith.core.urls import origin_of
from kith.http.deps import AppSettings
from kith.web.assets import KITH, send_asset

# Client-side addresses: each answers the page (docs/web-client.md#addresses). The links in
# verification and reset e-mails (`/verify-email`, `/reset-password`) are among them.
PAGE_PATHS = (
    "/",
    "/login",
    "/signup",
    "/forgot-password",
    "/reset-password",
    "/verify-email",
    "/people",
    "/friends",
    "/notifications",
    "/settings",
    "/moderation",
    "/admin",
    "/posts/{post_id}",
    "/users/{user_id}",
)
# The page runs its own scripts and styles and nothing else: no inline script, no eval, no
# inline style attribute in the markup (scripts set styles through the CSSOM), no framing.
# Images come from this origin (media files) or the public URL's, and blob: for previews
# of a chosen file before it is uploaded. `connect-src 'self'` covers the WebSocket too.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: {media_origin}; "
    "connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'; object-src 'none'"
)
PAGE = KITH.page("index.html", {"assets": KITH.base})
router = APIRouter(include_in_schema=False)


async def page(request: Request, settings: AppSettings) -> Response:
    """The client's one page: it reads its address and shows that view."""
    csp = PAGE_CSP.format(media_origin=origin_of(settings.public_url))
    return await send_asset(request, PAGE, "no-cache", {"Content-Security-Policy": csp})


for _path in PAGE_PATHS:
    router.add_api_route(_path, page, methods=["GET"], include_in_schema=False)
