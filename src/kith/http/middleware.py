"""The outermost middleware: request id, one log line per request, last-resort 500."""

from __future__ import annotations

import re
import time
import uuid

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect

from kith.core.errors import DomainError, InternalError, ServiceUnavailable
from kith.core.outages import is_dependency_outage
from kith.core.urls import public_base_url
from kith.http.errors import problem_response

log = structlog.get_logger("kith.request")

_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def _client_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _SANE_REQUEST_ID.match(text) else None
    return None


def route_template(scope: Scope) -> str:
    """The matched route's path template (`/api/v1/users/{user_id}`), never the raw path.

    FastAPI keeps included routers unflattened: the full template of the matched route
    lives in its effective route context; plain Starlette routes carry it themselves.
    """
    context = scope.get("fastapi", {}).get("effective_route_context")
    template = getattr(context, "path_format", None)
    if template:
        return str(template)
    route = scope.get("route")
    return str(getattr(route, "path", None) or "<unmatched>")


class RequestContextMiddleware:
    """Gives every request an id, logs it once, and never lets an exception escape.

    An unexpected exception is logged here with its traceback (server side only) and
    answered with a 500 problem document that names nothing internal. One that says a
    dependency is down (`kith.core.outages`) is answered 503 `service_unavailable` with
    `Retry-After` instead, and logged as one warning without traceback or message.
    """

    def __init__(self, app: ASGIApp, public_url: str = "", retry_after_seconds: int = 5) -> None:
        self.app = app
        self.public_url = public_url
        self.retry_after_seconds = retry_after_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = _client_request_id(scope) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        header = (b"x-request-id", request_id.encode())
        started = time.perf_counter()
        status = 500
        response_started = False
        close_code: int | None = None

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started, close_code
            kind = message["type"]
            if kind in ("http.response.start", "websocket.http.response.start"):
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
            await self.app(
                scope, receive_noting_close if scope["type"] == "websocket" else receive, send_with_id
            )
        except WebSocketDisconnect as gone:
            # The client went away: how a WebSocket ends, not a fault (and no traceback).
            close_code = close_code or gone.code
            status = status if response_started else 499
        except Exception as error:
            if is_dependency_outage(error):
                # Expected while the database or Redis is away: no traceback, no message
                # (a driver's message may quote the SQL it was running).
                log.warning("dependency_unavailable", path=scope.get("path"), error=type(error).__name__)
                problem: DomainError = ServiceUnavailable(
                    headers={"Retry-After": str(self.retry_after_seconds)}
                )
            else:
                log.exception("unhandled_exception", path=scope.get("path"))
                problem = InternalError()
            if scope["type"] == "http" and not response_started:
                response = problem_response(
                    None,
                    problem,
                    public_url=self.public_url,
                    request_id=request_id,
                )
                await response(scope, receive, send_with_id)
        finally:
            state = scope.get("state", {})
            extra = {"close_code": close_code} if scope["type"] == "websocket" else {}
            log.info(
                "request",
                method=scope.get("method", "WS"),
                route=route_template(scope),
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
                user_id=state.get("user_id"),
                **extra,
            )
            structlog.contextvars.unbind_contextvars("request_id")
            public_base_url.reset(url_token)
