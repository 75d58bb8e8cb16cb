"""Live events to connected clients, within one process or across many.

`RealtimeHub` keeps this process's subscriptions (one per open stream) and delivers
events to them. `InProcessHub` is the embedded default. `RedisHub` publishes through
Redis pub/sub so an event raised by any worker or instance reaches the user's sockets
on every other one; each process holds one pub/sub connection and subscribes to a
channel only while it has a stream that listens to it.

A channel is named by a key: a user's id (their notifications and account changes), or a
topic made by `author_posts` and `PUBLIC_POSTS` (new and removed posts, which the
Mastodon-compatible streams listen to: one event per post, whoever reads it). A
subscription listens to its user's channel and to any topics it adds (`listen`).

Events raised inside a transaction are queued on the session (`publish_after_commit`)
and sent only once it commits, like jobs.

Topics cost nothing while no stream listens to one: with Redis, their events are published
only while some process says it has such a stream (`TOPICS_LISTENED`).

The hub also keeps the streams' places under their caps (`take_place`): counted in this
process, and with Redis across every process (docs/security.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from sqlalchemy.ext.asyncio import AsyncSession

from kith.core.breaker import Breaker
from kith.core.tasks import raise_if_cancelled

log = structlog.get_logger("kith.realtime")

Event = dict[str, Any]
_SESSION_KEY = "kith_pending_events"
CHANNEL_PREFIX = "kith:user:"
# Topics are channels named in full: a post's events go to its author's topic, and a
# public post's to the public topic too.
TOPIC_PREFIX = "kith:posts:"
PUBLIC_POSTS = TOPIC_PREFIX + "public"
# With Redis, topics' events are published only while some process may have a stream that
# listens to one: each such process says so on the notices channel when it starts to, again
# every `TOPICS_RENEW_SECONDS`, and at once when a process asks (`TOPICS_ASKED`, which each
# process does whenever it starts hearing the notices); every process believes it for
# `TOPICS_HEARD_SECONDS`, and believes it anyway for `TOPICS_ANSWER_SECONDS` after asking.
# A post made while no stream listens anywhere costs no Redis round trip.
TOPICS_LISTENED = "_topics_listened"
TOPICS_ASKED = "_topics_asked"
TOPICS_RENEW_SECONDS = 20.0
TOPICS_HEARD_SECONDS = 60.0
TOPICS_ANSWER_SECONDS = 2.0
# Notices from one process to every other (not to sockets): what they must forget.
NOTICES_CHANNEL = "kith:notices"
# A socket that falls this far behind is closed rather than allowed to grow memory.
QUEUE_SIZE = 256
# The longest a stream waits for Redis to count, renew or free its places; past it, and
# while the breaker stays open after, this process counts its own sockets only.
PLACE_TIMEOUT_SECONDS = 0.5

# A cap's places in Redis: a sorted set of socket id -> when it was last seen (Redis's own
# clock, so no two processes disagree). Places not renewed within the lease belong to a
# process that died: they are dropped before counting. KEYS[1]: the set; ARGV: the
# socket's id, the cap, the lease in seconds. 1 if the socket took a place, else 0.
_TAKE_PLACE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local lease = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - lease)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
    return 0
end
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('PEXPIRE', KEYS[1], math.ceil(lease * 1000))
return 1
"""
# Marks sockets as seen now: KEYS are their sets, ARGV[1] the lease, ARGV[i + 1] the id in
# KEYS[i]. Adds a socket that is missing (it opened while Redis was away), so that it counts.
_RENEW_PLACES = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local lease_ms = math.ceil(tonumber(ARGV[1]) * 1000)
for i, key in ipairs(KEYS) do
    redis.call('ZADD', key, now, ARGV[i + 1])
    redis.call('PEXPIRE', key, lease_ms)
end
return #KEYS
"""


def author_posts(author_id: str) -> str:
    """The topic of an author's new and removed posts."""
    return TOPIC_PREFIX + author_id


