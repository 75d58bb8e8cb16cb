"""Background jobs that run only after the transaction that queued them commits.

A service queues a job on its database session with `enqueue`; the request's session
dependency hands the queued jobs to the `JobRunner` after the commit, and drops them
on rollback. The runner sends them through taskiq: an in-process broker on the
embedded default, a Redis stream consumed by `kith worker` when Redis is configured.
A failing job is retried with exponential backoff and logged; it never touches the
request that queued it.

A job's arguments (addresses, names, one-time tokens in clear) stay in the Redis stream
only while the job is queued or running: its entry is deleted as the job is acknowledged,
which happens once it is done or given up, never before (docs/security.md#privacy).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession
from taskiq import AckableMessage, AsyncBroker, BrokerMessage, Context, InMemoryBroker, TaskiqDepends
from taskiq.acks import AcknowledgeType
from taskiq.api import run_receiver_task
from taskiq_redis import RedisStreamBroker

from kith.core.config import ConfigurationError
from kith.core.metrics import JOBS_DISPATCHED, JOBS_FAILED
from kith.core.tasks import raise_if_cancelled

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


def _stream_id(raw: bytes | str) -> tuple[int, int]:
    text = raw.decode() if isinstance(raw, bytes) else raw
    milliseconds, _, sequence = text.partition("-")
    return int(milliseconds), int(sequence or 0)


class JobStreamBroker(RedisStreamBroker):
    """taskiq-redis's stream broker, deleting a job's entry when it acknowledges the job.

    taskiq-redis only XACKs, so every job, arguments and all, would stay in the stream
    until `maxlen` trims it, however long that takes. Here XACK and XDEL run in one
    MULTI: an entry is gone once its job is acknowledged, and until then it is there, in
    the group's pending list, for another worker to claim (`idle_timeout`) should the
    one running it die. `JobRunner` acknowledges a job only when it is done or given up.
    """

    _SWEEP_BATCH = 1000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # One client on the broker's pool for queueing and acknowledging: taskiq-redis made
        # one per call, about 40 µs of every post's request (`bench.inprocess --redis-url`).
        self._client = Redis(connection_pool=self.connection_pool)

    async def kick(self, message: BrokerMessage) -> None:
        """Queue a job (XADD), as taskiq-redis does, on the broker's one client."""
        queue_name = message.labels.get("queue_name") or self.queue_name
        await self._client.xadd(
            queue_name, {b"data": message.message}, maxlen=self.maxlen, approximate=self.approximate
        )

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        """New jobs, then those a dead worker left pending for `idle_timeout`, in turn.

        taskiq-redis looks for the left ones only after a read that brought new jobs: on a
        quiet queue a dead worker's job would wait for the next job queued. Here each
        round (at most `xread_block`, 2 s, when there is nothing new) looks for both."""
        async with Redis(connection_pool=self.connection_pool) as redis:
            while True:
                # A stop asked for during a Redis call may be dropped (see the function).
                raise_if_cancelled()
                # (redis-py's typed answers cover every reply setting; these are bytes.)
                fetched: Any = await redis.xreadgroup(
                    self.consumer_group_name,
                    self.consumer_name,
                    {self.queue_name: ">"},
                    block=self.block,
                    count=self.count,
                )
                for _, entries in fetched or []:
                    for entry_id, fields in entries:
                        yield self._message(entry_id, fields)
                # XAUTOCLAIM is atomic: two workers never claim the same entry.
                claimed: Any = await redis.xautoclaim(
                    self.queue_name,
                    self.consumer_group_name,
                    self.consumer_name,
                    min_idle_time=self.idle_timeout,
                    count=self.unacknowledged_batch_size,
                )
                for entry_id, fields in claimed[1]:
                    if fields:  # (Redis 7 leaves out entries deleted meanwhile; 6.2 gave None)
                        log.info("job_claimed", entry=entry_id.decode())
                        yield self._message(entry_id, fields)

    def _message(self, entry_id: bytes, fields: dict[bytes, bytes]) -> AckableMessage:
        return AckableMessage(
            data=fields[b"data"], ack=self._ack_generator(id=entry_id.decode(), queue_name=self.queue_name)
        )

    def _ack_generator(self, id: str, queue_name: str) -> Callable[[], Awaitable[None]]:
        async def ack() -> None:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.xack(queue_name, self.consumer_group_name, id)
                pipe.xdel(queue_name, id)
                await pipe.execute()

        return ack

    async def startup(self) -> None:
        await super().startup()
        try:
            deleted = await self.delete_acknowledged()
        except Exception as exc:
            log.warning("job_stream_sweep_failed", error=type(exc).__name__)
        else:
            if deleted:
                log.info("job_stream_swept", deleted=deleted)

    async def delete_acknowledged(self) -> int:
        """Delete the entries that every consumer group has acknowledged: those left by a
        version that only acknowledged them. (`maxlen` would never trim them now that the
        stream stays short.) Returns how many were deleted."""
        async with Redis(connection_pool=self.connection_pool) as redis:
            groups: list[dict[str, Any]] = await redis.xinfo_groups(self.queue_name)
            if not groups:
                return 0
            # Everything up to the oldest group's last delivery had been delivered before
            # the pending lists below are read: an entry in that range which no list holds
            # has been acknowledged, and nothing can make it pending again.
            delivered = min((group["last-delivered-id"] for group in groups), key=_stream_id)
            pending: set[tuple[int, int]] = set()
            for group in groups:
                if group["pending"]:
                    held: Any = await redis.xpending_range(
                        self.queue_name, group["name"], min="-", max=delivered, count=group["pending"]
                    )
                    pending.update(_stream_id(entry["message_id"]) for entry in held)
            deleted, start = 0, "-"
            while True:
                batch: Any = await redis.xrange(
                    self.queue_name, min=start, max=delivered, count=self._SWEEP_BATCH
                )
                if not batch:
                    return deleted
                done = [entry_id for entry_id, _ in batch if _stream_id(entry_id) not in pending]
                if done:
                    deleted += await redis.xdel(self.queue_name, *done)
                if len(batch) < self._SWEEP_BATCH:
                    return deleted
                start = "(" + batch[-1][0].decode()


