"""Feed latency on a seeded database, on the pull path and on the Redis timeline path.

    .venv/bin/python -m bench.feed_latency --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/kith_bench \
        [--redis-url redis://127.0.0.1:6379/14] [--readers 50] [--requests 300]

Requests go through the whole application (ASGI, authentication, the feed query, post
objects with counts, liked_by_me and media) in this process, without a network hop, so
the figures are the server's own cost. Page 50 is reached by following `next_cursor`
from page 1. Prints a Markdown table row per scenario.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import httpx
from sqlalchemy import func, select

from kith.auth import service as auth
from kith.core.config import Settings
from kith.core.urls import API_PREFIX
from kith.db.models import Post, User
from kith.main import create_app
from kith.runtime.transaction import unit_of_work


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


async def measure(args: argparse.Namespace, redis_url: str | None) -> list[str]:
    settings = Settings(
        database_url=args.database_url,
        redis_url=redis_url,
        feed_timelines=redis_url is not None,
        log_level="WARNING",
        _env_file=None,
    )
    app = create_app(settings)
    rows = []
    async with app.router.lifespan_context(app):
        resources = app.state.resources
        if resources.redis is not None:
            await resources.redis.flushdb()
        rng = random.Random(7)
        async with unit_of_work(resources) as session:
            posts = await session.scalar(select(func.count()).select_from(Post))
            user_ids = list((await session.scalars(select(User.id))).all())
            tokens = []
            for user_id in rng.sample(user_ids, args.readers):
                user = await session.get(User, user_id)
                assert user is not None
                pair = await auth.start_session(
                    session, resources.tokens, resources.settings, user, None, now=resources.clock.now()
                )
                tokens.append(pair.access_token)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:

            async def page_cursor(token: str, pages: int) -> str | None:
                cursor = None
                for _ in range(pages - 1):
                    params = {"limit": 20} | ({"cursor": cursor} if cursor else {})
                    body = (
                        await client.get(
                            f"{API_PREFIX}/feed", params=params, headers={"Authorization": f"Bearer {token}"}
                        )
                    ).json()
                    cursor = body["next_cursor"]
                    if cursor is None:
                        break
                return cursor

            # Warm-up: builds Redis timelines and the database's caches, as steady state would.
            for token in tokens:
                await client.get(f"{API_PREFIX}/feed", headers={"Authorization": f"Bearer {token}"})
            for label, pages in (("page 1", 1), ("page 50", 50)):
                cursors = [await page_cursor(token, pages) for token in tokens]
                timings = []
                for index in range(args.requests):
                    token = tokens[index % len(tokens)]
                    params = {"limit": 20}
                    if pages > 1:
                        cursor = cursors[index % len(tokens)]
                        if cursor is None:
                            continue
                        params["cursor"] = cursor  # type: ignore[assignment]
                    started = time.perf_counter()
                    response = await client.get(
                        f"{API_PREFIX}/feed", params=params, headers={"Authorization": f"Bearer {token}"}
                    )
                    timings.append((time.perf_counter() - started) * 1000)
                    assert response.status_code == 200, response.text
                path = "Redis timelines" if redis_url else "pull (SQL)"
                rows.append(
                    f"| {posts:,} | {path} | {label} | {len(timings)} | {statistics.median(timings):.2f} | "
                    f"{percentile(timings, 0.99):.2f} |"
                )
    return rows


async def main_async(args: argparse.Namespace) -> None:
    print("| posts | path | page | requests | p50 ms | p99 ms |")
    print("|---:|---|---|---:|---:|---:|")
    for redis_url in (None, args.redis_url) if args.redis_url else (None,):
        for row in await measure(args, redis_url):
            print(row, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", required=True)
    parser.add_argument(
        "--redis-url", default=None, help="Also measure the Redis timeline path (the db is flushed)."
    )
    parser.add_argument("--readers", type=int, default=50)
    parser.add_argument("--requests", type=int, default=300)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
