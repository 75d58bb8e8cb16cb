"""Precomputed home timelines in Redis, as large networks keep them.

Each reader who was active recently has a sorted set of candidate post ids (all scores
0, so members sort by their time-ordered id) capped at `size` entries, and a "warm"
marker that expires after `active_seconds` without a read. New posts are pushed only to
warm timelines; a missing or cold timeline is rebuilt from the database on the next
read. The timeline holds candidates only: every page is re-checked against the
database, so unfriending, blocking, deleting and visibility changes act at once.

What a timeline may lack is a post: a push or a drop that never reached Redis leaves a
warm timeline without it. So a timeline is trusted only while its marker holds the current
"epoch", a random token kept in Redis: a process whose write failed replaces the token
once Redis answers again (`TimelineRepair`), and every timeline warmed before then is
rebuilt from the database on its next read (docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence

import structlog
from redis.asyncio import Redis

log = structlog.get_logger("kith.feed")

PREFIX = "kith:tl:"  # also spelled in _PUSH
MARKER_SUFFIX = ":warm"  # also spelled in _PUSH
# The epoch's key when the caller names none (kith.feed.jobs names one per deployment).
EPOCH_KEY = "kith:tl-epoch"

# Warm: the marker exists and holds the current epoch; then its expiry is renewed. A missing
# epoch trusts nothing (it was lost or never set; `_START` sets a new one).
# KEYS: marker, epoch; ARGV: seconds of activity. Returns 1 if warm.
_IS_WARM = """
local epoch = redis.call('GET', KEYS[2])
if epoch and redis.call('GET', KEYS[1]) == epoch then
  return redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return 0
"""
# Empty the timeline and mark it warm in the current epoch (a new one, ARGV[2], if none).
# KEYS: timeline, marker, epoch; ARGV: seconds of activity, a fresh token.
_START = """
local epoch = redis.call('GET', KEYS[3])
if not epoch then
  epoch = ARGV[2]
  redis.call('SET', KEYS[3], epoch)
