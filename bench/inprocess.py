"""CPU per request through the whole ASGI app, in this process, without a network hop.

    .venv/bin/python -m bench.inprocess --database-url postgresql+asyncpg://... [--requests 2000]
        [--scenario feed_p1|create_post|like|comment] [--redis-url redis://... [--timelines]]
        [--profile out.prof]

A quick, low-noise way to compare two versions of the request path (wrk's figures move
with the machine's load; process CPU time moves much less). The app is called with plain
ASGI messages, so the figure is Kith's own cost: no HTTP parsing, no client.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import random
import time
from typing import Any

from sqlalchemy import select

from bench.prepare import mint_tokens
from kith.core.config import Settings
from kith.core.urls import API_PREFIX
from kith.db.models import Post, User, Visibility
from kith.main import create_app
from kith.media.storage import LocalMediaStorage
from kith.runtime.resources import Resources
from kith.runtime.transaction import unit_of_work


async def call(app: Any, method: str, path: str, token: str, body: dict[str, Any] | None = None) -> int:
    payload = json.dumps(body).encode() if body is not None else b""
    headers = [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {token}".encode())]
    if body is not None:
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": payload, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def main(args: argparse.Namespace) -> None:
    settings = Settings(
        database_url=args.database_url,
        redis_url=args.redis_url,
        feed_timelines=args.timelines,
        secret_key="x" * 64,
        access_token_ttl_seconds=7200,
        rate_limits_enabled=False,
        env="production",
        _env_file=None,
    )
    app = create_app(settings)
    rng = random.Random(7)
    resources = await Resources.open(settings, LocalMediaStorage(settings.media_root))
    async with unit_of_work(resources, write=False) as session:
        readers = list(
            (await session.scalars(select(User.id).where(User.username.like("user%")).limit(2000))).all()
        )
        readers = rng.sample(readers, 40)
        posts = list(
            (
                await session.scalars(
                    select(Post.id)
                    .where(Post.visibility == Visibility.public)
                    .order_by(Post.id.desc())
                    .limit(200)
                )
            ).all()
        )
    await resources.close()
    tokens = await mint_tokens(settings, readers)
    async with app.router.lifespan_context(app):

        def request(index: int) -> tuple[str, str, dict[str, Any] | None]:
            if args.scenario == "feed_p1":
                return "GET", f"{API_PREFIX}/feed", None
            if args.scenario == "create_post":
                return "POST", f"{API_PREFIX}/posts", {"content": f"bench {index}", "visibility": "friends"}
            if args.scenario == "comment":
                return "POST", f"{API_PREFIX}/posts/{posts[index % len(posts)]}/comments", {"content": "nice"}
            return (
                ("POST" if index % 2 == 0 else "DELETE"),
                f"{API_PREFIX}/posts/{posts[(index // 2) % len(posts)]}/like",
                None,
            )

        for index in range(100):  # warm-up
            method, path, body = request(index)
            await call(app, method, path, tokens[index % len(tokens)], body)
        pauses: list[float] = []
        started: list[float] = []

        def watch(phase: str, info: dict[str, int]) -> None:
            # Full collections only: those walk every tracked object and stop the loop longest.
            if info["generation"] == 2:
                if phase == "start":
                    started.append(time.perf_counter())
                elif started:
                    pauses.append(time.perf_counter() - started.pop())

        gc.callbacks.append(watch)
        profile = cProfile.Profile() if args.profile else None
        statuses: dict[int, int] = {}
        cpu, wall = time.process_time(), time.perf_counter()
        if profile:
            profile.enable()
        for index in range(args.requests):
            method, path, body = request(index)
            status = await call(app, method, path, tokens[index % len(tokens)], body)
            statuses[status] = statuses.get(status, 0) + 1
        if profile:
            profile.disable()
            profile.dump_stats(args.profile)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        gc.callbacks.remove(watch)
        frozen = gc.get_freeze_count()
    print(
        f"{args.scenario}: {args.requests} requests, {cpu / args.requests * 1000:.2f} ms CPU and "
        f"{wall / args.requests * 1000:.2f} ms wall per request, statuses {statuses}; "
        f"{len(pauses)} full garbage collections, longest {max(pauses, default=0) * 1000:.1f} ms, "
        f"{frozen:,} objects frozen"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", required=True)
    parser.add_argument(
        "--redis-url", help="with Redis (jobs, limits, live events), as `kith serve` with KITH_REDIS_URL"
    )
    parser.add_argument(
        "--timelines", action="store_true", help="with the feed's Redis timelines (KITH_FEED_TIMELINES)"
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument(
        "--scenario", default="feed_p1", choices=["feed_p1", "create_post", "like", "comment"]
    )
    parser.add_argument("--profile")
    asyncio.run(main(parser.parse_args()))
