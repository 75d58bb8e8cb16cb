"""Background jobs: run only after commit, retried with backoff, and the Redis path."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from taskiq.api import run_receiver_task

from kith.core.config import Settings
from kith.core.errors import Conflict
from kith.core.jobs import JobStreamBroker, enqueue, job
from kith.main import create_app, open_resources
from kith.runtime.resources import Resources
from kith.runtime.transaction import unit_of_work
from tests.conftest import REDIS_URL, Mailbox, redis_available
from tests.helpers import register

calls: Counter[str] = Counter()


@job
async def record_call(resources: Resources, *, label: str) -> None:
    calls[label] += 1


@job
async def flaky(resources: Resources, *, label: str, failures: int) -> None:
    calls[label] += 1
    if calls[label] <= failures:
        raise ConnectionError("transient")


# A job waits at its gate (set by the test) once it has started.
gates: dict[str, asyncio.Event] = {}


@job
async def wait_at_gate(resources: Resources, *, label: str) -> None:
    calls[label] += 1
    await gates[label].wait()


@pytest.fixture(autouse=True)
def _reset_calls() -> None:
    calls.clear()
    gates.clear()


async def test_job_runs_after_commit(resources: Resources) -> None:
    async with unit_of_work(resources) as session:
        enqueue(session, record_call, label="committed")
        await asyncio.sleep(0.05)
        assert calls["committed"] == 0, "a job must not run before its transaction commits"
    await resources.jobs.wait_idle()
    assert calls["committed"] == 1


async def test_job_of_a_rolled_back_transaction_never_runs(resources: Resources) -> None:
    with pytest.raises(Conflict):
        async with unit_of_work(resources) as session:
            enqueue(session, record_call, label="rolled_back")
            raise Conflict()
    await resources.jobs.wait_idle()
    assert calls["rolled_back"] == 0


async def test_failing_job_is_retried_with_backoff(resources: Resources) -> None:
    assert resources.jobs.backoff_seconds(1) < resources.jobs.backoff_seconds(3) * 2
    async with unit_of_work(resources) as session:
        enqueue(session, flaky, label="flaky", failures=2)
    await resources.jobs.wait_idle()
    assert calls["flaky"] == 3


async def test_job_gives_up_after_max_attempts(resources: Resources) -> None:
    async with unit_of_work(resources) as session:
        enqueue(session, flaky, label="doomed", failures=100)
    await resources.jobs.wait_idle()
    assert calls["doomed"] == resources.settings.job_max_attempts


async def test_unregistered_function_cannot_be_queued(resources: Resources) -> None:
    async def stray(resources: Resources) -> None:
        return None

    with pytest.raises(LookupError):
        async with unit_of_work(resources) as session:
            enqueue(session, stray)


async def test_smtp_down_does_not_break_registration(settings: Settings, mailbox: Mailbox) -> None:
    # Port 1: no SMTP server. The request succeeds; the e-mails are kept for later
    # (kith.runtime.outbox; tests/resilience/test_smtp_outage.py delivers them).
    application = create_app(settings.model_copy(update={"smtp_port": 1}))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await register(client, "offline")
            assert response.status_code == 201
        await application.state.resources.jobs.wait_idle()
    assert mailbox.to("offline@example.com") == []


# --- Redis ----------------------------------------------------------------------------

needs_redis = pytest.mark.skipif(not redis_available(), reason="Redis is not reachable")


@pytest.fixture
def redis_settings(settings: Settings) -> Settings:
    # A queue of this test's own, so parallel runs never take each other's jobs.
    return settings.model_copy(update={"redis_url": REDIS_URL, "job_queue": f"kith:test:{uuid.uuid4().hex}"})


@pytest.fixture
async def redis_app(redis_settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(redis_settings)
    async with application.router.lifespan_context(application):
        yield application
        await application.state.resources.redis.delete(redis_settings.job_queue)


@needs_redis
async def test_jobs_go_through_redis_to_a_worker(
    redis_app: FastAPI, redis_settings: Settings, mailbox: Mailbox
) -> None:
    transport = httpx.ASGITransport(app=redis_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        assert (await register(client, "queued")).status_code == 201
    # Nothing runs in the API process: the jobs wait in the Redis stream.
    await asyncio.sleep(0.3)
    assert mailbox.to("queued@example.com") == []
    assert await redis_app.state.resources.redis.xlen(redis_settings.job_queue) == 2
    # A worker (what `kith worker` runs) picks them up and delivers the e-mails.
    worker_resources = await open_resources(redis_settings)
    worker = asyncio.create_task(run_receiver_task(worker_resources.jobs.broker, max_async_tasks=10))
    try:
        for _ in range(100):
            if len(mailbox.to("queued@example.com")) == 2:
                break
            await asyncio.sleep(0.05)
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        await worker_resources.close()
    assert sorted(m["Subject"] for m in mailbox.to("queued@example.com")) == [
        "Confirm your e-mail address",
        "Welcome to Kith",
    ]


async def _until(condition: Callable[[], Awaitable[bool]], what: str, seconds: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, f"not within {seconds} s: {what}"
        await asyncio.sleep(0.05)


async def _cancel_every_task_but(before: set[asyncio.Task[Any]], seconds: float = 20) -> None:
    """Cancel every task started since `before`, in rounds: a receiver that is shutting down
    may start one more (a delivery it had in flight), which a single round would then wait
    for without end."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while pending := {task for task in asyncio.all_tasks() - before if not task.done()}:
        assert loop.time() < deadline, f"tasks that ignore cancellation: {pending}"
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=1)


