"""Prometheus metrics: what Kith counts (docs/operations.md lists them).

Other parts of Kith count their own events with the objects defined here:
`RATE_LIMIT_REJECTIONS.labels(limit=name).inc()`, `JOBS_DISPATCHED`, `JOBS_FAILED`. The
request middleware and `GET /metrics` are in `kith.http.metrics`. With several worker
processes, set `PROMETHEUS_MULTIPROC_DIR` to an empty directory shared by them before
they start: each process then writes its values there and `/metrics`, answered by any
one of them, sums them all.
"""

from __future__ import annotations

import os

from prometheus_client import Counter, Gauge, Histogram, multiprocess

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

HTTP_REQUESTS = Counter(
    "kith_http_requests_total",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "kith_http_request_duration_seconds",
    "Time from the request's arrival to the end of its response.",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
DB_POOL_CHECKED_OUT = Gauge(
    "kith_db_pool_checked_out", "Database connections in use.", multiprocess_mode="livesum"
)
DB_POOL_SIZE = Gauge(
    "kith_db_pool_size", "Database connections the pool keeps open.", multiprocess_mode="livesum"
)
WEBSOCKET_CONNECTIONS = Gauge(
    "kith_websocket_connections", "Open live-stream WebSockets.", multiprocess_mode="livesum"
)
RATE_LIMIT_REJECTIONS = Counter(
    "kith_rate_limit_rejections_total", "Requests refused with 429, by limit.", ["limit"]
)
JOBS_DISPATCHED = Counter("kith_jobs_dispatched_total", "Background jobs queued, by job.", ["job"])
JOBS_FAILED = Counter("kith_jobs_failed_total", "Background jobs that failed every attempt, by job.", ["job"])


def process_stopped() -> None:
    """Drop this process's live gauges from the shared multiprocess directory."""
    if MULTIPROCESS:
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
