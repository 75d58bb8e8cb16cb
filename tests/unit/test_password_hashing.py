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
        # Nicer than the loop's thread by HASHING_NICENESS (19 is as nice as a thread gets),
        # however nice the process already was.
        loop_niceness = os.getpriority(os.PRIO_PROCESS, 0)
        assert niceness == min(19, loop_niceness + HASHING_NICENESS)
        if loop_niceness < 19:  # a process started at 19 has nothing lower to give
            assert loop_niceness < niceness
        # One thread per usable CPU: concurrent hashes queue instead of crowding the loop.
        started = await asyncio.gather(*(hasher._off_loop(_where) for _ in range(3 * usable_cpus())))
        assert len({thread for thread, _ in started}) <= usable_cpus()
    finally:
        hasher.close()


async def test_the_workers_of_one_server_share_the_cpus_between_their_hashers(tmp_path: Path) -> None:
    # Two workers on this machine's CPUs: each hashes on half of them (at least one thread),
    # so that together they take the CPUs once, not twice over (docs/operations.md).
    settings = _settings(tmp_path).model_copy(update={"workers": 2})
    hasher = PasswordHasher(settings)
    try:
        share = max(1, usable_cpus() // 2)
        assert hasher.slots == 2 * share
        started = await asyncio.gather(*(hasher._off_loop(_where) for _ in range(4 * usable_cpus())))
        assert len({thread for thread, _ in started}) <= share
    finally:
        hasher.close()
