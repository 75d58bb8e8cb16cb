"""The request metrics middleware and `GET /metrics`.

Requests are labelled by route template (`/api/v1/users/{user_id}`), never by raw path,
so a scan of random URLs cannot blow up the series count. What is counted is defined in
`kith.core.metrics`.
"""

from __future__ import annotations

import hmac
import time
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kith.core.errors import NotFound
from kith.core.metrics import (
    DB_POOL_CHECKED_OUT,
    DB_POOL_SIZE,
    HTTP_DURATION,
    HTTP_REQUESTS,
    MULTIPROCESS,
    WEBSOCKET_CONNECTIONS,
)
from kith.http.middleware import route_template

if TYPE_CHECKING:
    from kith.runtime.resources import Resources

# A client chooses the method: anything unusual shares one label value, so made-up
# methods cannot create series.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# In multiprocess mode a scrape only reaches one process; the others refresh their
# gauges at most this often while they serve requests.
GAUGE_REFRESH_SECONDS = 1.0


def refresh_gauges(resources: Resources) -> None:
    """Read the pool and WebSocket gauges from this process's live objects."""
    pool = resources.engine.pool
    checked_out = getattr(pool, "checkedout", None)
    size = getattr(pool, "size", None)
    DB_POOL_CHECKED_OUT.set(checked_out() if callable(checked_out) else 0)
    DB_POOL_SIZE.set(size() if callable(size) else 0)
    WEBSOCKET_CONNECTIONS.set(resources.realtime.connection_count)


class MetricsMiddleware:
    """Counts every HTTP request and its latency by method, route template and status.

    Label children are cached per (method, route, status): a request costs one dict
    lookup, one counter increment and one histogram observation.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._children: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}
        self._gauges_refreshed = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            finished = time.perf_counter()
            method = scope["method"] if scope["method"] in KNOWN_METHODS else "other"
            key = (method, route_template(scope), str(status))
            children = self._children.get(key)
            if children is None:
                children = (HTTP_REQUESTS.labels(*key), HTTP_DURATION.labels(*key))
                self._children[key] = children
            children[0].inc()
            children[1].observe(finished - started)
            if MULTIPROCESS and finished - self._gauges_refreshed > GAUGE_REFRESH_SECONDS:
                self._gauges_refreshed = finished
                resources = getattr(scope["app"].state, "resources", None)
                if resources is not None:
                    refresh_gauges(resources)


router = APIRouter()


@router.get("/metrics", operation_id="getMetrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus text format, only for `Authorization: Bearer <KITH_METRICS_TOKEN>`.

    Without a configured token, or with a wrong one, the route does not exist (404).
    """
    token = request.app.state.settings.metrics_token
    given = request.headers.get("authorization", "").encode()
    if token is None or not hmac.compare_digest(given, f"Bearer {token.get_secret_value()}".encode()):
        raise NotFound("No such resource.")
    refresh_gauges(request.app.state.resources)
    if MULTIPROCESS:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})
