"""Background loops that stop when they are told to, on every Python Kith supports."""

from __future__ import annotations

import asyncio


def raise_if_cancelled() -> None:
    """Raise `CancelledError` when this task was asked to stop and the request got lost.

    On Python 3.11, `asyncio.wait_for` returns the inner result when that finished in the
    same instant as the task was cancelled, and the cancellation is dropped (3.12 rebuilt
    `wait_for` on `asyncio.timeout`, which keeps it). redis-py sends every command under
    `wait_for` (its socket timeout), so a worker stopped while it sent one carried on: a
    loop that calls Redis forever never ended, and its stop waited for it without end.
    The task still counts the request (`cancelling()`), so a loop that calls this once a
    round stops at its next round instead. A task that handled a cancellation and chose to
    go on has called `uncancel()`, which takes the count back down.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