end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], epoch, 'EX', ARGV[1])
return 1
"""

# Push to warm timelines only, then trim each to its size. A full timeline covers only
# the range down to its oldest entry; an id older than that would leave a gap above it,
# so it is not added (reads past the timeline go to the database).
# ARGV: the post id, the size, then the readers' ids in one space-separated string: one
# argument to pack instead of one per reader, which cost the caller more CPU than the
# rest of the fan-out. (The keys are derived here, so the script names keys it was not
# given: fine on one Redis, not on Redis Cluster, which Kith does not use.) Returns how
# many timelines took the post.
_PUSH = """
local size = tonumber(ARGV[2])
local pushed = 0
for reader in string.gmatch(ARGV[3], '%S+') do
  local timeline = 'kith:tl:' .. reader
  if redis.call('EXISTS', timeline .. ':warm') == 1 then
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
    def __init__(self, redis: Redis, *, size: int, active_seconds: int, epoch_key: str = EPOCH_KEY) -> None:
        self._redis = redis
        self.size = size
        self.active_seconds = active_seconds
        self.epoch_key = epoch_key
        self._push = redis.register_script(_PUSH)
        self._is_warm = redis.register_script(_IS_WARM)
        self._start = redis.register_script(_START)

    @staticmethod
    def _keys(user_id: str) -> tuple[str, str]:
        timeline = PREFIX + user_id
        return timeline, timeline + MARKER_SUFFIX

    async def is_warm(self, user_id: str) -> bool:
        """True, and the reader's activity window renewed, if the timeline can be used:
        it is marked warm in the current epoch. One script call, as one EXPIRE was."""
        _, marker = self._keys(user_id)
        return bool(await self._is_warm(keys=[marker, self.epoch_key], args=[self.active_seconds]))

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
        """Clear a cold timeline and mark it warm in the current epoch, so pushes start
        landing in it. Atomic: an epoch replaced after this call makes it cold again."""
        timeline, marker = self._keys(user_id)
        keys = [timeline, marker, self.epoch_key]
        await self._start(keys=keys, args=[self.active_seconds, secrets.token_hex(8)])

    async def older_than(self, user_id: str, before: str | None, count: int) -> list[str]:
        """Up to `count` ids older than `before` (or the newest), newest first."""
        timeline, _ = self._keys(user_id)
        upper = f"({before}" if before is not None else "+"
        ids = await self._redis.zrange(timeline, upper, "-", desc=True, bylex=True, offset=0, num=count)
        return [value.decode() if isinstance(value, bytes) else str(value) for value in ids]

    async def push(self, post_id: str, user_ids: Sequence[str]) -> int:
        """Add a new post to the warm timelines among `user_ids`; returns how many.

        One script call per `PUSH_BATCH` readers, all sent in one pipeline: the work per
        reader is Redis's, and this process packs one string per call (about 1 ms of CPU
        for 2,000 readers; a key per reader took 2 to 3, a call per reader about 50).
        """
        if not user_ids:
            return 0
        if len(user_ids) <= PUSH_BATCH:
            # One call, no pipeline: redis-py first asks Redis whether a pipeline's scripts
            # are loaded (SCRIPT EXISTS), one round trip more for every post.
            return int(await self._push(keys=[], args=[post_id, self.size, " ".join(user_ids)]))
        async with self._redis.pipeline(transaction=False) as pipe:
            for start in range(0, len(user_ids), PUSH_BATCH):
                readers = " ".join(user_ids[start : start + PUSH_BATCH])
                await self._push(keys=[], args=[post_id, self.size, readers], client=pipe)
            return sum(int(result) for result in await pipe.execute())

    async def forget(self, user_ids: Sequence[str]) -> None:
        """Drop timelines whose contents no longer cover what they should (a new friend)."""
        keys = [key for user_id in user_ids for key in self._keys(user_id)]
        if keys:
            await self._redis.delete(*keys)

    async def forget_all(self) -> None:
        """Make every timeline cold at once: a new epoch, which no marker holds yet.

        A random token rather than a counter: if the key is ever lost, the epoch that
        `_START` sets then can never equal an old marker's."""
        await self._redis.set(self.epoch_key, secrets.token_hex(8))


class TimelineRepair:
    """Timelines a write could not reach, made cold as soon as Redis answers again.

    A fan-out (or a drop) that fails, or is skipped while the breaker is open, calls
    `needed()`. This process then tries `forget_all()` every `retry_seconds` until it
    succeeds with no failure recorded meanwhile. Why that suffices: the failed write's
    post or friendship committed before the write was tried, so before the new epoch; a
    timeline trusted afterwards was started in that epoch (`_START` reads it atomically)
    and rebuilt from a database read made after, which holds the post.
    """

    def __init__(self, store: TimelineStore, retry_seconds: float) -> None:
        self._store = store
        # A refused connection fails at once: never try more often than this.
        self.retry_seconds = max(retry_seconds, 0.1)
        self._failures = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> bool:
        return self._task is not None and not self._task.done()

    def needed(self) -> None:
        """A timeline write was lost: make every timeline cold once Redis answers."""
        self._failures += 1
        if not self.pending:
            log.warning("feed_timelines_repair_pending")
            # Lives as long as the process's event loop, which cancels it at exit.
            self._task = asyncio.create_task(self._run(), name="kith.feed.timeline-repair")

    async def settled(self) -> None:
        """Wait until no repair is pending (Redis answered, and no write failed since)."""
        while self._task is not None and not self._task.done():
            await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.retry_seconds)
            seen = self._failures
            try:
                await self._store.forget_all()
            except Exception as exc:
                log.info("feed_timelines_repair_retry", error=type(exc).__name__)
                continue
            if self._failures == seen:
                log.info("feed_timelines_repaired")
                return
