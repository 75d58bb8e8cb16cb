"""The edge: the one middleware every request and response passes through, in one pass.

What it does, in the order a request meets it:

- gives the request an id (`X-Request-ID`, the client's if it is sane) and binds it to
  the logs;
- refuses a request for a host this server does not serve (400 or 421), and a URL with
  NUL in it (404 or 422);
- on the way out, adds the security headers, `X-Request-ID` and the cache policy to every
  response, errors included; tags a JSON answer to a GET under the API prefix with an `ETag`
  (304 when the client holds it); gzips a large answer when the client accepts it;
- answers an exception that escaped everything with a 500 problem document (503 with
  `Retry-After` when a dependency is down) that names nothing internal;
- counts the request in the metrics and writes its one log line.

These were ten middlewares, each a layer of ASGI calls that walked the request's headers
again (docs/benchmarks.md measures what each cost). The rules themselves live beside the
domain they belong to: `kith.http.edge` (hosts, NUL, security headers, compression),
`kith.http.caching` (entity tags), `kith.http.cache_policy`, `kith.http.metrics`.
"""

from __future__ import annotations

import re
import time
import uuid
import zlib

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect

from kith.core.errors import DomainError, InternalError, ServiceUnavailable
from kith.core.outages import is_dependency_outage
from kith.core.urls import API_PREFIX, public_base_url
from kith.http.cache_policy import cache_control_for, overrides_route
from kith.http.caching import DROPPED_ON_304, VARY_ON, add_vary, etag_of, if_none_match_hits
from kith.http.edge import (
    API_CSP,
    GZIP_LEVEL,
    GZIP_MINIMUM_BYTES,
    SECURITY_HEADERS,
    HostPolicy,
    compressible,
    nul_refusal,
)
from kith.http.errors import problem_response
from kith.http.metrics import RequestMetrics, route_template

log = structlog.get_logger("kith.request")

_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def _client_request_id(value: bytes) -> str:
    """The client's `X-Request-ID` if it is sane, else "" (a fresh id is given instead)."""
    text = value.decode("latin-1")
    return text if _SANE_REQUEST_ID.match(text) else ""


_API = f"{API_PREFIX}/"
_API_CSP = API_CSP.encode()
_AUTHENTICATING = (b"authorization", b"x-api-key")


