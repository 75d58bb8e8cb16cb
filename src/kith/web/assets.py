"""Static files served by Kith itself under `/assets/<version>/<name>`, and its HTML pages.

A shelf is a folder of files served under one version, a hash of every file on it: a URL
changes whenever any file does, so the files are cached for good (`immutable`), and a page
that names them is revalidated with its `ETag`. Two shelves: Kith's own files (the web
client's scripts, style sheet and icon, and the API docs' start-up script) and Swagger UI's,
from the `swagger-ui-bundle-v2` package (the npm package `swagger-ui-dist`, unchanged). No page
loads anything from another origin (docs/security.md#content-security-policy).

Files are read at start-up; a large one is gzip-compressed once, on its first request that
accepts gzip, in a thread (Swagger UI's bundle takes about 80 ms).
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from collections.abc import Iterable, Mapping
from pathlib import Path

import anyio.to_thread
from fastapi import APIRouter, Request, Response
from swagger_ui_bundle import swagger_ui_path

from kith.core.errors import NotFound
from kith.http.caching import if_none_match_hits

STATIC_DIR = Path(__file__).parent / "static"
# Swagger UI's files that the API docs page loads; the rest of the package (source maps, the
# ES module builds, its own index page) is not served.
SWAGGER_UI_FILES = ("swagger-ui-bundle.js", "swagger-ui.css")
GZIP_MIN_BYTES = 1024
FOR_GOOD = "public, max-age=31536000, immutable"


class Asset:
    """One file's body, type and entity tag; its gzip form is made on first use."""

    __slots__ = ("_gzipped", "body", "content_type", "etag")

    def __init__(self, body: bytes, content_type: str) -> None:
        self.body = body
        self.content_type = content_type
        self.etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        self._gzipped: bytes | None = None

    @property
    def compressible(self) -> bool:
        return len(self.body) >= GZIP_MIN_BYTES

    async def gzipped(self) -> bytes:
        if self._gzipped is None:
            # Two first requests at once may both compress: the same bytes, the last one kept.
            self._gzipped = await anyio.to_thread.run_sync(_gzip, self.body)
        return self._gzipped


def _gzip(body: bytes) -> bytes:
    return gzip.compress(body, compresslevel=9, mtime=0)


def content_type_of(name: str) -> str:
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if content_type.startswith("text/") or content_type.endswith("javascript"):
        content_type += "; charset=utf-8"
    return content_type


class Shelf:
    """A folder's files (all but its HTML pages, or the `names` given), under one version."""

    def __init__(self, root: Path, names: Iterable[str] | None = None) -> None:
        self.root = root
        if names is None:
            names = sorted(
                path.relative_to(root).as_posix()
                for path in root.rglob("*")
                if path.is_file() and path.suffix != ".html"
            )
        digest = hashlib.sha256()
        self.assets: dict[str, Asset] = {}
        for name in names:
            body = (root / name).read_bytes()
            digest.update(name.encode() + b"\0" + body + b"\0")
            self.assets[name] = Asset(body, content_type_of(name))
        self.version = digest.hexdigest()[:16]
        self.base = f"/assets/{self.version}"

    def page(self, name: str, marks: Mapping[str, str]) -> Asset:
        """An HTML page of the folder, each `{{mark}}` in it replaced by its value."""
        html = (self.root / name).read_text(encoding="utf-8")
        for mark, value in marks.items():
            html = html.replace("{{" + mark + "}}", value)
        return Asset(html.encode(), "text/html; charset=utf-8")


KITH = Shelf(STATIC_DIR)
SWAGGER_UI = Shelf(Path(str(swagger_ui_path)), SWAGGER_UI_FILES)
SHELVES = {shelf.version: shelf for shelf in (KITH, SWAGGER_UI)}

router = APIRouter(include_in_schema=False)


async def send_asset(
    request: Request, asset: Asset, cache_control: str, headers: Mapping[str, str] | None = None
) -> Response:
    """The asset, or 304 when the client holds it; gzipped when large and the client accepts it."""
    sent = {"ETag": asset.etag, "Cache-Control": cache_control, **(headers or {})}
    if asset.compressible:
        sent["Vary"] = "Accept-Encoding"
    if if_none_match_hits(request.headers.get("if-none-match"), asset.etag):
        return Response(status_code=304, headers=sent)
    if asset.compressible and "gzip" in request.headers.get("accept-encoding", ""):
        sent["Content-Encoding"] = "gzip"
        return Response(await asset.gzipped(), media_type=asset.content_type, headers=sent)
    return Response(asset.body, media_type=asset.content_type, headers=sent)


@router.get("/assets/{version}/{name:path}", include_in_schema=False)
async def asset(version: str, name: str, request: Request) -> Response:
    """A script, style sheet or icon of a page, cached for good under its version."""
    shelf = SHELVES.get(version)
    found = None if shelf is None else shelf.assets.get(name)
    if found is None:
        raise NotFound("No such asset.")
    return await send_asset(request, found, FOR_GOOD)
