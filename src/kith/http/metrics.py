"""Request metrics and `GET /metrics`.

Requests are labelled by route template (`<API prefix>/users/{user_id}`), never by raw path,
so a scan of random URLs cannot blow up the series count. What is counted is defined in
`kith.core.metrics`.
"""

from __future__ import annotations

import hmac
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
from starlette.types import Scope

from kith.core.errors import NotFound
from kith.core.metrics import (
    DB_POOL_CHECKED_OUT,
    DB_POOL_SIZE,
    HTTP_DURATION,
    HTTP_REQUESTS,
    MULTIPROCESS,
    WEBSOCKET_CONNECTIONS,
)

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


def route_template(scope: Scope) -> str:
    """The matched route's path template (`<API prefix>/users/{user_id}`), never the raw path.

    FastAPI keeps included routers unflattened: the full template of the matched route
    lives in its effective route context; plain Starlette routes carry it themselves.
    """
    context = scope.get("fastapi", {}).get("effective_route_context")
    template = getattr(context, "path_format", None)
    if template:
        return str(template)
    route = scope.get("route")
    return str(getattr(route, "path", None) or "<unmatched>")


class RequestMetrics:
    """Counts HTTP requests and their latency by method, route template and status.

    The edge (`kith.http.middleware`) calls `observe` once per request. Label children are
    cached per (method, route, status): a request costs one dict lookup, one counter
    increment and one histogram observation.
    """

    def __init__(self) -> None:
        self._children: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}
        self._gauges_refreshed = 0.0

    def observe(self, scope: Scope, route: str, status: int, seconds: float, now: float) -> None:
        method = scope["method"] if scope["method"] in KNOWN_METHODS else "other"
        key = (method, route, str(status))
        children = self._children.get(key)
        if children is None:
            children = (HTTP_REQUESTS.labels(*key), HTTP_DURATION.labels(*key))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)
        if MULTIPROCESS and now - self._gauges_refreshed > GAUGE_REFRESH_SECONDS:
            self._gauges_refreshed = now
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
