"""Background jobs: run only after commit, retried with backoff, and the Redis path."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from taskiq.api import run_receiver_task

from kith.core.config import Settings
from kith.core.errors import Conflict
from kith.core.jobs import enqueue, job
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


@pytest.fixture(autouse=True)
def _reset_calls() -> None:
    calls.clear()


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
