"""Rate-limit counting: the named limits, the `Limiter` that counts them in Redis or in
process memory, and the failed-login throttle. Attached to requests by `kith.http.ratelimit`;
what the limits are and how they behave is in docs/api-guide.md#rate-limits.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import limits
import structlog
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter, RateLimiter, SlidingWindowCounterRateLimiter
from limits.errors import StorageError
from redis.asyncio import ConnectionPool
from redis.exceptions import RedisError
from sqlalchemy import select

from kith.core.breaker import Breaker
from kith.core.config import Settings
from kith.core.errors import DomainError
from kith.core.metrics import RATE_LIMIT_REJECTIONS
from kith.db.models import Role, User
from kith.runtime.transaction import unit_of_work

if TYPE_CHECKING:
    from kith.runtime.resources import Resources

log = structlog.get_logger("kith.ratelimit")

Strategy = Literal["sliding", "moving"]
KeyedBy = Literal["caller", "ip"]


@dataclass(frozen=True)
class Rule:
    """One named limit: its setting, how it counts, and what happens when Redis fails."""

    name: str
    setting: str
    # Sliding-window counter for the large, general limits (cheap, approximate); moving
    # window for the small auth limits, where exactness matters.
    strategy: Strategy
    # True: fall back to per-process counting when Redis fails. False: fail open.
    falls_back: bool
    # "caller": the user (per-role factors apply), else the IP. "ip": always the IP.
    keyed_by: KeyedBy = "caller"


RULES: dict[str, Rule] = {
    rule.name: rule
    for rule in (
        Rule("general", "rate_limit_general", "sliding", falls_back=False),
        Rule("login", "rate_limit_login", "moving", falls_back=True, keyed_by="ip"),
        Rule("login_failures", "rate_limit_login_failures", "moving", falls_back=True, keyed_by="ip"),
        Rule(
            "login_failures_account",
            "rate_limit_login_failures_account",
            "moving",
            falls_back=True,
            keyed_by="ip",
        ),
        Rule("register", "rate_limit_register", "moving", falls_back=True, keyed_by="ip"),
        Rule("password_reset", "rate_limit_password_reset", "moving", falls_back=True, keyed_by="ip"),
        Rule("posts", "rate_limit_posts", "sliding", falls_back=False),
        Rule("comments", "rate_limit_comments", "sliding", falls_back=False),
        Rule("friend_requests", "rate_limit_friend_requests", "sliding", falls_back=False),
        Rule("media_uploads", "rate_limit_media_uploads", "sliding", falls_back=True),
    )
}

ROLE_CACHE_SECONDS = 10.0
ROLE_CACHE_SIZE = 10_000


def wall_time() -> float:
    """Seconds since the epoch: the clock `limits` reads its windows from."""
    return time.time()


@dataclass(frozen=True)
class Outcome:
    """The state of one limit after a request was counted (or tested) against it."""

    rule: str
    limit: int
    remaining: int
    reset_after: float
    allowed: bool

    @property
    def retry_after(self) -> int:
        return max(1, math.ceil(self.reset_after))

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(max(0, self.remaining)),
            "RateLimit-Reset": str(max(0, math.ceil(self.reset_after))),
        }


class RateLimited(DomainError):
    status = 429
    code = "rate_limited"
    default_detail = "Too many requests; retry after the number of seconds in `Retry-After`."
    description = "Too many requests; wait for `Retry-After` seconds."

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(headers={"Retry-After": str(outcome.retry_after)})
        self.outcome = outcome


class _RoleCache:
    """Users' roles for a few seconds, so a limit check rarely needs the database."""

    def __init__(self) -> None:
        self._roles: dict[str, tuple[Role | None, float]] = {}

    async def role_of(self, resources: Resources, user_id: str) -> Role | None:
        now = time.monotonic()
        cached = self._roles.get(user_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        # Its own read: the general limit is checked in middleware, before routing, when the
        # request's transaction does not exist yet (no BEGIN on PostgreSQL for a read).
        async with unit_of_work(resources, write=False) as session:
            role: Role | None = await session.scalar(select(User.role).where(User.id == user_id))
        if len(self._roles) >= ROLE_CACHE_SIZE:
            self._roles.clear()
        self._roles[user_id] = (role, now + ROLE_CACHE_SECONDS)
        return role


class Limiter:
    """Counts requests against the configured limits, in Redis or in process memory."""

    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.rate_limits_enabled
        self._moderator_factor = settings.rate_limit_moderator_factor
        self._items: dict[str, limits.RateLimitItem] = {}
        for rule in RULES.values():
            text: str = getattr(settings, rule.setting)
            if text:
                self._items[rule.name] = limits.parse(text)
        self._local = self._strategies(MemoryStorage())
        self._shared: dict[Strategy, RateLimiter] | None = None
        self._pool: ConnectionPool | None = None
        if settings.redis_url:
            # Its own pool with a short timeout: a slow Redis must not slow every request.
            timeout = settings.rate_limit_redis_timeout_seconds
            self._pool = ConnectionPool.from_url(
                settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout
            )
            storage = RedisStorage(
                f"async+{settings.redis_url}",
                implementation="redispy",
                key_prefix=settings.rate_limit_key_prefix,
                wrap_exceptions=True,
                connection_pool=self._pool,  # type: ignore[arg-type]  # typed too narrowly upstream
            )
            self._shared = self._strategies(storage)
        # Its own breaker: the limiter's Redis calls have their own, shorter timeout.
        self._breaker = Breaker(settings.rate_limit_redis_retry_seconds)
        self.roles = _RoleCache()

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()

    @staticmethod
    def _strategies(storage: Storage) -> dict[Strategy, RateLimiter]:
        return {
            "sliding": SlidingWindowCounterRateLimiter(storage),
            "moving": MovingWindowRateLimiter(storage),
        }

    def item(self, rule: str, role: Role | None = None) -> limits.RateLimitItem | None:
        """The limit that applies to `rule` for a caller of `role`; None when none does."""
        item = self._items.get(rule)
        if item is None or not self.enabled:
            return None
        if RULES[rule].keyed_by == "caller":
            # Compared by value: a role read with a plain column select may be a str.
            if role == Role.admin:
                return None
            if role == Role.moderator:
                return type(item)(int(item.amount * self._moderator_factor), item.multiples, item.namespace)
        return item

    async def _run(self, rule: Rule, attempt: Callable[[RateLimiter], Awaitable[Outcome]]) -> Outcome | None:
        if self._shared is not None:
            if not self._breaker.open:
                try:
                    return await attempt(self._shared[rule.strategy])
                except (StorageError, RedisError, OSError, TimeoutError) as exc:
                    self._breaker.failed()
                    log.warning("rate_limit_redis_unavailable", limit=rule.name, error=type(exc).__name__)
            if not rule.falls_back:
                return None  # fail open
        return await attempt(self._local[rule.strategy])

    async def hit(self, rule: str, key: str, role: Role | None = None) -> Outcome | None:
        """Count one request against `rule` for `key`. None: the rule does not apply."""
        return await self._apply(rule, key, role, count=True)

    async def test(self, rule: str, key: str) -> Outcome | None:
        """Whether one more request would pass `rule` for `key`, without counting it."""
        return await self._apply(rule, key, None, count=False)

    async def _apply(self, rule: str, key: str, role: Role | None, *, count: bool) -> Outcome | None:
        item = self.item(rule, role)
        if item is None:
            return None

        async def attempt(strategy: RateLimiter) -> Outcome:
            check = strategy.hit if count else strategy.test
            allowed = await check(item, rule, key)
            stats = await strategy.get_window_stats(item, rule, key)
            reset_after = max(0.0, stats.reset_time - wall_time())
            return Outcome(rule, item.amount, stats.remaining, reset_after, allowed)

        return await self._run(RULES[rule], attempt)

    async def clear(self, rule: str, key: str) -> None:
        item = self.item(rule)
        if item is None:
            return

        async def attempt(strategy: RateLimiter) -> Outcome:
            await strategy.clear(item, rule, key)
            return Outcome(rule, item.amount, item.amount, 0.0, True)

        await self._run(RULES[rule], attempt)


def refuse(outcome: Outcome) -> RateLimited:
    RATE_LIMIT_REJECTIONS.labels(limit=outcome.rule).inc()
    return RateLimited(outcome)


class LoginThrottle:
    """Failed logins: per (account, IP) and per account, checked before the password hash.

    The account is the user's id when it exists, else the login name as typed, so an
    unknown name is throttled exactly like a known one and the answer tells nothing.
    A plain object: the HTTP layer (`kith.http.ratelimit.login_throttle`) builds it with
    the caller's address group and a callback that puts an outcome on the response.
    """

    def __init__(
        self,
        limiter: Limiter,
        ip_group: Callable[[], Awaitable[str]],
        record: Callable[[Outcome], None],
    ) -> None:
        self._limiter = limiter
        self._ip_group = ip_group
        self._record = record

    async def _keys(self, account: str) -> tuple[str, str]:
        return f"account:{account}|ip:{await self._ip_group()}", f"account:{account}"

    async def check(self, account: str) -> None:
        """Answer 429 if either failure budget of `account` is spent."""
        if not self._limiter.enabled:
            return
        pair, whole = await self._keys(account)
        for rule, key in (("login_failures", pair), ("login_failures_account", whole)):
            outcome = await self._limiter.test(rule, key)
            if outcome is not None and not outcome.allowed:
                self._record(outcome)
                raise refuse(outcome)

    async def failed(self, account: str) -> None:
        """Count a wrong password for `account`."""
        if not self._limiter.enabled:
            return
        pair, whole = await self._keys(account)
        await self._limiter.hit("login_failures", pair)
        await self._limiter.hit("login_failures_account", whole)

    async def succeeded(self, account: str) -> None:
        """A right password clears the (account, IP) count; the per-account one stays."""
        if not self._limiter.enabled:
            return
        pair, _ = await self._keys(account)
        await self._limiter.clear("login_failures", pair)
