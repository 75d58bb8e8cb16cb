"""The periodic-task runner: rounds at an interval, one worker per round with Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from kith.core.config import Settings
from kith.main import open_resources
from kith.media.jobs import remove_expired_uploads
from kith.runtime.periodic import PeriodicRunner, PeriodicTask, registered_tasks
from kith.runtime.resources import Resources
from tests.conftest import REDIS_URL, redis_available

runs: list[str] = []


async def count_run(resources: Resources) -> int:
    runs.append("ran")
    return len(runs)


async def broken(resources: Resources) -> None:
    runs.append("broken")
    raise RuntimeError("boom")


def every(seconds: float) -> PeriodicTask:
    return PeriodicTask(name=f"test.count.{uuid.uuid4().hex}", func=count_run, interval=lambda _: seconds)


@pytest.fixture(autouse=True)
def _reset_runs() -> None:
    runs.clear()


def test_the_media_clean_up_is_registered() -> None:
    tasks = {task.func: task for task in registered_tasks()}
    assert remove_expired_uploads in tasks
    settings = Settings(media_cleanup_interval_seconds=42, _env_file=None)
    assert tasks[remove_expired_uploads].interval(settings) == 42


async def test_tasks_run_every_interval_until_stopped(resources: Resources) -> None:
    runner = PeriodicRunner(resources, tasks=[every(0.02)])
    runner.start()
    await asyncio.sleep(0.01)
    assert runs == []  # the first round comes one interval after start
    for _ in range(100):
        if len(runs) >= 3:
            break
        await asyncio.sleep(0.02)
    await runner.stop()
    assert len(runs) >= 3
    stopped_at = len(runs)
    await asyncio.sleep(0.06)
    assert len(runs) == stopped_at


async def test_a_failing_round_does_not_stop_the_task(resources: Resources) -> None:
    task = PeriodicTask(name="test.broken", func=broken, interval=lambda _: 0.01)
    runner = PeriodicRunner(resources, tasks=[task])
    runner.start()
    for _ in range(100):
        if len(runs) >= 2:
            break
        await asyncio.sleep(0.01)
    await runner.stop()
    assert runs[:2] == ["broken", "broken"]


# As in test_jobs: with CI=true, conftest refuses to run at all without Redis.
needs_redis = pytest.mark.skipif(not redis_available(), reason="Redis is not reachable")


@pytest.fixture
async def redis_resources(settings: Settings) -> AsyncIterator[Resources]:
    configured = settings.model_copy(
        update={"redis_url": REDIS_URL, "job_queue": f"kith:test:{uuid.uuid4().hex}"}
    )
    resources = await open_resources(configured)
    try:
        yield resources
    finally:
        await resources.close()


@needs_redis
async def test_with_redis_one_worker_runs_each_round(redis_resources: Resources) -> None:
    task = every(0.3)
    first, second = PeriodicRunner(redis_resources, [task]), PeriodicRunner(redis_resources, [task])
    assert await first.run_once(task)
    assert not await second.run_once(task)
    assert not await first.run_once(task)
    assert runs == ["ran"]
    assert redis_resources.redis is not None
    ttl_ms = await redis_resources.redis.pttl(first.lock_key(task))
    assert 0 < ttl_ms <= 270  # held for most of the interval, never for good
    await asyncio.sleep(0.3)
    assert await second.run_once(task)
    assert runs == ["ran", "ran"]


@needs_redis
async def test_the_api_leaves_periodic_tasks_to_the_worker_when_redis_is_configured(
    settings: Settings,
) -> None:
    from kith.main import create_app

    configured = settings.model_copy(
        update={
            "redis_url": REDIS_URL,
            "job_queue": f"kith:test:{uuid.uuid4().hex}",
            "media_cleanup_interval_seconds": 0.01,
        }
    )
    app = create_app(configured)
    async with app.router.lifespan_context(app):
        tasks = {task.get_name() for task in asyncio.all_tasks()}
        assert not any(name.startswith("periodic:") for name in tasks)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        tasks = {task.get_name() for task in asyncio.all_tasks()}
        assert f"periodic:{remove_expired_uploads.__module__}.remove_expired_uploads" in tasks
