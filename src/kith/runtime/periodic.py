"""Periodic tasks: house-keeping that runs every so often, such as removing stale uploads.

A domain registers a coroutine function `func(resources)` with `@periodic(interval)`.
One process runs them: `kith serve` on the embedded default (no Redis), `kith worker`
when Redis is configured. Several workers may run at once, so before each round a
worker takes a short Redis lock (`SET NX PX`, held for most of an interval and never
released early): one worker runs each round, and another takes over if it dies. The
tasks themselves stay safe to run twice at once, in case Redis is down and every
worker falls back to running them.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from kith.core.config import Settings
from kith.core.tasks import raise_if_cancelled

if TYPE_CHECKING:
    from kith.runtime.resources import Resources

log = structlog.get_logger("kith.periodic")

PeriodicFunction = Callable[["Resources"], Awaitable[object]]


@dataclass(frozen=True)
class PeriodicTask:
    name: str
    func: PeriodicFunction
    # Seconds between two rounds, read from the settings.
    interval: Callable[[Settings], float]


_registry: dict[str, PeriodicTask] = {}


def periodic(interval: Callable[[Settings], float]) -> Callable[[PeriodicFunction], PeriodicFunction]:
    """Register `func(resources)` to run every `interval(settings)` seconds."""

    def register(func: PeriodicFunction) -> PeriodicFunction:
        name = f"{func.__module__}.{func.__qualname__}"
        _registry[name] = PeriodicTask(name=name, func=func, interval=interval)
        return func

    return register


def registered_tasks() -> list[PeriodicTask]:
    return list(_registry.values())


class PeriodicRunner:
    """Runs periodic tasks in this process, each in its own asyncio task."""

    def __init__(self, resources: Resources, tasks: list[PeriodicTask] | None = None) -> None:
        self._resources = resources
        self.tasks = registered_tasks() if tasks is None else tasks
        self._running: list[asyncio.Task[None]] = []
        self._token = secrets.token_hex(8)

    def start(self) -> None:
        """Start every task; each first runs one interval from now."""
        for task in self.tasks:
            self._running.append(asyncio.create_task(self._loop(task), name=f"periodic:{task.name}"))

    async def stop(self) -> None:
        for running in self._running:
            running.cancel()
        for running in self._running:
            with contextlib.suppress(asyncio.CancelledError):
                await running
        self._running.clear()

    async def run_once(self, task: PeriodicTask) -> bool:
        """One round of `task`, unless another worker holds this round's lock. True if it ran."""
        if not await self._take_round(task):
            return False
        try:
            result = await task.func(self._resources)
        except Exception as exc:
            log.error("periodic_task_failed", task=task.name, error=type(exc).__name__, exc_info=True)
        else:
            log.info("periodic_task_done", task=task.name, result=result)
        return True

    async def _loop(self, task: PeriodicTask) -> None:
        interval = task.interval(self._resources.settings)
        while True:
            raise_if_cancelled()  # a stop dropped during a Redis call (see the function)
            await asyncio.sleep(interval)
            await self.run_once(task)

    def lock_key(self, task: PeriodicTask) -> str:
        # Under the job queue's name: instances that share a Redis share that name.
        return f"{self._resources.settings.job_queue}:periodic:{task.name}"

    async def _take_round(self, task: PeriodicTask) -> bool:
        redis = self._resources.redis
        if redis is None:
            return True
        # Held for most of an interval: one round per interval across all workers.
        hold_ms = max(1, int(task.interval(self._resources.settings) * 900))
        try:
            return bool(await redis.set(self.lock_key(task), self._token, nx=True, px=hold_ms))
        except Exception as exc:
            # The tasks are safe to run twice; running them beats not running them at all.
            log.warning("periodic_lock_unavailable", task=task.name, error=type(exc).__name__)
            return True
