"""CPU of the Redis fan-out per post: one push of a post to many readers' timelines.

    .venv/bin/python -m bench.fanout [--readers 2000] [--posts 30] [--redis-url redis://127.0.0.1:6379/5]

Half of the readers have warm timelines (the others are skipped by the script). Prints this
process's CPU per pushed post: what `fan_out_post` spends in `TimelineStore.push` (the
audience query is not included). It flushes the Redis database it is given.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from redis.asyncio import Redis

from kith.feed.timeline import TimelineStore


async def push_cost(redis_url: str, readers: int = 2000, posts: int = 30) -> tuple[float, int]:
    """Milliseconds of this process's CPU per post pushed to `readers` timelines (half of
    them warm), and how many were warm. Flushes the Redis database of `redis_url`."""
    redis = Redis.from_url(redis_url)
    await redis.flushdb()
    try:
        store = TimelineStore(redis, size=800, active_seconds=3600)
        audience = [str(uuid.uuid4()) for _ in range(readers)]
        for reader in audience[::2]:
            await store.start_rebuild(reader)
        pushed = 0
        cpu = time.process_time()
        for index in range(posts):
            pushed = await store.push(f"0199{index:08d}", audience)
        return (time.process_time() - cpu) / posts * 1000, pushed
    finally:
        await redis.flushdb()
        await redis.aclose()


async def main(args: argparse.Namespace) -> None:
    ms, pushed = await push_cost(args.redis_url, args.readers, args.posts)
    print(f"{args.readers} readers ({pushed} warm): {ms:.2f} ms of CPU per post (mean of {args.posts})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--readers", type=int, default=2000)
    parser.add_argument("--posts", type=int, default=30)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/5")
    asyncio.run(main(parser.parse_args()))