def _redis(resources: Resources) -> Redis:
    assert resources.redis is not None
    return resources.redis


async def _stream(resources: Resources, queue: str) -> list[bytes]:
    """Every entry of the stream, as the raw bytes of its fields."""
    entries: Any = await _redis(resources).xrange(queue)
    return [repr(fields).encode() for _, fields in entries]


@needs_redis
async def test_a_job_stays_in_the_redis_stream_only_until_it_is_done_or_given_up(
    redis_settings: Settings, database_url: str
) -> None:
    # docs/security.md#privacy: the stream must not keep a job's arguments (addresses,
    # tokens) once the job has run, nor those of a job that was given up.
    queue = redis_settings.job_queue
    settings = redis_settings.model_copy(update={"job_max_attempts": 2})
    done, doomed, running = (f"token-{kind}-{uuid.uuid4().hex}" for kind in ("done", "doomed", "running"))
    gates[running] = asyncio.Event()
    api = await open_resources(settings)
    worker_resources = await open_resources(settings)
    worker = None
    try:
        async with unit_of_work(api) as session:
            enqueue(session, record_call, label=done)
            enqueue(session, flaky, label=doomed, failures=100)
            enqueue(session, wait_at_gate, label=running)
        queued = b"".join(await _stream(api, queue))
        assert all(label.encode() in queued for label in (done, doomed, running))

        worker = asyncio.create_task(worker_resources.jobs.consume(10))

        async def finished_ones_gone() -> bool:
            left = b"".join(await _stream(api, queue))
            return calls[running] == 1 and done.encode() not in left and doomed.encode() not in left

        await _until(finished_ones_gone, "the done and the given-up jobs' entries deleted")
        assert calls[done] == 1 and calls[doomed] == 2 and calls[running] == 1
        # The job still running keeps its entry, pending, for another worker to claim
        # should this one die.
        left = await _stream(api, queue)
        assert len(left) == 1 and running.encode() in left[0]
        assert (await _redis(api).xpending(queue, "kith"))["pending"] == 1

        gates[running].set()

        async def empty() -> bool:
            return await _redis(api).xlen(queue) == 0

        await _until(empty, "the last job's entry deleted once it is done")
        assert (await _redis(api).xpending(queue, "kith"))["pending"] == 0
    finally:
        if worker is not None:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
        await worker_resources.close()
        await _redis(api).delete(queue)
        await api.close()


