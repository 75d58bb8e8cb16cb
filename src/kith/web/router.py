"""The web client's page and assets.

The client is plain HTML, CSS and JavaScript modules under `static/`, talking to the JSON API
like any other client. Every client-side address (`/`, `/posts/<id>`, `/settings`, ...) answers
the same page, which then shows the view its address names. Assets live under
`/assets/<version>/`, where the version is a hash of every asset: their URLs change whenever
any of them does, so they are cached for good (`immutable`), and the page itself is
revalidated with its `ETag`. Each asset is gzip-compressed once, at start-up.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, Request, Response

from kith.core.errors import NotFound
from kith.core.urls import origin_of
from kith.http.caching import if_none_match_hits
from kith.http.deps import AppSettings

STATIC_DIR = Path(__file__).parent / "static"
PAGE_FILE = "index.html"
# Where the page names its assets; replaced by `/assets/<version>`.
ASSET_BASE_MARK = "{{assets}}"
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
GZIP_MIN_BYTES = 1024


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes | None
    content_type: str
    etag: str


def _asset(body: bytes, content_type: str) -> Asset:
    gzipped = gzip.compress(body, compresslevel=9, mtime=0) if len(body) >= GZIP_MIN_BYTES else None
    return Asset(body, gzipped, content_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


class Client:
    """The page and the assets, read once: the version is the hash of every asset."""

    def __init__(self, root: Path = STATIC_DIR) -> None:
        files = sorted(path for path in root.rglob("*") if path.is_file() and path.name != PAGE_FILE)
        digest = hashlib.sha256()
        self.assets: dict[str, Asset] = {}
        for path in files:
            name = path.relative_to(root).as_posix()
            body = path.read_bytes()
            digest.update(name.encode() + b"\0" + body + b"\0")
            content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
            if content_type.startswith("text/") or content_type.endswith("javascript"):
                content_type += "; charset=utf-8"
            self.assets[name] = _asset(body, content_type)
        self.version = digest.hexdigest()[:16]
        self.base = f"/assets/{self.version}"
        html = (root / PAGE_FILE).read_text(encoding="utf-8").replace(ASSET_BASE_MARK, self.base)
        self.page = _asset(html.encode(), "text/html; charset=utf-8")


CLIENT = Client()
router = APIRouter(include_in_schema=False)


def _send(
    request: Request, asset: Asset, cache_control: str, extra: dict[str, str] | None = None
) -> Response:
    headers = {"ETag": asset.etag, "Cache-Control": cache_control, **(extra or {})}
    if if_none_match_hits(request.headers.get("if-none-match"), asset.etag):
        return Response(status_code=304, headers=headers)
    accepts_gzip = "gzip" in request.headers.get("accept-encoding", "")
    if asset.gzipped is not None and accepts_gzip:
        headers["Content-Encoding"] = "gzip"
        headers["Vary"] = "Accept-Encoding"
        return Response(asset.gzipped, media_type=asset.content_type, headers=headers)
    return Response(asset.body, media_type=asset.content_type, headers=headers)


async def page(request: Request, settings: AppSettings) -> Response:
    """The client's one page: it reads its address and shows that view."""
    csp = PAGE_CSP.format(media_origin=origin_of(settings.public_url))
    return _send(request, CLIENT.page, "no-cache", {"Content-Security-Policy": csp})


for _path in PAGE_PATHS:
    router.add_api_route(_path, page, methods=["GET"], include_in_schema=False)


@router.get("/assets/{version}/{name:path}", include_in_schema=False)
async def asset(version: str, name: str, request: Request) -> Response:
    """A script, style sheet or icon of the client, cached for good under its version."""
    found = CLIENT.assets.get(name)
    if version != CLIENT.version or found is None:
        raise NotFound("No such asset.")
    return _send(request, found, "public, max-age=31536000, immutable")
