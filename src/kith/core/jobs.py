"""Background jobs that run only after the transaction that queued them commits.

A service queues a job on its database session with `enqueue`; the request's session
dependency hands the queued jobs to the `JobRunner` after the commit, and drops them
on rollback. The runner sends them through taskiq: an in-process broker on the
embedded default, a Redis stream consumed by `kith worker` when Redis is configured.
A failing job is retried with exponential backoff and logged; it never touches the
request that queued it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession
from taskiq import AsyncBroker, InMemoryBroker
from taskiq_redis import RedisStreamBroker

from kith.core.config import ConfigurationError
from kith.core.metrics import JOBS_DISPATCHED, JOBS_FAILED

if TYPE_CHECKING:
    from kith.runtime.resources import Resources

log = structlog.get_logger("kith.jobs")

JobFunction = Callable[..., Awaitable[None]]
_SESSION_KEY = "kith_pending_jobs"
_TASK_NAME = "kith.run_job"
_registry: dict[str, JobFunction] = {}


_names: dict[JobFunction, str] = {}


def job(func: JobFunction) -> JobFunction:
    """Register a coroutine function `func(resources, **kwargs)` as a background job,
    named by its module and name."""
    _registry[job_name(func)] = func
    return func


def job_as(name: str) -> Callable[[JobFunction], JobFunction]:
    """Register a job under a fixed `name`: for a job whose module changed, so that jobs the
    previous version queued (in Redis, across a rolling upgrade) still find it."""

    def register(func: JobFunction) -> JobFunction:
        _names[func] = name
        _registry[name] = func
        return func

    return register


def job_name(func: JobFunction) -> str:
    return _names.get(func) or f"{func.__module__}.{func.__qualname__}"


@dataclass(frozen=True)
class QueuedJob:
    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)


def enqueue(session: AsyncSession, func: JobFunction, **kwargs: Any) -> None:
    """Queue `func` to run after `session`'s transaction commits. Arguments must be JSON."""
    name = job_name(func)
    if name not in _registry:
        raise LookupError(f"{name} is not registered with @job")
    session.info.setdefault(_SESSION_KEY, []).append(QueuedJob(name, kwargs))


def pending_jobs(session: AsyncSession) -> list[QueuedJob]:
    """Take the jobs queued on `session` (call once, after commit)."""
    jobs: list[QueuedJob] = session.info.pop(_SESSION_KEY, [])
    return jobs


class JobRunner:
    """Sends queued jobs to the broker and executes them with retries."""

    def __init__(self, resources: Resources, broker: AsyncBroker) -> None:
        self._resources = resources
        self.broker = broker
        settings = resources.settings
        self.max_attempts = settings.job_max_attempts
        self.retry_base_seconds = settings.job_retry_base_seconds
        self.retry_max_seconds = settings.job_retry_max_seconds

        async def run_job(name: str, kwargs: dict[str, Any]) -> None:
            await self._execute(name, kwargs)

        self._task = broker.register_task(run_job, task_name=_TASK_NAME)
        # When the Redis queue cannot take a job, it runs here instead of being lost.
        self._fallback = InMemoryBroker()
        self._fallback_task = self._fallback.register_task(run_job, task_name=_TASK_NAME)

    @classmethod
    def for_settings(cls, resources: Resources) -> JobRunner:
        settings = resources.settings
        url = settings.redis_url if settings.job_backend != "memory" else None
        if settings.job_backend == "redis" and not url:
            raise ConfigurationError("KITH_JOB_BACKEND=redis needs KITH_REDIS_URL")
        broker: AsyncBroker
        if url:
            broker = RedisStreamBroker(
                url,
                queue_name=resources.settings.job_queue,
                consumer_group_name="kith",
                # A group created after jobs were queued still reads them from the start.
                consumer_id="0",
                maxlen=100_000,
                # Reclaim jobs that a crashed worker took but never acknowledged.
                idle_timeout=60_000,
                socket_connect_timeout=2,
                socket_timeout=5,
            )
        else:
            broker = InMemoryBroker()
        return cls(resources, broker)

    @property
    def in_process(self) -> bool:
        return isinstance(self.broker, InMemoryBroker)

    async def startup(self) -> None:
        await self._fallback.startup()
        try:
            await self.broker.startup()
        except Exception as exc:
            # The API serves without Redis; jobs then run in-process until it is back.
            log.warning("job_broker_unavailable", error=type(exc).__name__)

    async def shutdown(self) -> None:
        await self.wait_idle()
        await self._fallback.shutdown()
        await self.broker.shutdown()

    async def wait_idle(self) -> None:
        """Wait for in-process jobs (and the retries they spawn) to finish."""
        for broker in (self.broker, self._fallback):
            if isinstance(broker, InMemoryBroker):
                while broker._running_tasks:
                    await asyncio.gather(*list(broker._running_tasks), return_exceptions=True)
                    # A finished task leaves the set in a done-callback; let it run, or
                    # this loop would spin on a task that is done but not yet removed.
                    await asyncio.sleep(0)

    async def dispatch(self, jobs: list[QueuedJob]) -> None:
        breaker = None if self.in_process else self._resources.redis_breaker
        for queued in jobs:
            JOBS_DISPATCHED.labels(queued.name).inc()
            if breaker is not None and breaker.open:
                # Redis failed a moment ago: run the job here at once, not after a timeout.
                await self._fallback_task.kiq(queued.name, queued.kwargs)
                continue
            try:
                await self._task.kiq(queued.name, queued.kwargs)
            except Exception as exc:
                # The request already committed: run the job here rather than lose it.
                if breaker is not None:
                    breaker.failed()
                log.warning("job_queue_unavailable", job=queued.name, error=type(exc).__name__)
                await self._fallback_task.kiq(queued.name, queued.kwargs)

    def backoff_seconds(self, attempt: int) -> float:
        delay = min(self.retry_base_seconds * 2.0 ** (attempt - 1), self.retry_max_seconds)
        return delay * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not security

    async def _execute(self, name: str, kwargs: dict[str, Any]) -> None:
        func = _registry.get(name)
        if func is None:
            log.error("job_unknown", job=name)
            return
        for attempt in range(1, self.max_attempts + 1):
            try:
                await func(self._resources, **kwargs)
            except Exception as exc:
                if attempt == self.max_attempts:
                    JOBS_FAILED.labels(name).inc()
                    log.error("job_gave_up", job=name, attempt=attempt, error=type(exc).__name__)
                    return
                delay = self.backoff_seconds(attempt)
                log.warning(
                    "job_failed",
                    job=name,
                    attempt=attempt,
                    retry_in_s=round(delay, 2),
                    error=type(exc).__name__,
                )
                await asyncio.sleep(delay)
            else:
                log.info("job_done", job=name, attempt=attempt)
                return