class JobRunner:
    """Sends queued jobs to the broker and executes them with retries."""

    def __init__(self, resources: Resources, broker: AsyncBroker) -> None:
        self._resources = resources
        self.broker = broker
        settings = resources.settings
        self.max_attempts = settings.job_max_attempts
        self.retry_base_seconds = settings.job_retry_base_seconds
        self.retry_max_seconds = settings.job_retry_max_seconds

        async def run_job(name: str, kwargs: dict[str, Any], context: Context = TaskiqDepends()) -> None:
            await self._execute(name, kwargs)
            # Done or given up: only now is the job acknowledged, which deletes its Redis
            # stream entry. A worker that dies or is stopped mid-job (a cancelled job
            # raises out of `_execute`, past this) leaves the entry pending, and another
            # worker claims it after `idle_timeout`. (See `consume`.)
            if context.is_ackable:
                try:
                    await context.ack()
                except Exception as exc:
                    # The entry stays pending: the job runs again once it is claimed.
                    log.warning("job_ack_failed", job=name, error=type(exc).__name__)

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
            broker = JobStreamBroker(
                url,
                queue_name=resources.settings.job_queue,
                consumer_group_name="kith",
                # A group created after jobs were queued still reads them from the start.
                consumer_id="0",
                maxlen=100_000,
                # Reclaim jobs that a crashed worker took but never acknowledged. (Until
                # then their entries stay; an acknowledged job's is deleted at once.)
                idle_timeout=60_000,
                socket_connect_timeout=2,
                socket_timeout=5,
            )
        else:
            broker = InMemoryBroker()
        return cls(resources, broker)

    async def consume(self, concurrency: int) -> None:
        """Run the jobs of the Redis queue until cancelled: what `kith worker` does.

        The receiver leaves acknowledging to `run_job` (manual), because taskiq would
        otherwise acknowledge a cancelled job too, and so delete it unfinished. (Set on the
        receiver rather than as a label on each job: a worker of an earlier version, during a
        rolling upgrade, would wait forever for `run_job` to acknowledge a labelled job.)"""
        await run_receiver_task(self.broker, max_async_tasks=concurrency, ack_time=AcknowledgeType.MANUAL)

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
