"""Precomputed home timelines in Redis, as large networks keep them.

Each reader who was active recently has a sorted set of candidate post ids (all scores
0, so members sort by their time-ordered id) capped at `size` entries, and a "warm"
marker that expires after `active_seconds` without a read. New posts are pushed only to
warm timelines; a missing or cold timeline is rebuilt from the database on the next
read. The timeline holds candidates only: every page is re-checked against the
database, so unfriending, blocking, deleting and visibility changes act at once.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

PREFIX = "kith:tl:"
MARKER_SUFFIX = ":warm"  # also spelled in _PUSH

# Push to warm timelines only, then trim each to its size. A full timeline covers only
# the range down to its oldest entry; an id older than that would leave a gap above it,
# so it is not added (reads past the timeline go to the database).
# KEYS: one timeline per reader (its marker is the same key with ":warm"); returns how
# many took the post.
_PUSH = """
local size = tonumber(ARGV[2])
local pushed = 0
for i = 1, #KEYS do
  local timeline, marker = KEYS[i], KEYS[i] .. ':warm'
  if redis.call('EXISTS', marker) == 1 then
    local oldest = nil
    if redis.call('ZCARD', timeline) >= size then
      oldest = redis.call('ZRANGE', timeline, 0, 0)[1]
    end
    if not (oldest and ARGV[1] < oldest) then
      redis.call('ZADD', timeline, 0, ARGV[1])
      redis.call('ZREMRANGEBYRANK', timeline, 0, -size - 1)
      pushed = pushed + 1
    end
  end
end
return pushed
"""
# Readers per script call: one call for a whole audience would keep Redis busy (and every
# other client waiting) for as long as the largest audience takes.
PUSH_BATCH = 500


class TimelineStore:
    def __init__(self, redis: Redis, *, size: int, active_seconds: int) -> None:
        self._redis = redis
        self.size = size
        self.active_seconds = active_seconds
        self._push = redis.register_script(_PUSH)

    @staticmethod
    def _keys(user_id: str) -> tuple[str, str]:
        timeline = PREFIX + user_id
        return timeline, timeline + MARKER_SUFFIX

    async def is_warm(self, user_id: str) -> bool:
        """True, and the reader's activity window renewed, if the timeline can be used."""
        _, marker = self._keys(user_id)
        return bool(await self._redis.expire(marker, self.active_seconds))

    async def rebuild(self, user_id: str, newest_ids: Sequence[str]) -> None:
        """Replace the timeline with `newest_ids` (newest first, at most `size`).

        The marker is set before the caller reads the database, so posts fanned out
        while it does are kept: call `start_rebuild` first, then this.
        """
        timeline, _ = self._keys(user_id)
        if newest_ids:
            await self._redis.zadd(timeline, dict.fromkeys(newest_ids, 0))
            await self._redis.zremrangebyrank(timeline, 0, -self.size - 1)

    async def start_rebuild(self, user_id: str) -> None:
        """Clear a cold timeline and mark it warm, so pushes start landing in it."""
        timeline, marker = self._keys(user_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(timeline)
            pipe.set(marker, 1, ex=self.active_seconds)
            await pipe.execute()

    async def older_than(self, user_id: str, before: str | None, count: int) -> list[str]:
        """Up to `count` ids older than `before` (or the newest), newest first."""
        timeline, _ = self._keys(user_id)
        upper = f"({before}" if before is not None else "+"
        ids = await self._redis.zrange(timeline, upper, "-", desc=True, bylex=True, offset=0, num=count)
        return [value.decode() if isinstance(value, bytes) else str(value) for value in ids]

    async def push(self, post_id: str, user_ids: Sequence[str]) -> int:
        """Add a new post to the warm timelines among `user_ids`; returns how many.

        One script call per `PUSH_BATCH` readers, all sent in one pipeline: the work per
        reader is Redis's, and this process only packs the keys (about 2 ms of CPU for
        2,000 readers, where a call per reader took about 50).
        """
        if not user_ids:
            return 0
        async with self._redis.pipeline(transaction=False) as pipe:
            for start in range(0, len(user_ids), PUSH_BATCH):
                keys = [PREFIX + user_id for user_id in user_ids[start : start + PUSH_BATCH]]
                await self._push(keys=keys, args=[post_id, self.size], client=pipe)
            return sum(int(result) for result in await pipe.execute())

    async def forget(self, user_ids: Sequence[str]) -> None:
        """Drop timelines whose contents no longer cover what they should (a new friend)."""
        keys = [key for user_id in user_ids for key in self._keys(user_id)]
        if keys:
            await self._redis.delete(*keys)