def channel_of(key: str) -> str:
    """The Redis channel of a key: a topic is its own name, a user's id gets the prefix."""
    return key if key.startswith(TOPIC_PREFIX) else CHANNEL_PREFIX + key


def key_of(channel: str) -> str:
    return channel if channel.startswith(TOPIC_PREFIX) else channel.removeprefix(CHANNEL_PREFIX)


def publish_after_commit(session: AsyncSession, key: str, event: Event) -> None:
    """Queue `event` for the live streams listening to `key` (a user's id, or a topic), sent
    when `session` commits."""
    session.info.setdefault(_SESSION_KEY, []).append((key, event))


def pending_events(session: AsyncSession) -> list[tuple[str, Event]]:
    events: list[tuple[str, Event]] = session.info.pop(_SESSION_KEY, [])
    return events


class Subscription:
    """One open stream's inbox: its user's events, and those of the topics it listens to."""

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        self.keys: set[str] = {user_id}
        self.queue: asyncio.Queue[Event] = asyncio.Queue(QUEUE_SIZE)
        self.overflowed = False

    def offer(self, event: Event) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True


@dataclass(eq=False)
class Place:
    """One open stream's place among the at most `cap` streams that share `key` (one
    account's, or one client address's)."""

    key: str
    member: str = field(default_factory=lambda: uuid.uuid4().hex)
    # When it was taken or last renewed (monotonic clock).
    renewed_at: float = field(default_factory=time.monotonic)


class RealtimeHub:
    """The in-process part: who is listening here, and delivery to them."""

    def __init__(self) -> None:
        self._subscriptions: dict[str, set[Subscription]] = defaultdict(set)
        # The streams' places held in this process, per cap key (see `take_place`).
        self._places: Counter[str] = Counter()
        self._notice_handlers: list[Callable[[Event], None]] = []
        # How many topics this process's streams listen to.
        self._topic_count = 0

    @property
    def notices_healthy(self) -> bool:
        """Whether a notice from any other process reaches this one (none exists here)."""
        return True

    def on_notice(self, handler: Callable[[Event], None]) -> None:
        """Call `handler` with each notice another process sends, and with
        `{"event": "_notices_lost"}` when some may have been missed."""
        self._notice_handlers.append(handler)

    def _notice(self, notice: Event) -> None:
        for handler in self._notice_handlers:
            try:
                handler(notice)
            except Exception:
                log.exception("realtime_notice_failed", notice=notice.get("event"))

    async def notify_processes(self, notice: Event) -> None:
        """Send `notice` to every other process (this one acted on it already)."""
        return None

    @property
    def connection_count(self) -> int:
        return sum(len(subs) for subs in self._subscriptions.values())

    async def take_place(self, key: str, cap: int, lease_seconds: float) -> Place | None:
        """A place for one more stream under `key`'s cap, None when `cap` are taken.

        Here the count is this process's; `RedisHub` counts across processes. The holder
        renews its places (`renew_places`) more often than `lease_seconds`, and gives
        them back (`leave_places`) when it closes."""
        return self._hold(key) if self._places[key] < cap else None

    def _hold(self, key: str, member: str | None = None) -> Place:
        self._places[key] += 1
        return Place(key) if member is None else Place(key, member)

    async def renew_places(self, places: Sequence[Place], lease_seconds: float) -> None:
        for place in places:
            place.renewed_at = time.monotonic()

    async def leave_places(self, places: Sequence[Place]) -> None:
        for place in places:
            self._places[place.key] -= 1
            if self._places[place.key] <= 0:
                del self._places[place.key]

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def subscribe(self, user_id: str) -> Subscription:
        subscription = Subscription(user_id)
        await self._add(subscription, [user_id])
        return subscription

    async def listen(self, subscription: Subscription, keys: Iterable[str]) -> None:
        """Let `subscription` also receive the events sent to `keys` (topics)."""
        await self._add(subscription, [key for key in keys if key not in subscription.keys])

    async def stop_listening(self, subscription: Subscription, keys: Iterable[str]) -> None:
        await self._remove(subscription, [key for key in keys if key in subscription.keys])

    async def unsubscribe(self, subscription: Subscription) -> None:
        await self._remove(subscription, list(subscription.keys))

    async def _add(self, subscription: Subscription, keys: list[str]) -> list[str]:
        """Add the keys; returns those that no stream of this process listened to before."""
        first = [key for key in keys if key not in self._subscriptions]
        for key in keys:
            self._subscriptions[key].add(subscription)
            subscription.keys.add(key)
        self._topic_count += sum(1 for key in first if key.startswith(TOPIC_PREFIX))
        return first

    async def _remove(self, subscription: Subscription, keys: list[str]) -> list[str]:
        """Remove the keys; returns those that no stream of this process listens to now."""
        last = []
        for key in keys:
            subscription.keys.discard(key)
            subscriptions = self._subscriptions.get(key)
            if subscriptions is not None:
                subscriptions.discard(subscription)
                if not subscriptions:
                    del self._subscriptions[key]
                    last.append(key)
        self._topic_count -= sum(1 for key in last if key.startswith(TOPIC_PREFIX))
        return last

    def deliver_locally(self, key: str, event: Event) -> None:
        for subscription in list(self._subscriptions.get(key, ())):
            subscription.offer(event)

    async def publish(self, key: str, event: Event) -> None:
        self.deliver_locally(key, event)

    async def publish_all(self, events: list[tuple[str, Event]]) -> None:
        for key, event in events:
            try:
                await self.publish(key, event)
            except Exception:
                # The transaction committed; a lost live event is recoverable by the
                # client (GET /notifications), a failed request would not be.
                log.exception("realtime_publish_failed", key=key)


