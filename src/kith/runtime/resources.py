"""The long-lived resources a process holds: database, jobs, mail, Redis, media storage."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from kith.core.breaker import Breaker
from kith.core.clock import Clock
from kith.core.config import Settings
from kith.core.jobs import JobRunner
from kith.core.mail import Mailer
from kith.core.realtime import RealtimeHub, create_hub
from kith.core.security import AccessTokenCodec, PasswordHasher
from kith.core.storage import MediaStorage
from kith.db.engine import create_engine, create_session_factory
from kith.runtime.events import Subscribers
from kith.runtime.limits import Limiter
from kith.runtime.session_cache import SessionCache, forget_in_process, watch_changes

FORGET_SESSIONS = "_forget_sessions"


def _session_cache(settings: Settings, realtime: RealtimeHub) -> SessionCache:
    """The cache of live sessions, used only where every change reaches it (see its module)."""
    watch_changes()

    def on_notice(notice: dict[str, object]) -> None:
        users = notice.get("users")
        if notice.get("event") == FORGET_SESSIONS and isinstance(users, list):
            forget_in_process(str(user_id) for user_id in users)
        elif notice.get("event") == "_notices_lost":
            forget_in_process(["*"])

    realtime.on_notice(on_notice)
    if settings.redis_url:
        return SessionCache(settings.session_cache_seconds, lambda: realtime.notices_healthy)
    # Without Redis a process hears only of its own changes: one process, or no cache.
    alone = settings.workers <= 1
    return SessionCache(settings.session_cache_seconds, lambda: alone)


@dataclass
class Resources:
    settings: Settings
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    mailer: Mailer
    passwords: PasswordHasher
    tokens: AccessTokenCodec
    redis: Redis | None
    media: MediaStorage
    clock: Clock = field(default_factory=Clock)
    subscribers: Subscribers = field(default_factory=Subscribers)
    # Shared by every use of `redis` but the health check (the limiter has its own).
    redis_breaker: Breaker = field(init=False)
    jobs: JobRunner = field(init=False)
    limiter: Limiter = field(init=False)
    # SQLite only: the writers of this process take turns here (kith.runtime.transaction).
    write_gate: asyncio.Lock | None = field(init=False)
    realtime: RealtimeHub = field(init=False)
    session_cache: SessionCache = field(init=False)

    @classmethod
    async def open(
        cls, settings: Settings, media: MediaStorage, subscribers: Subscribers | None = None
    ) -> Resources:
        """Create every resource, around the media storage and event subscribers the caller
        chose (`kith.main.open_resources` chooses them); the caller must `close()` them."""
        settings.resolve_secret_key()
        engine = create_engine(settings)
        resources = cls(
            settings=settings,
            engine=engine,
            session_factory=create_session_factory(engine),
            mailer=Mailer(settings),
            passwords=PasswordHasher(settings),
            tokens=AccessTokenCodec(settings),
            redis=Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
            if settings.redis_url
            else None,
            media=media,
            subscribers=subscribers or Subscribers(),
        )
        resources.redis_breaker = Breaker(settings.redis_retry_seconds)
        resources.write_gate = asyncio.Lock() if engine.dialect.name == "sqlite" else None
        resources.limiter = Limiter(settings)
        resources.jobs = JobRunner.for_settings(resources)
        await resources.jobs.startup()
        resources.realtime = create_hub(resources.redis, resources.redis_breaker)
        resources.session_cache = _session_cache(settings, resources.realtime)
        await resources.realtime.start()
        return resources

    async def sessions_changed(self, user_ids: set[str]) -> None:
        """After a commit that changed these users or their sessions: forget them here at
        once, then tell every other process."""
        forget_in_process(user_ids)
        await self.realtime.notify_processes({"event": FORGET_SESSIONS, "users": sorted(user_ids)})

    async def close(self) -> None:
        await self.realtime.stop()
        await self.jobs.shutdown()
        await self.limiter.close()
        if self.redis is not None:
            await self.redis.aclose()
        await self.engine.dispose()
        self.passwords.close()
