"""CPU per request of each middleware layer of the app's stack, on a feed-sized answer.

    .venv/bin/python -m bench.layers [--requests 20000]

Builds the app as `kith serve` does (production settings; rate limits on, as by default,
and off), replaces everything inside the middleware stack by an endpoint that answers a
feed page's JSON from memory, and wraps that endpoint in the first 0, 1, 2, ... of the
stack's layers, innermost first. Each step's extra CPU per request is that layer's cost.
No database, no network: the app is called with plain ASGI messages, as `bench.inprocess`
does, with the feed's request headers (bearer token, no `Accept-Encoding`, as wrk sends).
The log lines go to /dev/null. A bearer token that is not valid makes the rate limiter
count the request by IP address (the general limit is raised so that none is refused).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from kith.core.config import Settings
from kith.core.urls import API_PREFIX
from kith.main import create_app

HEADERS = [
    (b"host", b"127.0.0.1"),
    (b"authorization", b"Bearer x"),
    (b"user-agent", b"wrk"),
]
# About a feed page: 20 posts with their authors (15 KB).
BODY = json.dumps(
    {
        "data": [
            {
                "id": f"{index:026d}",
                "author": {"id": "01" * 13, "username": f"user{index}", "display_name": "User"},
                "content": "x" * 400,
                "visibility": "friends",
                "like_count": 3,
                "comment_count": 1,
                "liked_by_me": False,
                "media": [],
                "created_at": "2026-12-04T12:00:00Z",
                "updated_at": None,
            }
            for index in range(20)
        ],
        "next_cursor": "abc",
    }
).encode()


async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    """The feed's answer, as a JSONResponse sends it."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(BODY)).encode()), (b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": BODY})


def scope_for(app: Any) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": f"{API_PREFIX}/feed",
        "raw_path": f"{API_PREFIX}/feed".encode(),
        "query_string": b"limit=20",
        "root_path": "",
        "headers": HEADERS,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
        "app": app,
    }


async def cpu_per_request(asgi: ASGIApp, app: Any, requests: int) -> float:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        return None

    for _ in range(500):
        await asgi(scope_for(app), receive, send)
    best = float("inf")
    for _ in range(3):  # the least of three rounds: the one least disturbed
        started = time.process_time()
        for _ in range(requests):
            await asgi(scope_for(app), receive, send)
        best = min(best, (time.process_time() - started) / requests)
    return best


async def measure(rate_limits: bool, requests: int) -> list[tuple[str, float]]:
    settings = Settings(
        database_url="sqlite+aiosqlite:///:memory:",
        secret_key="x" * 64,
        env="production",
        rate_limits_enabled=rate_limits,
        rate_limit_general="1000000/minute",
        _env_file=None,
    )
    app = create_app(settings)
    rows: list[tuple[str, float]] = []
    async with app.router.lifespan_context(app):
        stack: ASGIApp = endpoint
        previous = await cpu_per_request(stack, app, requests)
        rows.append(("endpoint alone (a feed page's JSON from memory)", previous))
        # user_middleware lists the outermost first.
        for middleware in reversed(app.user_middleware):
            stack = middleware.cls(stack, *middleware.args, **middleware.kwargs)
            total = await cpu_per_request(stack, app, requests)
            rows.append((getattr(middleware.cls, "__name__", repr(middleware.cls)), total - previous))
            previous = total
        rows.append(("all layers together", previous - rows[0][1]))
    return rows


def main(args: argparse.Namespace) -> None:
    for rate_limits in (False, True):
        # The request log lines go to /dev/null (still one write each, as to a pipe).
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            rows = asyncio.run(measure(rate_limits, args.requests))
        print(f"\nrate limits {'on' if rate_limits else 'off'}: µs of CPU per request, each layer")
        for name, seconds in rows:
            print(f"  {name:<52} {seconds * 1e6:8.1f}")
        sys.stdout.flush()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=20000)
    main(parser.parse_args())