InProcessHub = RealtimeHub


class RedisHub(RealtimeHub):
    """Fan-out through Redis pub/sub: one connection per process, a channel per user."""

    def __init__(
        self, redis: Redis, breaker: Breaker | None = None, *, notices_channel: str = NOTICES_CHANNEL
    ) -> None:
        super().__init__()
        self._redis = redis
        # Pub/sub channels are the server's, whatever the database: tests that must not hear
        # other tests' notices give their hubs a channel of their own.
        self._notices_channel = notices_channel
        self._breaker = breaker or Breaker(0.0)
        # The places' own: their timeout is shorter than the client's, so that a slow
        # Redis does not also divert every live event (their failures open this one only).
        self._places_breaker = Breaker(self._breaker.retry_seconds)
        self._take_place = redis.register_script(_TAKE_PLACE)
        self._renew_places = redis.register_script(_RENEW_PLACES)
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        # Set when the pub/sub connection may have lost its channels (it failed, or a
        # subscribe did): the reader then subscribes to every local user's channel again.
        # Set at first, so that the reader subscribes to the notices before anything else.
        self._stale = True
        self._notices_ok = False
        # Until its notices are heard (then it asks, see `_read_forever`), a process believes
        # that topics are listened to (`topics_may_be_listened`).
        self._topics_heard_until = 0.0
        self._topics_told_at = float("-inf")

    @property
    def notices_healthy(self) -> bool:
        return self._notices_ok and not self._stale

    async def start(self) -> None:
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        self._reader = asyncio.create_task(self._read_forever(), name="kith-realtime-reader")

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()

    async def _add(self, subscription: Subscription, keys: list[str]) -> list[str]:
        listened = self._topic_count > 0
        first = await super()._add(subscription, keys)
        if first:
            await self._channels(first, subscribe=True)
        if not listened and self._topic_count > 0:
            await self._tell_topics_listened()  # before the stream starts: no post is missed
        return first

    async def _tell_topics_listened(self) -> None:
        self._topics_told_at = time.monotonic()
        await self.notify_processes({"event": TOPICS_LISTENED})

    async def _remove(self, subscription: Subscription, keys: list[str]) -> list[str]:
        last = await super()._remove(subscription, keys)
        if last:
            await self._channels(last, subscribe=False)
        return last

    async def _channels(self, keys: list[str], *, subscribe: bool) -> None:
        """(Un)subscribe the pub/sub connection to the keys' channels, in one command."""
        assert self._pubsub is not None
        channels = [channel_of(key) for key in keys]
        async with self._lock:
            try:
                if subscribe:
                    await self._pubsub.subscribe(*channels)
                else:
                    await self._pubsub.unsubscribe(*channels)
            except Exception as exc:
                # Resubscribed by the reader once Redis answers again.
                self._stale = True
                log.warning("realtime_subscribe_failed", error=type(exc).__name__)

    async def notify_processes(self, notice: Event) -> None:
        if self._breaker.open:
            # Not sent: each process's cache holds what it holds for its time-to-live at most.
            log.warning("realtime_notice_not_sent", notice=notice.get("event"))
            return
        try:
            await self._redis.publish(self._notices_channel, orjson.dumps(notice))
        except Exception as exc:
            self._breaker.failed()
            log.warning("realtime_notice_not_sent", notice=notice.get("event"), error=type(exc).__name__)

    async def publish(self, key: str, event: Event) -> None:
        await self.publish_all([(key, event)])

    def topics_may_be_listened(self) -> bool:
        """Whether a stream of any process may listen to a topic: one of this process's does;
        another said so within `TOPICS_HEARD_SECONDS`; or this process cannot hear them say so
        (its notices are down), or asked them less than `TOPICS_ANSWER_SECONDS` ago."""
        return (
            self._topic_count > 0 or not self.notices_healthy or time.monotonic() < self._topics_heard_until
        )

    async def publish_all(self, events: list[tuple[str, Event]]) -> None:
        """Every event in one round trip (a pipeline when there are several); topics' events
        only while a stream may listen to one (see `TOPICS_LISTENED`)."""
        if events and not self.topics_may_be_listened():
            events = [(key, event) for key, event in events if not key.startswith(TOPIC_PREFIX)]
        if not events:
            return
        if self._breaker.open:
            self._deliver_all_locally(events)  # Redis failed a moment ago
            return
        try:
            if len(events) == 1:
                key, event = events[0]
                await self._redis.publish(channel_of(key), orjson.dumps(event))
            else:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for key, event in events:
                        pipe.publish(channel_of(key), orjson.dumps(event))
                    await pipe.execute()
        except Exception as exc:
            # Redis is down: at least this process's sockets get the events.
            self._breaker.failed()
            log.warning("realtime_redis_unavailable", error=type(exc).__name__)
            self._deliver_all_locally(events)

    def _deliver_all_locally(self, events: list[tuple[str, Event]]) -> None:
        for key, event in events:
            self.deliver_locally(key, event)

    def _places_skip_redis(self) -> bool:
        return self._breaker.open or self._places_breaker.open

    def _places_failed(self, action: str, exc: Exception) -> None:
        self._places_breaker.failed()
        log.warning("realtime_places_redis_unavailable", action=action, error=type(exc).__name__)

    async def take_place(self, key: str, cap: int, lease_seconds: float) -> Place | None:
        if self._places_skip_redis():
            return await super().take_place(key, cap, lease_seconds)  # this process's count
        member = uuid.uuid4().hex
        try:
            async with asyncio.timeout(PLACE_TIMEOUT_SECONDS):
                taken = await self._take_place(keys=[key], args=[member, cap, lease_seconds])
        except Exception as exc:
            # Redis is away: this process's count, until Redis answers again.
            self._places_failed("take", exc)
            return await super().take_place(key, cap, lease_seconds)
        return self._hold(key, member) if int(taken) else None

    async def renew_places(self, places: Sequence[Place], lease_seconds: float) -> None:
        await super().renew_places(places, lease_seconds)
        if not places or self._places_skip_redis():
            return  # tried again at the next renewal
        try:
            async with asyncio.timeout(PLACE_TIMEOUT_SECONDS):
                await self._renew_places(
                    keys=[place.key for place in places],
                    args=[lease_seconds, *(place.member for place in places)],
                )
        except Exception as exc:
            self._places_failed("renew", exc)

    async def leave_places(self, places: Sequence[Place]) -> None:
        await super().leave_places(places)
        if not places or self._places_skip_redis():
            return  # the lease frees them
        try:
            async with asyncio.timeout(PLACE_TIMEOUT_SECONDS):
                async with self._redis.pipeline(transaction=False) as pipe:
                    for place in places:
                        pipe.zrem(place.key, place.member)
                    await pipe.execute()
        except Exception as exc:
            self._places_failed("leave", exc)

    async def _read_forever(self) -> None:
        assert self._pubsub is not None
        delay = 0.1
        while True:
            raise_if_cancelled()  # a stop dropped during a Redis call (see the function)
            try:
                if self._stale:
                    self._notices_ok = False
                    await self._resubscribe()
                    self._stale = False
                    self._notices_ok = True
                    # Whatever was sent while the channel was away is lost: that some process
                    # has streams listening too, so ask, and believe it until the answers came.
                    self._topics_heard_until = time.monotonic() + TOPICS_ANSWER_SECONDS
                    await self.notify_processes({"event": TOPICS_ASKED})
                    self._notice({"event": "_notices_lost"})
                    log.info("realtime_resubscribed", channels=len(self._subscriptions))
                if not self._pubsub.subscribed:
                    await asyncio.sleep(0.05)
                    continue
                message = await self._pubsub.get_message(timeout=1.0)
                delay = 0.1
                if message is not None:
                    self._handle(message)
                if self._topic_count > 0 and time.monotonic() - self._topics_told_at >= TOPICS_RENEW_SECONDS:
                    await self._tell_topics_listened()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Redis went away, or is not back yet: try again with a growing pause,
                # until a fresh connection holds every channel this process needs.
                log.warning("realtime_reader_error", error=type(exc).__name__, retry_in_s=delay)
                self._stale = True
                self._notices_ok = False
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _resubscribe(self) -> None:
        """Replace the pub/sub connection by one subscribed to every local user's channel.

        Raises when Redis does not answer, so that the reader tries again later: a
        failed subscribe must not leave a connection that looks fine but hears nothing.
        """
        async with self._lock:
            old = self._pubsub
            if old is not None:
                with contextlib.suppress(Exception):
                    await old.aclose()
            self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            channels = [channel_of(key) for key in self._subscriptions]
            await self._pubsub.subscribe(self._notices_channel, *channels)

    def _handle(self, message: dict[str, Any]) -> None:
        channel = message.get("channel", b"")
        channel = channel.decode() if isinstance(channel, bytes) else str(channel)
        try:
            event = orjson.loads(message["data"])
            if not isinstance(event, dict) or not isinstance(event.get("event"), str):
                raise ValueError("not an event object")
        except (ValueError, TypeError, KeyError):
            log.warning("realtime_malformed_message", channel=channel)
            return
        if channel == self._notices_channel:
            if event["event"] == TOPICS_LISTENED:
                self._topics_heard_until = time.monotonic() + TOPICS_HEARD_SECONDS
                return
            if event["event"] == TOPICS_ASKED:
                self._topics_told_at = float("-inf")  # answered right after this message
                return
            self._notice(event)
            return
        self.deliver_locally(key_of(channel), event)


def create_hub(redis: Redis | None, breaker: Breaker | None = None) -> RealtimeHub:
    return RedisHub(redis, breaker) if redis is not None else InProcessHub()