class _Exchange:
    """One HTTP request's way out: the headers every response gets, the held body of one
    that needs it whole (an entity tag, gzip), and what it answered."""

    __slots__ = (
        "accepts_gzip",
        "cache_control",
        "chunks",
        "compressor",
        "etag_wanted",
        "held",
        "hsts",
        "if_none_match",
        "no_store_override",
        "passthrough",
        "path",
        "request_id",
        "send_downstream",
        "started",
        "status",
    )

    def __init__(
        self,
        send: Send,
        scope: Scope,
        request_id: bytes,
        authenticated: bool,
        if_none_match: str | None,
        accepts_gzip: bool,
        hsts: bytes | None,
    ) -> None:
        self.send_downstream = send
        self.path: str = scope["path"]
        self.request_id = request_id
        self.cache_control = cache_control_for(self.path, authenticated)
        self.no_store_override = overrides_route(self.path)
        self.etag_wanted = scope["method"] == "GET" and self.path.startswith(_API)
        self.if_none_match = if_none_match
        self.accepts_gzip = accepts_gzip
        self.hsts = hsts
        self.status = 500
        self.started = False
        self.held: Message | None = None
        self.chunks: list[bytes] = []
        self.compressor: zlib._Compress | None = None
        self.passthrough = True

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.started = True
            self.status = message["status"]
            headers = message["headers"] = list(message.get("headers", ()))
            if self._must_hold(headers):
                self.held, self.passthrough = message, False
                return
            self._add_headers(headers)
            await self.send_downstream(message)
            return
        if self.passthrough or kind != "http.response.body":
            await self.send_downstream(message)
            return
        body: bytes = message.get("body", b"")
        if self.compressor is not None:  # a streamed body, gzipped as it goes
            more = message.get("more_body", False)
            out = self.compressor.compress(body) + (b"" if more else self.compressor.flush())
            await self.send_downstream({"type": "http.response.body", "body": out, "more_body": more})
            return
        self.chunks.append(body)
        if message.get("more_body", False):
            if not self._needs_whole_body():
                await self._start_stream()
            return
        await self._send_whole(b"".join(self.chunks))

    # --- deciding ------------------------------------------------------------------------------

    def _must_hold(self, headers: list[tuple[bytes, bytes]]) -> bool:
        """Whether the answer's headers depend on its body: an entity tag, or gzip (a body
        that may be large enough to compress)."""
        content_type = b""
        length: int | None = None
        for name, value in headers:
            if name == b"content-type":
                content_type = value
            elif name == b"content-length":
                length = int(value) if value.isdigit() else None
            elif name in (b"etag", b"content-encoding"):
                return False  # tagged by its route (media), or encoded already
        if self.etag_wanted and self.status == 200 and content_type.startswith(b"application/json"):
            return True
        return (
            self.accepts_gzip
            and self.status != 206
            and (length is None or length >= GZIP_MINIMUM_BYTES)
            and compressible(content_type)
        )

    def _needs_whole_body(self) -> bool:
        assert self.held is not None
        return self.etag_wanted and self.status == 200

    # --- sending -------------------------------------------------------------------------------

    def _add_headers(self, headers: list[tuple[bytes, bytes]]) -> None:
        """The headers every response gets (a route's own choice is kept, but for no-store)."""
        present = {name.lower() for name, _ in headers}
        headers.append((b"x-request-id", self.request_id))
        for name, value in SECURITY_HEADERS:
            if name not in present:
                headers.append((name, value))
        if b"content-security-policy" not in present:
            headers.append((b"content-security-policy", _API_CSP))
        hsts = self.hsts
        if hsts is not None and b"strict-transport-security" not in present:
            headers.append((b"strict-transport-security", hsts))
        policy = self.cache_control
        if policy is not None:
            if self.no_store_override and b"cache-control" in present:
                headers[:] = [(name, value) for name, value in headers if name.lower() != b"cache-control"]
                present.discard(b"cache-control")
            if b"cache-control" not in present:
                headers.append((b"cache-control", policy.encode()))

    async def _send_whole(self, body: bytes) -> None:
        start = self.held
        assert start is not None
        headers: list[tuple[bytes, bytes]] = start["headers"]
        self._add_headers(headers)
        vary: tuple[str, ...] = ()
        if self.etag_wanted and self.status == 200 and not any(name == b"etag" for name, _ in headers):
            etag = etag_of(body)
            headers.append((b"etag", etag.encode()))
            vary = VARY_ON
            if if_none_match_hits(self.if_none_match, etag):
                add_vary(headers, vary)
                headers[:] = [(name, value) for name, value in headers if name.lower() not in DROPPED_ON_304]
                self.status = 304
                await self.send_downstream({**start, "status": 304})
                await self.send_downstream({"type": "http.response.body", "body": b""})
                return
        content_type = next((value for name, value in headers if name == b"content-type"), b"")
        compress = len(body) >= GZIP_MINIMUM_BYTES and compressible(content_type) and self.status != 206
        if compress:
            vary += ("Accept-Encoding",)
        if vary:
            add_vary(headers, vary)
        if compress and self.accepts_gzip:
            compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
            body = compressor.compress(body) + compressor.flush()
            headers[:] = [(name, value) for name, value in headers if name != b"content-length"]
            headers += [(b"content-encoding", b"gzip"), (b"content-length", str(len(body)).encode())]
        await self.send_downstream(start)
        await self.send_downstream({"type": "http.response.body", "body": body})

    async def _start_stream(self) -> None:
        """A streamed body (more than one message) with no tag to compute: gzip it as it goes."""
        start = self.held
        assert start is not None
        headers: list[tuple[bytes, bytes]] = start["headers"]
        self._add_headers(headers)
        add_vary(headers, ("Accept-Encoding",))
        headers[:] = [(name, value) for name, value in headers if name != b"content-length"]
        headers.append((b"content-encoding", b"gzip"))
        self.compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        await self.send_downstream(start)
        first = self.compressor.compress(b"".join(self.chunks))
        self.chunks = []
        await self.send_downstream({"type": "http.response.body", "body": first, "more_body": True})


