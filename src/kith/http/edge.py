"""The HTTP edge's rules: security headers, trusted hosts, NUL in URLs, gzip, the body
size cap and CORS.

`kith.http.middleware.EdgeMiddleware` applies the first four to every request in one
pass; the body size cap is a middleware of its own, inside CORS, so that a browser can
read its 413. No handler knows about any of them. They work on raw ASGI messages, so a
request pays a few dictionary operations, not a Request object per rule.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kith.core.config import ConfigurationError, Settings
from kith.core.errors import InvalidHost, MisdirectedRequest, NotFound, PayloadTooLarge, Unprocessable
from kith.http.errors import problem_response

# JSON needs nothing from a browser: no scripts, no styles, no framing. An HTML page sets its
# own policy (the web client and the API docs: kith.web).
API_CSP = "default-src 'none'; frame-ancestors 'none'"
# Every response gets these (docs/api.md#operations), unless its route set its own.
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
# gzip for answers of 1 KB and more when the client accepts it; level 6 compresses JSON
# almost as well as 9 at a fraction of the CPU.
GZIP_MINIMUM_BYTES = 1024
GZIP_LEVEL = 6
# Already compressed, or not worth it: every media file is one of these.
_INCOMPRESSIBLE = (
    b"image/",
    b"audio/",
    b"video/",
    b"font/woff",
    b"application/gzip",
    b"application/x-gzip",
    b"application/zip",
    b"application/grpc",
    b"text/event-stream",
)


def compressible(content_type: bytes) -> bool:
    """Whether an answer of this type is worth gzipping (SVG is; other images are not)."""
    media_type = content_type.partition(b";")[0].strip().lower()
    return bool(media_type) and (media_type == b"image/svg+xml" or not media_type.startswith(_INCOMPRESSIBLE))


# The scope key where `kith.http.server` keeps the host of an absolute-form request target.
TARGET_HOST = "kith.target_host"


def _hosts_of(scope: Scope) -> list[str]:
    """Each `Host` header's host, lower case, without its port."""
    hosts = []
    for name, value in scope["headers"]:
        if name == b"host":
            host: str = value.decode("latin-1").lower()
            if host.startswith("["):  # [::1]:8000
                host = host[1 : host.find("]")] if "]" in host else host
            elif host.count(":") == 1:
                host = host.rsplit(":", 1)[0]
            hosts.append(host)
    return hosts


def _target_host(scope: Scope) -> str | None:
    """The host an absolute-form request target names; None for the usual `/path` form.

    Kith's server protocol records it (uvicorn's own drops it); under a server that
    passes the whole target as the path instead (h11), it is read from there.
    """
    if TARGET_HOST in scope:
        return str(scope[TARGET_HOST])
    raw: bytes = scope.get("raw_path") or b"/"
    if raw[:1] in (b"/", b"*"):
        return None
    return (urlsplit(raw.decode("latin-1")).hostname or "").lower()


class HostPolicy:
    """Which hosts this server serves, and the refusal of a request for another.

    Allowed entries are exact host names, `*.example.com` for any subdomain, or `*`. Two
    `Host` headers, or a `Host` that is not allowed, are a 400 problem document; an
    absolute-form target (`GET http://host/path`) names the host instead of the `Host`
    header (RFC 9112), and one that is not allowed is 421 Misdirected Request.
    A WebSocket handshake with a bad host is closed before it is accepted.
    """

    def __init__(self, allowed_hosts: tuple[str, ...] | list[str]) -> None:
        self.any_host = "*" in allowed_hosts
        self.exact = frozenset(host.lower() for host in allowed_hosts if not host.startswith("*."))
        self.suffixes = tuple(host[1:].lower() for host in allowed_hosts if host.startswith("*."))

    def allows(self, host: str) -> bool:
        return self.any_host or host in self.exact or (bool(self.suffixes) and host.endswith(self.suffixes))

    def refusal(self, scope: Scope) -> InvalidHost | MisdirectedRequest | None:
        hosts = _hosts_of(scope)
        if len(hosts) > 1:
            return InvalidHost("The request carries more than one Host header.")
        target = _target_host(scope)
        if target is not None:
            return None if self.allows(target) else MisdirectedRequest()
        if self.any_host:
            return None
        return None if self.allows(hosts[0] if hosts else "") else InvalidHost()


def nul_refusal(scope: Scope) -> NotFound | Unprocessable | None:
    """No URL of Kith holds NUL (U+0000), and PostgreSQL can neither store nor compare it.

    A path with one is 404 and a query parameter with one is 422, before any route can
    pass the value to a query. (JSON and form bodies refuse it in their validation.)
    """
    query: bytes = scope.get("query_string", b"")
    if "\x00" in scope["path"]:
        return NotFound("No such resource.")
    if b"%00" not in query and b"\x00" not in query:
        return None
    names = sorted({name for name, value in parse_qsl(query.decode("latin-1"), True) if "\x00" in value})
    return Unprocessable(
        errors=[
            {"field": f"query.{name}", "message": "must not contain NUL (U+0000)", "type": "value_error"}
            for name in names or ["?"]
        ]
    )


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a request body passes the cap (rendered as a 413 problem)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than {limit} bytes.")


class BodySizeLimitMiddleware:
    """Caps request bodies at `max_bytes`: by `Content-Length` up front, else while streaming.

    A declared length over the cap is refused before the body is read. A body without
    one (chunked) is counted as it arrives and refused as soon as the count passes the
    cap. `exempt` lists (method, path) pairs with their own cap (media uploads).
    """

    def __init__(self, app: ASGIApp, max_bytes: int, exempt: tuple[tuple[str, str], ...] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = frozenset(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"], scope["path"].rstrip("/")) in self.exempt:
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit() or int(value) > limit:
                    await self._refuse(scope, receive, send, BodyTooLarge(limit))
                    return
                break
        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLarge as exc:
            # Read outside FastAPI's error handling (a middleware below this one).
            if response_started:
                raise
            await self._refuse(scope, receive, send, exc)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, exc: BodyTooLarge) -> None:
        app = scope.get("app")
        public_url = app.state.settings.public_url if app is not None else ""
        response = problem_response(
            None,
            PayloadTooLarge(str(exc.detail)),
            public_url=public_url,
            request_id=scope.get("state", {}).get("request_id"),
            path=scope.get("path"),
        )
        await response(scope, receive, send)


def check_cors(settings: Settings) -> None:
    """Refuse to start with a CORS setup a browser would reject or that leaks credentials."""
    if "*" in settings.cors_origins and settings.cors_allow_credentials:
        raise ConfigurationError(
            "KITH_CORS_ORIGINS=* cannot be combined with KITH_CORS_ALLOW_CREDENTIALS=true: "
            "any web site could then call the API with its visitors' credentials. List the "
            "allowed origins explicitly, or leave credentials off (bearer tokens and API keys "
            "need no cookies)."
        )
