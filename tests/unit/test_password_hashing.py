"""Password hashing runs off the event loop, in few low-priority threads."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from pathlib import Path

import pytest

from kith.core.config import Settings
from kith.core.security import HASHING_NICENESS, PasswordHasher, usable_cpus


def _settings(tmp_path: Path) -> Settings:
    return Settings(var_dir=tmp_path, _env_file=None)


def _where() -> tuple[str, int]:
    return threading.current_thread().name, os.getpriority(os.PRIO_PROCESS, 0)


async def test_hashes_verify_and_reject(tmp_path: Path) -> None:
    hasher = PasswordHasher(_settings(tmp_path))
    try:
        stored = await hasher.hash("a long enough password")
        assert (await hasher.verify("a long enough password", stored))[0]
        assert not (await hasher.verify("another password", stored))[0]
        assert await hasher.verify("anything", None) == (False, None)
    finally:
        hasher.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
async def test_hashing_threads_are_bounded_and_yield_to_the_event_loop(tmp_path: Path) -> None:
    hasher = PasswordHasher(_settings(tmp_path))
    try:
        name, niceness = await hasher._off_loop(_where)
        assert name.startswith("kith-hash")
        loop = os.getpriority(os.PRIO_PROCESS, 0)
        assert niceness == min(19, loop + HASHING_NICENESS)
        # The loop's own thread keeps its priority, ahead of the hashes unless a process
        # niced from outside is at the floor already (19).
        assert loop < niceness or loop == niceness == 19
        # One thread per usable CPU: concurrent hashes queue instead of crowding the loop.
        started = await asyncio.gather(*(hasher._off_loop(_where) for _ in range(3 * usable_cpus())))
        assert len({thread for thread, _ in started}) <= usable_cpus()
    finally:
        hasher.close()