class EdgeMiddleware:
    """Kith's one middleware (see the module's text): every request and response, one pass.

    An unexpected exception is logged here with its traceback (server side only) and
    answered with a 500 problem document that names nothing internal. One that says a
    dependency is down (`kith.core.outages`) is answered 503 `service_unavailable` with
    `Retry-After` instead, and logged as one warning without traceback or message.
    """

    def __init__(
        self,
        app: ASGIApp,
        public_url: str = "",
        retry_after_seconds: int = 5,
        allowed_hosts: tuple[str, ...] | list[str] = ("*",),
        hsts_max_age_seconds: int = 0,
    ) -> None:
        self.app = app
        self.public_url = public_url
        self.retry_after_seconds = retry_after_seconds
        self.hosts = HostPolicy(allowed_hosts)
        self.hsts = f"max-age={hsts_max_age_seconds}".encode() if hsts_max_age_seconds else None
        self.metrics = RequestMetrics()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _problem(self, problem: DomainError, request_id: str, path: str) -> ASGIApp:
        return problem_response(None, problem, public_url=self.public_url, request_id=request_id, path=path)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request_id: str | None = None
        authenticated = accepts_gzip = False
        if_none_match: str | None = None
        for name, value in scope["headers"]:  # one walk over the headers for every rule
            if name == b"x-request-id":
                if request_id is None:
                    request_id = _client_request_id(value)
            elif name == b"accept-encoding":
                accepts_gzip = accepts_gzip or b"gzip" in value
            elif name == b"if-none-match":
                if_none_match = value.decode("latin-1")
            elif name in _AUTHENTICATING:
                authenticated = True
        request_id = request_id or uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        exchange = _Exchange(
            send,
            scope,
            request_id.encode(),
            authenticated,
            if_none_match,
            accepts_gzip,
            # HSTS only on requests that arrived over HTTPS: uvicorn sets the scheme from
            # X-Forwarded-Proto when the peer is in --forwarded-allow-ips.
            self.hsts if scope.get("scheme") == "https" else None,
        )
        structlog.contextvars.bind_contextvars(request_id=request_id)
        url_token = public_base_url.set(self.public_url)
        try:
            refusal = self.hosts.refusal(scope) or nul_refusal(scope)
            if refusal is not None:
                await self._problem(refusal, request_id, scope["path"])(scope, receive, exchange.send)
            else:
                await self.app(scope, receive, exchange.send)
        except Exception as error:
            problem = self._last_resort(scope, error)
            if not exchange.started:
                await self._problem(problem, request_id, scope["path"])(scope, receive, exchange.send)
        finally:
            finished = time.perf_counter()
            route = route_template(scope)
            self.metrics.observe(scope, route, exchange.status, finished - started, finished)
            log.info(
                "request",
                method=scope["method"],
                route=route,
                status=exchange.status,
                duration_ms=round((finished - started) * 1000, 2),
                user_id=state.get("user_id"),
            )
            structlog.contextvars.unbind_contextvars("request_id")
            public_base_url.reset(url_token)

    def _last_resort(self, scope: Scope, error: Exception) -> DomainError:
        if is_dependency_outage(error):
            # Expected while the database or Redis is away: no traceback, no message
            # (a driver's message may quote the SQL it was running).
            log.warning("dependency_unavailable", path=scope.get("path"), error=type(error).__name__)
            return ServiceUnavailable(headers={"Retry-After": str(self.retry_after_seconds)})
        log.exception("unhandled_exception", path=scope.get("path"))
        return InternalError()

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = _client_request_id(value)
                break
        request_id = request_id or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        header = (b"x-request-id", request_id.encode())
        started = time.perf_counter()
        status = 500
        response_started = False
        close_code: int | None = None

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started, close_code
            kind = message["type"]
            if kind == "websocket.http.response.start":
                response_started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", []), header]
            elif kind == "websocket.accept":
                response_started, status = True, 101
            elif kind == "websocket.close":
                close_code = message.get("code", 1000)
                if not response_started:
                    # Closed before the handshake was accepted: the server answers it 403.
                    response_started, status = True, 403
            await send(message)

        async def receive_noting_close() -> Message:
            nonlocal close_code
            message = await receive()
            if message["type"] == "websocket.disconnect" and close_code is None:
                close_code = message.get("code", 1005)
            return message

        structlog.contextvars.bind_contextvars(request_id=request_id)
        url_token = public_base_url.set(self.public_url)
        try:
            if self.hosts.refusal(scope) is not None:
                await send_with_id({"type": "websocket.close", "code": 1008})
            else:
                await self.app(scope, receive_noting_close, send_with_id)
        except WebSocketDisconnect as gone:
            # The client went away: how a WebSocket ends, not a fault (and no traceback).
            close_code = close_code or gone.code
            status = status if response_started else 499
        except Exception as error:
            self._last_resort(scope, error)
        finally:
            log.info(
                "request",
                method="WS",
                route=route_template(scope),
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
                user_id=scope.get("state", {}).get("user_id"),
                close_code=close_code,
            )
            structlog.contextvars.unbind_contextvars("request_id")
            public_base_url.reset(url_token)
