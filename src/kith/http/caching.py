"""Conditional GETs: an `ETag` on every JSON resource and list, and 304 on `If-None-Match`.

One middleware serves every route: it buffers a successful JSON answer to a GET under
`/api/v1`, tags it with a hash of its body, and answers 304 without a body when the
client already holds that version. The tag is strong (equal bodies give equal tags), so
a changed resource always gets a new tag. Media files are served with their own tag and
are passed through untouched, as is every non-200 or non-JSON answer.
"""

from __future__ import annotations

import hashlib

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kith.core.urls import API_PREFIX

_API = f"{API_PREFIX}/"
# The answer differs by caller: a shared cache must key it by the credentials.
VARY_ON = ("Authorization", "X-API-Key")
# Headers a 304 keeps (RFC 9110 §15.4.5); the body's own headers go.
DROPPED_ON_304 = ("content-length", "content-type", "content-encoding")


def etag_of(body: bytes) -> str:
    """A strong entity tag: a quoted hash of the exact bytes sent."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def if_none_match_hits(header: str | None, etag: str) -> bool:
    """Whether `If-None-Match` names `etag`: a list of tags, or `*` (weak comparison)."""
    if header is None:
        return False
    opaque = etag.removeprefix("W/")
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == opaque:
            return True
    return False


def add_vary(headers: MutableHeaders, names: tuple[str, ...]) -> None:
    present = [item.strip() for item in headers.get("vary", "").split(",") if item.strip()]
    lowered = {item.lower() for item in present}
    present += [name for name in names if name.lower() not in lowered]
    headers["Vary"] = ", ".join(present)


class ETagMiddleware:
    """Adds `ETag` and `Vary` to JSON GET answers under `/api/v1`; 304 when the tag matches."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or not scope["path"].startswith(_API):
            await self.app(scope, receive, send)
            return
        if_none_match = Headers(scope=scope).get("if-none-match")
        start: Message | None = None
        chunks: list[bytes] = []

        async def send_tagged(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = Headers(raw=message["headers"])
                content_type = headers.get("content-type", "")
                if (
                    message["status"] == 200
                    and content_type.startswith("application/json")
                    and "etag" not in headers
                ):
                    start = message  # Held back until the whole body is in.
                    return
                await send(message)
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            await self._send_tagged(start, b"".join(chunks), if_none_match, send)

        await self.app(scope, receive, send_tagged)

    @staticmethod
    async def _send_tagged(start: Message, body: bytes, if_none_match: str | None, send: Send) -> None:
        etag = etag_of(body)
        headers = MutableHeaders(scope=start)
        headers["ETag"] = etag
        add_vary(headers, VARY_ON)
        if if_none_match_hits(if_none_match, etag):
            for name in DROPPED_ON_304:
                if name in headers:
                    del headers[name]
            await send({**start, "status": 304})
            await send({"type": "http.response.body", "body": b""})
            return
        await send(start)
        await send({"type": "http.response.body", "body": body})
