"""A flood of logins queues for the password hasher without holding database connections."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest

from kith.runtime.resources import Resources
from tests.helpers import API, PASSWORD, register


@pytest.mark.postgres_only
async def test_logins_waiting_for_the_hasher_hold_no_connection(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PostgreSQL only: SQLite queues writers on its lock; the pool question is PostgreSQL's.
    assert (await register(client, "flooded")).status_code == 201
    hasher = resources.passwords
    release = threading.Event()
    verify = hasher._hash.verify_and_update

    def slow_verify(password: str, stored: str) -> tuple[bool, str | None]:
        release.wait(10)
        return verify(password, stored)

    monkeypatch.setattr(hasher._hash, "verify_and_update", slow_verify)
    body = {"username": "flooded", "password": PASSWORD}
    logins = [
        asyncio.create_task(client.post(f"{API}/auth/login", json=body)) for _ in range(3 * hasher.slots)
    ]
    await asyncio.sleep(0.5)
    try:
        # Only the logins holding a hashing slot have a connection; the rest wait empty-handed.
        assert resources.engine.sync_engine.pool.checkedout() <= hasher.slots  # type: ignore[attr-defined]
        # Other requests still get a connection at once.
        ready = await asyncio.wait_for(client.get("/readyz"), timeout=5)
        assert ready.status_code == 200
    finally:
        release.set()
    assert [response.status_code for response in await asyncio.gather(*logins)] == [200] * len(logins)