@needs_redis
async def test_a_job_whose_worker_stopped_mid_run_stays_in_the_stream_and_runs_again(
    redis_settings: Settings, database_url: str
) -> None:
    queue = redis_settings.job_queue
    label = f"token-{uuid.uuid4().hex}"
    gates[label] = asyncio.Event()
    api = await open_resources(redis_settings)
    try:
        async with unit_of_work(api) as session:
            enqueue(session, wait_at_gate, label=label)

        # A worker takes the job and is stopped mid-run: every task it started is
        # cancelled, as `asyncio.run` does at Ctrl-C (kill -9 acknowledges nothing either).
        first = await open_resources(redis_settings)
        before = asyncio.all_tasks()
        worker = asyncio.create_task(first.jobs.consume(10))

        async def started() -> bool:
            return calls[label] == 1

        await _until(started, "the job started")
        await _cancel_every_task_but(before)
        await first.close()
        assert await _redis(api).xlen(queue) == 1, "a job stopped mid-run must keep its entry"
        assert (await _redis(api).xpending(queue, "kith"))["pending"] == 1

        # Another worker claims it once it has been idle long enough (60 s in production).
        gates[label].set()
        second = await open_resources(redis_settings)
        assert isinstance(second.jobs.broker, JobStreamBroker)
        second.jobs.broker.idle_timeout = 100
        worker = asyncio.create_task(second.jobs.consume(10))
        try:

            async def gone() -> bool:
                return calls[label] == 2 and await _redis(api).xlen(queue) == 0

            await _until(gone, "the job run again and its entry deleted")
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
            await second.close()
    finally:
        await _redis(api).delete(queue)
        await api.close()


@needs_redis
async def test_a_worker_stops_even_when_a_redis_call_drops_the_stop(
    redis_settings: Settings, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On Python 3.11 a command that finishes in the instant its task is cancelled returns
    # normally and the cancellation is lost (redis-py sends under `asyncio.wait_for`). Here
    # every read drops it, as that race does: the worker must stop at its next round all
    # the same, or `kith worker` never exits (and this test's worker ran forever in CI).
    original = Redis.xreadgroup
    reading = asyncio.Event()

    async def dropping_the_stop(self: Redis, *args: Any, **kwargs: Any) -> Any:
        reading.set()
        try:
            return await original(self, *args, **kwargs)
        except asyncio.CancelledError:
            return []

    monkeypatch.setattr(Redis, "xreadgroup", dropping_the_stop)
    resources = await open_resources(redis_settings)
    worker = asyncio.create_task(resources.jobs.consume(10))
    try:
        await asyncio.wait_for(reading.wait(), 10)
        worker.cancel()
        stopped, _ = await asyncio.wait({worker}, timeout=10)
        assert stopped, "the worker went on reading after it was stopped"
    finally:
        # Should it go on, deleting its stream ends its read with an error.
        await _redis(resources).delete(redis_settings.job_queue)
        await asyncio.wait({worker}, timeout=10)
        await resources.close()


@needs_redis
async def test_entries_an_earlier_version_only_acknowledged_are_deleted_at_startup(
    redis_settings: Settings, database_url: str
) -> None:
    # Before, jobs were acknowledged and left in the stream; as it now stays short, `maxlen`
    # would never trim them. Starting up deletes every entry that is acknowledged, and only those.
    queue = redis_settings.job_queue
    api = await open_resources(redis_settings)
    redis = _redis(api)
    try:
        await redis.delete(queue)
        await redis.xgroup_create(queue, "kith", id="0", mkstream=True)
        ids = [await redis.xadd(queue, {b"data": f"old job {n}".encode()}) for n in range(4)]
        taken: Any = await redis.xreadgroup("kith", "old-worker", {queue: ">"}, count=3)
        assert [entry_id for entry_id, _ in taken[0][1]] == ids[:3]
        await redis.xack(queue, "kith", ids[0], ids[2])  # done; ids[1] is still running

        other = await open_resources(redis_settings)
        await other.close()

        left: Any = await redis.xrange(queue)
        assert [entry_id for entry_id, _ in left] == [ids[1], ids[3]]
        assert (await redis.xpending(queue, "kith"))["pending"] == 1
    finally:
        await redis.delete(queue)
        await api.close()


async def test_jobs_run_in_process_when_the_redis_queue_is_down(settings: Settings) -> None:
    unreachable = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    resources = await open_resources(unreachable)
    try:
        async with unit_of_work(resources) as session:
            enqueue(session, record_call, label="fallback")
        await resources.jobs.wait_idle()
    finally:
        await resources.close()
    assert calls["fallback"] == 1
